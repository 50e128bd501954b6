"""Tables that serve API conventions rather than a domain noun."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, utcnow


class IdempotencyRecord(Base):
    """The first answer to a create request carrying an ``Idempotency-Key``.

    ``body`` never holds a secret: a secret-bearing answer is stored with the secret removed
    (see ``api.common.idempotent_create``)."""

    __tablename__ = "idempotency_records"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # Who made the request (``Principal.credential``): only that credential gets a replay.
    credential: Mapped[str] = mapped_column(String(80))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(JSONB)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
