"""Retention: log files last written more than ``RAYPLANE_LOG_RETENTION_DAYS`` ago go
(the workers' hourly ``purge_old_logs``). One window for the whole deployment for now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rayplane.logstore.base import LogStore


def purge_old_logs(store: LogStore, days: int, *, now: datetime | None = None) -> tuple[int, datetime]:
    """Delete what was last written before ``now - days``; (files deleted, that cutoff)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    return store.purge(cutoff), cutoff
