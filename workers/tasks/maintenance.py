"""Periodic housekeeping."""

from __future__ import annotations

from rayplane.common.maintenance import purge_expired_idempotency_records
from rayplane.common.tasks import TaskName
from rayplane.logs import get_logger
from rayplane.logstore import open_store, retention
from rayplane.settings import get_settings
from rayplane.tenants import store as tenant_store
from workers.celery_app import app
from workers.db import unit_of_work

log = get_logger("rayplane.workers.maintenance")


@app.task(name=TaskName.PURGE_IDEMPOTENCY_RECORDS)
def purge_idempotency_records() -> int:
    with unit_of_work() as session:
        removed = purge_expired_idempotency_records(session)
    log.info("idempotency_records_purged", removed=removed)
    return removed


@app.task(name=TaskName.PURGE_OLD_LOGS)
def purge_old_logs() -> int:
    """Delete cluster log files last written longer ago than their tenant's window."""
    settings = get_settings()
    store = open_store(settings.log_store(), settings.log_container)
    with unit_of_work() as session:
        windows = tenant_store.log_retention_windows(session)
    removed, cutoff = retention.purge_old_logs(store, settings.log_retention_days, windows=windows)
    log.info("old_logs_purged", removed=removed, older_than=cutoff.isoformat())
    return removed
