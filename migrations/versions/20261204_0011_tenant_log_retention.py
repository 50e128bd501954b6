"""tenants.log_retention_days: how long a tenant's cluster logs are kept (NULL: the default)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("log_retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tenants", "log_retention_days")
