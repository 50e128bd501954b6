"""The tenant table."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, ResourceMixin


class Tenant(ResourceMixin, Base):
    """A customer organisation; bound to at most one Entra tenant (``tid``)."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    entra_tenant_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
