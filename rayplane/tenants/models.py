"""The tenant table."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, ResourceMixin


class Tenant(ResourceMixin, Base):
    """A customer organisation; bound to at most one Entra tenant (``tid``)."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    entra_tenant_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Limits from the tenant's plan; NULL means the server-wide default applies.
    quota_vcpus: Mapped[int | None] = mapped_column(Integer)
    quota_clusters: Mapped[int | None] = mapped_column(Integer)
    # How long its clusters' logs are kept (``rayplane.logstore.retention``); NULL: the
    # deployment's RAYPLANE_LOG_RETENTION_DAYS.
    log_retention_days: Mapped[int | None] = mapped_column(Integer)
