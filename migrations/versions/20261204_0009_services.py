"""clusters.kind, clusters.service, clusters.rollback_requested and rollback_reason: Ray Serve services are
clusters of kind 'service' (docs/architecture.md, "Services")

Existing rows are plain clusters (kind 'cluster', no service, no rollback asked).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clusters", sa.Column("kind", sa.String(10), nullable=False, server_default="cluster"))
    op.add_column("clusters", sa.Column("service", postgresql.JSONB(), nullable=True))
    op.add_column("clusters", sa.Column("rollback_requested", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("clusters", sa.Column("rollback_reason", sa.String(1000), nullable=True))


def downgrade() -> None:
    op.drop_column("clusters", "rollback_reason")
    op.drop_column("clusters", "rollback_requested")
    op.drop_column("clusters", "service")
    op.drop_column("clusters", "kind")
