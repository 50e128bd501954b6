"""The usage interval table (see ``rayplane.usage.store`` for how intervals are written)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base


class UsageInterval(Base):
    """At most one open interval (``ended_at IS NULL``) per cluster and group, enforced by index.

    ``vcpus`` and ``gpus`` are *per node*, copied from the VM catalog when the interval is
    recorded: billing aggregates them in SQL without a catalog lookup, and a later catalog
    edit never rewrites what was already observed (and possibly billed).
    """

    __tablename__ = "usage_intervals"
    __table_args__ = (
        Index("uq_usage_open", "cluster_id", "group_name", unique=True, postgresql_where=text("ended_at IS NULL")),
        Index("ix_usage_tenant_started", "tenant_id", "started_at"),
        # Reports and metering read the intervals still open or ended after a point in time;
        # started_at cannot bound them (an interval may stay open for months). NULLs included.
        Index("ix_usage_tenant_ended", "tenant_id", "ended_at"),
        Index("ix_usage_ended", "ended_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    group_name: Mapped[str] = mapped_column(String(63))
    vm_size: Mapped[str] = mapped_column(String(64))
    spot: Mapped[bool] = mapped_column(Boolean, default=False)
    node_count: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
