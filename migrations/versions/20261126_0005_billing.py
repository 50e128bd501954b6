"""billing: per-node vCPUs/GPUs on usage intervals, metering records, budgets and budget alerts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 11:59:49.098983

Existing usage intervals get their per-node vCPUs and GPUs from the VM catalog (matched
case-insensitively, as the catalog matches names); a size the catalog lacks keeps 0, which
meters nothing rather than a guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _backfill_shapes() -> None:
    from rayplane import catalog

    sizes = [(s.name.casefold(), s.vcpus, s.gpus) for s in catalog.all_sizes()]
    shapes = sa.table(
        "shapes", sa.column("name", sa.String), sa.column("vcpus", sa.Integer), sa.column("gpus", sa.Integer)
    )
    values = sa.values(*shapes.c, name="shapes").data(sizes)
    usage = sa.table(
        "usage_intervals",
        sa.column("vm_size", sa.String),
        sa.column("vcpus", sa.Integer),
        sa.column("gpus", sa.Integer),
    )
    op.execute(
        usage.update()
        .where(sa.func.lower(usage.c.vm_size) == values.c.name)
        .values(vcpus=values.c.vcpus, gpus=values.c.gpus)
    )


def upgrade() -> None:
    op.add_column("usage_intervals", sa.Column("vcpus", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("usage_intervals", sa.Column("gpus", sa.Integer(), server_default=sa.text("0"), nullable=False))
    _backfill_shapes()
    op.create_index("ix_usage_tenant_ended", "usage_intervals", ["tenant_id", "ended_at"], unique=False)
    op.create_index("ix_usage_ended", "usage_intervals", ["ended_at"], unique=False)
    op.create_table(
        "metering_records",
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dimension", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("plan_id", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=6), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("usage_event_id", sa.String(length=64), nullable=True),
        sa.Column("message_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", "hour", "dimension", name=op.f("pk_metering_records")),
    )
    op.create_index(
        "ix_metering_records_open",
        "metering_records",
        ["hour"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'submitted')"),
    )
    op.create_index(
        "ix_metering_records_expired",
        "metering_records",
        ["resolved_at"],
        unique=False,
        postgresql_where=sa.text("status = 'expired'"),
    )
    op.create_table(
        "metering_watermark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aggregated_until", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_metering_watermark_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metering_watermark")),
    )
    op.create_table(
        "budgets",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("amount_usd", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("alert_thresholds", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("hard_stop", sa.Boolean(), nullable=False),
        sa.Column("blocked_month", sa.Date(), nullable=True),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_spend_usd", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_budgets_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        sa.UniqueConstraint("tenant_id", name="uq_budgets_tenant_id"),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("spend_usd", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("amount_usd", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_budget_alerts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_alerts")),
        sa.UniqueConstraint("tenant_id", "month", "threshold", name="uq_budget_alerts_once"),
    )


def downgrade() -> None:
    op.drop_table("budget_alerts")
    op.drop_table("budgets")
    op.drop_table("metering_watermark")
    op.drop_index("ix_metering_records_expired", table_name="metering_records")
    op.drop_index(
        "ix_metering_records_open",
        table_name="metering_records",
        postgresql_where=sa.text("status IN ('pending', 'submitted')"),
    )
    op.drop_table("metering_records")
    op.drop_index("ix_usage_ended", table_name="usage_intervals")
    op.drop_index("ix_usage_tenant_ended", table_name="usage_intervals")
    op.drop_column("usage_intervals", "gpus")
    op.drop_column("usage_intervals", "vcpus")
