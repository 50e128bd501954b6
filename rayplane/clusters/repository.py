"""SQL for clusters, events and operations, as the API needs it (async)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.db.base import utcnow


class ClusterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, cluster_id: str, *, for_update: bool = False) -> Cluster | None:
        """``for_update`` locks the row, so a worker's apply phase and this request serialise."""
        stmt = select(Cluster).where(Cluster.tenant_id == tenant_id, Cluster.id == cluster_id)
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
    ) -> list[Cluster]:
        stmt = select(Cluster).where(Cluster.tenant_id == tenant_id)
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

    async def live_specs(self, tenant_id: str, *, excluding: str | None = None) -> list[dict[str, Any]]:
        stmt = select(Cluster.spec).where(Cluster.tenant_id == tenant_id, Cluster.deleted_at.is_(None))
        if excluding is not None:
            stmt = stmt.where(Cluster.id != excluding)
        return [dict(s) for s in (await self.session.execute(stmt)).scalars()]

    async def add(self, cluster: Cluster) -> Cluster:
        self.session.add(cluster)
        await self.session.flush()
        return cluster

    async def events(self, cluster_id: str, *, after: str | None, limit: int) -> list[ClusterEvent]:
        stmt = select(ClusterEvent).where(ClusterEvent.cluster_id == cluster_id)
        if after is not None:
            stmt = stmt.where(ClusterEvent.id > after)
        return list((await self.session.execute(stmt.order_by(ClusterEvent.id).limit(limit + 1))).scalars())


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

    async def cancel_running(self, cluster_id: str, kinds: set[str], reason: str) -> None:
        """Operations a newer request makes moot end as Canceled (not Failed)."""
        await self.session.execute(
            update(Operation)
            .where(Operation.cluster_id == cluster_id, Operation.status == "Running", Operation.kind.in_(kinds))
            .values(status="Canceled", error_message=reason, completed_at=utcnow(), version=Operation.version + 1)
            .execution_options(synchronize_session=False)
        )

    async def count_running(self, cluster_id: str) -> int:
        stmt = (
            select(func.count())
            .select_from(Operation)
            .where(Operation.cluster_id == cluster_id, Operation.status == "Running")
        )
        return int((await self.session.execute(stmt)).scalar_one())
