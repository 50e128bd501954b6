"""clusters.ray_token_sealed: each cluster's Ray token, encrypted with a key derived from
RAYPLANE_SECRET_KEY (see rayplane/common/raytoken.py)

NULL until the reconciler's next pass gives the cluster one (existing clusters included).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clusters", sa.Column("ray_token_sealed", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("clusters", "ray_token_sealed")
