"""metric_points: cluster metrics as a bounded time series (docs/architecture.md, "Cluster metrics")

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_points",
        sa.Column("cluster_id", sa.String(40), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("figures", postgresql.JSONB(), nullable=False),
        sa.Column("counters", postgresql.JSONB(), nullable=True),
        sa.PrimaryKeyConstraint("cluster_id", "tier", "at"),
    )
    # Rollups and pruning read a tier's rows by time, across clusters.
    op.create_index("ix_metric_points_tier_at", "metric_points", ["tier", "at"])


def downgrade() -> None:
    op.drop_index("ix_metric_points_tier_at", table_name="metric_points")
    op.drop_table("metric_points")
