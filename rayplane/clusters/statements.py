"""SQL statements shared by the API's async repository and the workers' sync store.

Each function builds a statement and runs nothing, so one query serves both session kinds
(``await session.execute(stmt)`` or ``session.execute(stmt)``) and exists once.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, Update, select, update

from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.values import DesiredState, OperationKind, OperationStatus
from rayplane.db.base import utcnow


def cancel_running(cluster_id: str, kinds: Iterable[OperationKind], reason: str) -> Update:
    """Operations a newer request makes moot end as Canceled (not Failed)."""
    return (
        update(Operation)
        .where(
            Operation.cluster_id == cluster_id,
            Operation.status == OperationStatus.RUNNING,
            Operation.kind.in_(list(kinds)),
        )
        .values(
            status=OperationStatus.CANCELED,
            error_message=reason,
            completed_at=utcnow(),
            version=Operation.version + 1,
        )
        .execution_options(synchronize_session=False)
    )


def running_operations(cluster_id: str) -> Select[Operation]:
    return select(Operation).where(Operation.cluster_id == cluster_id, Operation.status == OperationStatus.RUNNING)


def live_specs(tenant_id: str, *, excluding: str | None = None, running_only: bool = False) -> Select[ClusterSpec]:
    """The specs of the tenant's live clusters (optionally only those wanted running)."""
    stmt = select(Cluster.spec).where(Cluster.tenant_id == tenant_id, Cluster.deleted_at.is_(None))
    if running_only:
        stmt = stmt.where(Cluster.desired_state == DesiredState.RUNNING)
    if excluding is not None:
        stmt = stmt.where(Cluster.id != excluding)
    return stmt
