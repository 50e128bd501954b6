"""Prometheus metrics of metering and budgets.

The gauges describe state kept in Postgres, so whichever process sets them tells the same
story: a worker sets them after each run (in its own registry), and the API's ``/metrics``
re-reads them from the database on every scrape (``api.routers.health``), which is what an
alert rule should use, since Celery's worker processes serve no HTTP. The counters count
what the process that incremented them did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge

from rayplane.billing.periods import month_start
from rayplane.settings import Settings

METERING_NEAR_EXPIRY = Gauge(
    "rayplane_metering_hours_near_expiry",
    "Metering records (subscription, dimension, hour) not yet accepted and older than "
    "RAYPLANE_METERING_WARN_AGE_HOURS: they expire unbilled at 24 hours",
)
METERING_EXPIRED = Gauge(
    "rayplane_metering_hours_expired",
    "Metering records that ended expired (never billed) in the last 7 days",
)
METERING_EVENTS = Counter(
    "rayplane_metering_events_total", "Usage events sent to the Marketplace, by the status it answered", ["status"]
)
BUDGET_ALERTS = Gauge("rayplane_budget_alerts_month", "Budget threshold alerts raised this calendar month (UTC)")
BUDGET_BLOCKED = Gauge(
    "rayplane_budget_blocked_tenants", "Tenants whose hard-stop budget is spent this month (starts refused)"
)


@dataclass(frozen=True)
class BillingGauges:
    near_expiry: int
    expired_recently: int
    budget_alerts_month: int
    budget_blocked: int

    def publish(self) -> None:
        METERING_NEAR_EXPIRY.set(self.near_expiry)
        METERING_EXPIRED.set(self.expired_recently)
        BUDGET_ALERTS.set(self.budget_alerts_month)
        BUDGET_BLOCKED.set(self.budget_blocked)


def gauge_params(settings: Settings, now: datetime) -> dict[str, Any]:
    """Parameters of ``metering_store.GAUGES`` at ``now``."""
    return {
        "warn_before": now - timedelta(hours=settings.metering_warn_age_hours),
        "expired_since": now - timedelta(days=7),
        "month": month_start(now).date(),
    }
