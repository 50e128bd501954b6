"""UTC periods billing counts in: hours (metering) and calendar months (budgets)."""

from __future__ import annotations

from datetime import UTC, datetime


def floor_hour(at: datetime) -> datetime:
    """The start of ``at``'s UTC hour."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def month_start(at: datetime) -> datetime:
    """Midnight UTC on the first day of ``at``'s UTC month."""
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
