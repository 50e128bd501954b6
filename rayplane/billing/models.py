"""Usage intervals: N observed nodes of one VM size, for one group, from start to end."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base


class UsageInterval(Base):
    """At most one open interval (``ended_at IS NULL``) per cluster and group, enforced by index."""

    __tablename__ = "usage_intervals"
    __table_args__ = (
        Index("uq_usage_open", "cluster_id", "group_name", unique=True, postgresql_where=text("ended_at IS NULL")),
        Index("ix_usage_tenant_started", "tenant_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    group_name: Mapped[str] = mapped_column(String(63))
    vm_size: Mapped[str] = mapped_column(String(64))
    spot: Mapped[bool] = mapped_column(Boolean, default=False)
    node_count: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
