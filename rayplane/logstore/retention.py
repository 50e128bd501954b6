"""Retention: a cluster's log files go once last written more than its tenant's window ago
(``tenants.log_retention_days``, else ``RAYPLANE_LOG_RETENTION_DAYS``, 30 by default), by the
workers' hourly ``purge_old_logs``.

Files are kept for the window after the cluster is deleted, like the job records they
belong to. A tenant whose Marketplace subscription is closed writes no more logs, so all of
its logs are gone one window after its last cluster stopped; nothing else keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from rayplane.logstore.base import LogStore


def purge_old_logs(
    store: LogStore, days: int, *, windows: Mapping[str, int] | None = None, now: datetime | None = None
) -> tuple[int, datetime]:
    """Delete what each tenant's window no longer holds: ``windows`` maps the tenants with a
    window of their own to its days, every other tenant has ``days``. (Files deleted, the
    default cutoff.)"""
    now = now or datetime.now(UTC)
    own = dict(windows or {})
    removed = 0
    for tenant, tenant_days in sorted(own.items()):
        removed += store.purge(now - timedelta(days=tenant_days), tenant=tenant)
    cutoff = now - timedelta(days=days)
    removed += store.purge(cutoff, skip=frozenset(own))
    return removed, cutoff
