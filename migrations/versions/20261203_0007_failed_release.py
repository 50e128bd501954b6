"""clusters: release_pending, set when a cluster enters FAILED until its compute is released

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:55:00

A FAILED cluster holds no compute: entering FAILED marks it, and one more reconcile pass
stops its nodes. Existing FAILED rows are marked too, so their nodes are released once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "clusters", sa.Column("release_pending", sa.Boolean(), nullable=False, server_default=sa.text("false"))
    )
    op.execute(
        "UPDATE clusters SET release_pending = true, next_reconcile_at = now() "
        "WHERE state = 'FAILED' AND deleted_at IS NULL"
    )


def downgrade() -> None:
    op.drop_column("clusters", "release_pending")
