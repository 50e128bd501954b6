"""marketplace: subscriptions bought on the Azure Marketplace and their webhook events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:54:40.500079
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "marketplace_webhook_events",
        sa.Column("operation_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("time_stamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result", sa.String(length=1000), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_marketplace_webhook_events")),
    )
    op.create_index(
        "ix_marketplace_webhook_events_due",
        "marketplace_webhook_events",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'received'"),
    )
    op.create_table(
        "marketplace_subscriptions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("offer_id", sa.String(length=100), nullable=False),
        sa.Column("plan_id", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("purchaser_email", sa.String(length=320), nullable=True),
        sa.Column("purchaser_tid", sa.String(length=36), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_marketplace_subscriptions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketplace_subscriptions")),
    )
    op.create_index("ix_marketplace_subscriptions_tenant", "marketplace_subscriptions", ["tenant_id"], unique=False)
    op.create_index(
        "uq_marketplace_subscriptions_current",
        "marketplace_subscriptions",
        ["tenant_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'Unsubscribed'"),
    )


def downgrade() -> None:
    op.drop_index("uq_marketplace_subscriptions_current", table_name="marketplace_subscriptions")
    op.drop_index("ix_marketplace_subscriptions_tenant", table_name="marketplace_subscriptions")
    op.drop_table("marketplace_subscriptions")
    op.drop_index("ix_marketplace_webhook_events_due", table_name="marketplace_webhook_events")
    op.drop_table("marketplace_webhook_events")
