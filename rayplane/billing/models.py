"""Billing tables: usage intervals (the ground truth), metering records, budgets and their alerts."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, ResourceMixin, utcnow


class MeteringRecord(Base):
    """One (Marketplace subscription, dimension, UTC hour) quantity and its submission.

    The primary key *is* that triple: the aggregation inserts each hour once (``ON CONFLICT DO
    NOTHING``), whatever runs again. ``status``: ``pending`` -> ``submitted`` (written *before*
    the HTTP call) -> ``accepted`` | ``duplicate`` (the Marketplace already had the hour:
    counted as accepted) | ``expired`` (not accepted within 24 hours) | ``rejected``
    (``reason`` says why). ``dry_run`` records were computed while
    ``RAYPLANE_METERING_DRY_RUN`` was on and are never sent.

    Deliberately lean, because a cold run inserts one row per subscription, dimension and hour
    (480,000 for 10,000 subscriptions over a day; benchmarks/RESULTS.md): no surrogate id (the
    triple is the identity), and ``tenant_id`` without a foreign key, since the per-row
    referential check cost more than a quarter of the insert and the billing ledger should
    outlive a deleted tenant row anyway. Readers reach a tenant's records through its
    subscriptions (the primary key's first column).
    """

    __tablename__ = "metering_records"
    __table_args__ = (
        # The submitter reads only unfinished rows: its cost follows them, not the history.
        Index("ix_metering_records_open", "hour", postgresql_where=text("status IN ('pending', 'submitted')")),
        # Expired hours are rare and alerted on: the gauge counts them without scanning history.
        Index("ix_metering_records_expired", "resolved_at", postgresql_where=text("status = 'expired'")),
    )

    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    dimension: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    plan_id: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    status: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(String(1000))
    usage_event_id: Mapped[str | None] = mapped_column(String(64))
    message_time: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow, onupdate=utcnow)

    @property
    def key(self) -> tuple[str, datetime, str]:
        return (self.subscription_id, self.hour, self.dimension)


class MeteringWatermark(Base):
    """One row: every hour before ``aggregated_until`` has been aggregated (for every
    subscription). The next run starts there instead of re-reading the whole lookback, so an
    hourly run reads only the intervals of the newest hour; it is written only once every
    partition of a run has committed, so a run cut short is simply repeated (and ``ON
    CONFLICT DO NOTHING`` skips the partitions that had finished)."""

    __tablename__ = "metering_watermark"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    aggregated_until: Mapped[datetime]


class Budget(ResourceMixin, Base):
    """A tenant's monthly spending limit (at most one per tenant).

    ``blocked_month`` is set (to the first day of the month) when a hard stop fired: until
    the month ends, the budget is raised above the spend, or hard stop is turned off, new
    cluster starts are refused. ``blocked_spend_usd`` is the spend that triggered it.
    """

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_budgets_tenant_id"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    alert_thresholds: Mapped[list[int]] = mapped_column(JSONB)
    hard_stop: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_month: Mapped[date | None] = mapped_column(Date)
    blocked_at: Mapped[datetime | None]
    blocked_spend_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))


class BudgetAlert(Base):
    """A threshold the tenant's spend crossed in one month: raised once (unique per month)."""

    __tablename__ = "budget_alerts"
    __table_args__ = (UniqueConstraint("tenant_id", "month", "threshold", name="uq_budget_alerts_once"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    month: Mapped[date] = mapped_column(Date)
    threshold: Mapped[int] = mapped_column(Integer)
    spend_usd: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
