"""SQL for the worker side (sync sessions): leases, the due sweep, and locked reloads.

Lease: a conditional UPDATE that succeeds only when nobody holds an unexpired lease, so one
worker at a time reconciles a cluster; a dead worker's lease simply expires.
Sweep: one UPDATE … RETURNING over the partial index on ``next_reconcile_at`` that claims up
to ``limit`` due rows (``FOR UPDATE SKIP LOCKED`` so two beats never claim the same row) and
pushes each claimed row ``hold`` seconds into the future, so a queued nudge is not queued
again; if that nudge is lost the row falls due again after ``hold`` and is re-sent.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from rayplane.clouds.models import Cloud
from rayplane.clusters import statements
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.values import DesiredState, State
from rayplane.db.base import utcnow


def acquire_lease(session: Session, cluster_id: str, owner: str, seconds: int) -> bool:
    stmt = (
        update(Cluster)
        .where(
            Cluster.id == cluster_id,
            or_(Cluster.lease_owner.is_(None), Cluster.lease_expires_at < func.now(), Cluster.lease_owner == owner),
        )
        .values(lease_owner=owner, lease_expires_at=func.now() + timedelta(seconds=seconds))
        .returning(Cluster.id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).scalar_one_or_none() is not None


def release_lease(session: Session, cluster_id: str, owner: str) -> None:
    session.execute(
        update(Cluster)
        .where(Cluster.id == cluster_id, Cluster.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def claim_due(session: Session, *, limit: int, hold_seconds: int) -> list[str]:
    due = (
        select(Cluster.id)
        .where(Cluster.next_reconcile_at.is_not(None), Cluster.next_reconcile_at <= func.now())
        .order_by(Cluster.next_reconcile_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(Cluster)
        .where(Cluster.id.in_(due))
        .values(next_reconcile_at=func.now() + timedelta(seconds=hold_seconds))
        .returning(Cluster.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.execute(stmt).scalars())


def load(session: Session, cluster_id: str, *, lock: bool = False) -> Cluster | None:
    stmt = select(Cluster).where(Cluster.id == cluster_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def load_cloud(session: Session, cloud_id: str | None) -> Cloud | None:
    return session.get(Cloud, cloud_id) if cloud_id else None


def running_operations(session: Session, cluster_id: str) -> list[Operation]:
    return list(session.execute(statements.running_operations(cluster_id)).scalars())


def count_due(session: Session) -> int:
    stmt = (
        select(func.count())
        .select_from(Cluster)
        .where(and_(Cluster.next_reconcile_at.is_not(None), Cluster.next_reconcile_at <= utcnow()))
    )
    return int(session.execute(stmt).scalar_one())


_POOL_DEMAND = text(
    """
    SELECT key, sum(n)::int FROM (
        SELECT lower(c.spec->'head'->>'vm_size') || '|false' AS key, 1 AS n
        FROM clusters c
        WHERE c.cloud_id = :cloud_id AND c.deleted_at IS NULL AND c.desired_state = :running
        UNION ALL
        SELECT lower(g->>'vm_size') || '|' || coalesce(lower(g->>'spot'), 'false'), (g->>'max_nodes')::int
        FROM clusters c, jsonb_array_elements(c.spec->'worker_groups') g
        WHERE c.cloud_id = :cloud_id AND c.deleted_at IS NULL AND c.desired_state = :running
    ) demand GROUP BY key
    """
)


def pool_demand(session: Session, cloud_id: str) -> dict[str, int]:
    """Most nodes the cloud's running clusters may use, per ``"<vm size>|<spot>"`` (lower case):
    one per head, ``max_nodes`` per worker group. Shared node pools are sized from this."""
    return {
        str(k): int(n)
        for k, n in session.execute(_POOL_DEMAND, {"cloud_id": cloud_id, "running": DesiredState.RUNNING.value})
    }


def live_for_tenant(session: Session, tenant_id: str) -> list[Cluster]:
    """The tenant's clusters not yet deleted, locked in id order (so two bulk changes of one
    tenant take the locks in the same order and never deadlock)."""
    stmt = (
        select(Cluster)
        .where(Cluster.tenant_id == tenant_id, Cluster.deleted_at.is_(None))
        .order_by(Cluster.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(session.execute(stmt).scalars())


def ids_on_provider(session: Session, provider: str) -> list[str]:
    """Ids of the clusters not yet deleted on clouds of kind ``provider`` (for the dev
    supervisor, which stops only its own database's local clusters)."""
    rows = session.execute(
        select(Cluster.id)
        .join(Cloud, Cloud.id == Cluster.cloud_id)
        .where(Cloud.provider == provider, Cluster.deleted_at.is_(None))
    )
    return [str(r) for r in rows.scalars()]


def live_on_provider(session: Session, provider: str, states: tuple[State, ...]) -> list[Cluster]:
    """The clusters in ``states`` on clouds of kind ``provider``, locked in id order."""
    stmt = (
        select(Cluster)
        .join(Cloud, Cloud.id == Cluster.cloud_id)
        .where(Cloud.provider == provider, Cluster.deleted_at.is_(None), Cluster.state.in_(states))
        .order_by(Cluster.id)
        .with_for_update(of=Cluster)
        .execution_options(populate_existing=True)
    )
    return list(session.execute(stmt).scalars())
