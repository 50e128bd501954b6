"""SQL for clusters, events and operations, as the API needs it (async)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters import statements
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.values import ClusterKind, OperationStatus, State


class ClusterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, tenant_id: str, cluster_id: str, *, for_update: bool = False, kind: ClusterKind | None = None
    ) -> Cluster | None:
        """``for_update`` locks the row, so a worker's apply phase and this request serialise;
        ``kind`` None finds either kind."""
        stmt = select(Cluster).where(Cluster.tenant_id == tenant_id, Cluster.id == cluster_id)
        if kind is not None:
            stmt = stmt.where(Cluster.kind == kind)
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_live_by_name(self, tenant_id: str, name: str) -> Cluster | None:
        stmt = select(Cluster).where(Cluster.tenant_id == tenant_id, Cluster.name == name, Cluster.deleted_at.is_(None))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_page(
        self,
        tenant_id: str,
        *,
        after: str | None,
        limit: int,
        states: list[str] | None = None,
        cloud_id: str | None = None,
        labels: dict[str, str] | None = None,
        include_deleted: bool = False,
        kind: ClusterKind = ClusterKind.CLUSTER,
    ) -> list[Cluster]:
        stmt = select(Cluster).where(Cluster.tenant_id == tenant_id, Cluster.kind == kind)
        if states:
            stmt = stmt.where(Cluster.state.in_(states))
        elif not include_deleted:
            stmt = stmt.where(Cluster.deleted_at.is_(None))
        if cloud_id:
            stmt = stmt.where(Cluster.cloud_id == cloud_id)
        if labels:
            stmt = stmt.where(Cluster.labels.contains(labels))
        if after is not None:
            stmt = stmt.where(Cluster.id > after)
        return list((await self.session.execute(stmt.order_by(Cluster.id).limit(limit + 1))).scalars())

    async def live_specs(
        self, tenant_id: str, *, excluding: str | None = None, running_only: bool = False
    ) -> list[ClusterSpec]:
        stmt = statements.live_specs(tenant_id, excluding=excluding, running_only=running_only)
        return list((await self.session.execute(stmt)).scalars())

    async def live_count_on_cloud(self, cloud_id: str) -> int:
        stmt = (
            select(func.count()).select_from(Cluster).where(Cluster.cloud_id == cloud_id, Cluster.deleted_at.is_(None))
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def add(self, cluster: Cluster) -> Cluster:
        self.session.add(cluster)
        await self.session.flush()
        return cluster

    async def events(self, cluster_id: str, *, after: str | None, limit: int) -> list[ClusterEvent]:
        stmt = select(ClusterEvent).where(ClusterEvent.cluster_id == cluster_id)
        if after is not None:
            stmt = stmt.where(ClusterEvent.id > after)
        return list((await self.session.execute(stmt.order_by(ClusterEvent.id).limit(limit + 1))).scalars())

    async def state_counts(self) -> dict[tuple[ClusterKind, State], int]:
        """Clusters and services not deleted, per kind and state (every tenant)."""
        stmt = (
            select(Cluster.kind, Cluster.state, func.count())
            .where(Cluster.state != State.DELETED)
            .group_by(Cluster.kind, Cluster.state)
        )
        rows = (await self.session.execute(stmt)).all()
        return {(ClusterKind(kind), State(state)): int(n) for kind, state, n in rows}

    async def reconcile_due(self, now: datetime) -> tuple[int, datetime | None]:
        """How many clusters are due for a reconcile at ``now``, and the oldest due time; the
        predicate is the sweep's partial index's (``ix_clusters_due``)."""
        stmt = select(func.count(), func.min(Cluster.next_reconcile_at)).where(
            Cluster.next_reconcile_at.is_not(None), Cluster.next_reconcile_at <= now
        )
        count, oldest = (await self.session.execute(stmt)).one()
        return int(count), oldest


class OperationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, op_id: str) -> Operation | None:
        stmt = select(Operation).where(Operation.tenant_id == tenant_id, Operation.id == op_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, op: Operation) -> Operation:
        self.session.add(op)
        await self.session.flush()
        return op

    async def count_running(self, cluster_id: str) -> int:
        stmt = (
            select(func.count())
            .select_from(Operation)
            .where(Operation.cluster_id == cluster_id, Operation.status == OperationStatus.RUNNING)
        )
        return int((await self.session.execute(stmt)).scalar_one())
