"""idempotency_records.credential: a stored answer is replayed only to the credential that made it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:00:00

Records written before this revision name no credential and may hold a raw API key in
``body``; they cannot be attributed, so they are deleted (they live 24 hours; a client
retrying one of them creates afresh).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_records")
    op.add_column("idempotency_records", sa.Column("credential", sa.String(length=80), nullable=False))


def downgrade() -> None:
    op.drop_column("idempotency_records", "credential")
