"""Periodic housekeeping."""

from __future__ import annotations

from rayplane.common.maintenance import purge_expired_idempotency_records
from rayplane.common.tasks import TaskName
from rayplane.logs import get_logger
from workers.celery_app import app
from workers.db import unit_of_work

log = get_logger("rayplane.workers.maintenance")


@app.task(name=TaskName.PURGE_IDEMPOTENCY_RECORDS)
def purge_idempotency_records() -> int:
    with unit_of_work() as session:
        removed = purge_expired_idempotency_records(session)
    log.info("idempotency_records_purged", removed=removed)
    return removed
