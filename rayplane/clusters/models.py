"""Clusters, their append-only event history, and long-running operations.

Two version counters on a cluster, on purpose:
- ``generation`` changes only when a user changes what they want (spec or desired state).
  It is the ETag, so a worker observing the cluster never makes a user's If-Match stale.
- ``version`` (SQLAlchemy's version_id_col, from ResourceMixin) changes on every write; it
  makes concurrent writers (the API and a worker) fail loudly instead of losing an update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from rayplane.clusters.serve import ServiceSpec
from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.values import ClusterKind, DesiredState, OperationKind, OperationStatus, State
from rayplane.db.base import Base, ResourceMixin, utcnow
from rayplane.db.types import StrEnumText


class SpecJSON(TypeDecorator[ClusterSpec]):
    """A ``ClusterSpec`` stored as JSONB in its wire form; reads give the typed spec back."""

    impl = JSONB
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        return value.to_json() if isinstance(value, ClusterSpec) else dict(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> ClusterSpec | None:
        return None if value is None else ClusterSpec.from_json(value)


class ServiceJSON(TypeDecorator[ServiceSpec]):
    """A ``ServiceSpec`` stored as JSONB; NULL for a plain cluster."""

    impl = JSONB
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        return value.to_json() if isinstance(value, ServiceSpec) else dict(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> ServiceSpec | None:
        return None if value is None else ServiceSpec.from_json(value)


class Cluster(ResourceMixin, Base):
    __tablename__ = "clusters"
    __table_args__ = (
        # Names are unique among live clusters; a deleted one frees its name.
        Index("uq_clusters_live_name", "tenant_id", "name", unique=True, postgresql_where=text("deleted_at IS NULL")),
        # The sweep reads only due rows: its cost follows them, not the table.
        Index("ix_clusters_due", "next_reconcile_at", postgresql_where=text("next_reconcile_at IS NOT NULL")),
        Index("ix_clusters_tenant_id_id", "tenant_id", "id"),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # NULL only for history: a deleted cluster whose cloud was removed afterwards.
    cloud_id: Mapped[str | None] = mapped_column(ForeignKey("clouds.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    # A service is a cluster that also runs Ray Serve (``service``); /v1/clusters shows only
    # plain clusters, /v1/services only services. Never changes after creation.
    kind: Mapped[ClusterKind] = mapped_column(
        StrEnumText(ClusterKind, 10), default=ClusterKind.CLUSTER, server_default=ClusterKind.CLUSTER.value
    )
    spec: Mapped[ClusterSpec] = mapped_column(SpecJSON)
    service: Mapped[ServiceSpec | None] = mapped_column(ServiceJSON)
    # Set by ``:rollback`` (intent), cleared by the reconciler once the pending version is gone.
    rollback_requested: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Why (a user's request, or a new version that could not start): the rollback's failure text.
    rollback_reason: Mapped[str | None] = mapped_column(String(1000))
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    desired_state: Mapped[DesiredState] = mapped_column(StrEnumText(DesiredState, 10), default=DesiredState.RUNNING)
    # Written only by ``rayplane.clusters.states`` (a test checks it).
    state: Mapped[State] = mapped_column(StrEnumText(State, 20), default=State.PENDING)
    state_reason: Mapped[str | None] = mapped_column(String(1000))
    state_code: Mapped[str | None] = mapped_column(String(80))
    observed: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    provider_state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    dashboard_url: Mapped[str | None] = mapped_column(String(500))
    # The cluster's Ray token, Fernet-sealed (``rayplane.common.raytoken``); written only by
    # the reconciler, NULL until its first pass. Never in an API answer but ``ray-token``'s.
    ray_token_sealed: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_requested: Mapped[bool] = mapped_column(default=False)
    # Set on entering FAILED: the next pass stops the cluster's nodes (a FAILED cluster holds
    # no compute), then clears it.
    release_pending: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    next_reconcile_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    @property
    def etag(self) -> str:
        return f'"{self.generation}"'


class ClusterEvent(Base):
    """One thing that happened to a cluster. Rows are only ever inserted."""

    __tablename__ = "cluster_events"
    __table_args__ = (Index("ix_cluster_events_cluster_id_id", "cluster_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[State | None] = mapped_column(StrEnumText(State, 20))
    to_state: Mapped[State | None] = mapped_column(StrEnumText(State, 20))
    reason: Mapped[str | None] = mapped_column(String(1000))
    code: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Operation(ResourceMixin, Base):
    """A long-running request (create, update, stop, start, retry, delete) and its outcome."""

    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_cluster_running", "cluster_id", postgresql_where=text("status = 'Running'")),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    kind: Mapped[OperationKind] = mapped_column(StrEnumText(OperationKind, 20))
    status: Mapped[OperationStatus] = mapped_column(StrEnumText(OperationStatus, 20), default=OperationStatus.RUNNING)
    target_generation: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(80))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    completed_at: Mapped[datetime | None]
