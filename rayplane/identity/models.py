"""Members and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, ResourceMixin

ROLE_CHECK = "role IN ('owner', 'admin', 'member', 'viewer')"


class Member(ResourceMixin, Base):
    """A person (Entra object id ``oid``) with one role in one tenant."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("tenant_id", "oid", name="uq_members_tenant_oid"),
        CheckConstraint(ROLE_CHECK, name="role"),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    oid: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))


class ApiKey(ResourceMixin, Base):
    """A tenant-scoped credential. Only a keyed hash of the secret is stored.

    ``prefix`` is public (it is shown in listings and finds the row in one index probe);
    the secret is returned once, at creation.
    """

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
