"""The cloud table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, ResourceMixin


class Cloud(ResourceMixin, Base):
    """Where a tenant's clusters run.

    ``config`` holds the provider's settings: for ``local`` the capacity
    (``{"capacity": {"cpus", "memory_gib", "gpus", "max_nodes"}}``); for ``azure`` the
    subscription, resource group, region and how Rayplane authenticates.
    """

    __tablename__ = "clouds"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_clouds_tenant_name"),
        Index("uq_clouds_one_default", "tenant_id", unique=True, postgresql_where=text("is_default")),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    provider: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="READY")
    status_reason: Mapped[str | None] = mapped_column(String(500))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    ray_versions: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # What the provider keeps per cloud, never shown to users: for Azure, since when each
    # shared node pool has been unused and the LRO tokens of pool deletions under way.
    provider_state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
