"""Marketplace subscriptions and the webhook events about them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, utcnow


class MarketplaceSubscription(Base):
    """One SaaS subscription bought on the Azure Marketplace, bound to one tenant.

    ``id`` is the Marketplace's subscription id (a GUID). ``status`` mirrors the Marketplace's
    (PendingFulfillmentStart, Subscribed, Suspended, Unsubscribed). ``last_event_at`` is the
    ``timeStamp`` of the newest webhook operation applied, so an older one delivered late
    is recorded and not applied. A tenant keeps its old, Unsubscribed rows as history and has
    at most one other (its current subscription): a partial unique index says so, which also
    settles two concurrent activations. ``unsubscribed_at`` starts the retention period after
    which the tenant is closed.
    """

    __tablename__ = "marketplace_subscriptions"
    __table_args__ = (
        Index("ix_marketplace_subscriptions_tenant", "tenant_id"),
        Index(
            "uq_marketplace_subscriptions_current",
            "tenant_id",
            unique=True,
            postgresql_where=text("status <> 'Unsubscribed'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    offer_id: Mapped[str] = mapped_column(String(100))
    plan_id: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(40))
    purchaser_email: Mapped[str | None] = mapped_column(String(320))
    purchaser_tid: Mapped[str | None] = mapped_column(String(36))
    last_event_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """A webhook delivery, stored under the Marketplace operation id: a second delivery of
    the same operation finds the row and changes nothing.

    ``status``: received -> done | failed (with ``result``); ``time_stamp`` is the operation's.
    ``next_attempt_at`` is when the beat sweep may hand a ``received`` event to a worker again
    (a nudge lost, a worker killed, the Marketplace API down); only such rows are in its index.
    """

    __tablename__ = "marketplace_webhook_events"
    __table_args__ = (
        Index(
            "ix_marketplace_webhook_events_due",
            "next_attempt_at",
            postgresql_where=text("status = 'received'"),
        ),
    )

    operation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    time_stamp: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), default="received")
    result: Mapped[str | None] = mapped_column(String(1000))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
