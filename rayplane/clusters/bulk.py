"""Changing what every cluster of a tenant should be, from a worker (sync session).

Used when the tenant's Marketplace subscription is suspended (stop all) or cancelled (delete
all). Like the API's stop and delete, these only record intent: ``desired_state``, a new
``generation``, an ``Operation`` and ``next_reconcile_at = now``; the reconciler does the
cloud work and moves ``state`` through the state machine. Each changed cluster gets a
ClusterEvent saying why. Clusters already wanted in that state are left alone, so running
this twice (a redelivered webhook, a retried task) changes nothing the second time.

Locks: every live cluster of the tenant, in id order, for the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rayplane.clusters import store
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.states import State, record_event
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id

_CANCELLED_BY_STOP = {"start", "retry"}
_CANCELLED_BY_DELETE = {"create", "update", "start", "stop", "retry"}


def _request(session: Session, cluster: Cluster, kind: str, event: str, reason: str) -> None:
    now = utcnow()
    cluster.generation += 1
    cluster.next_reconcile_at = now
    done = kind == "stop" and cluster.state == State.STOPPED
    session.add(
        Operation(
            id=new_id("op"),
            tenant_id=cluster.tenant_id,
            cluster_id=cluster.id,
            kind=kind,
            status="Succeeded" if done else "Running",
            target_generation=cluster.generation,
            completed_at=now if done else None,
        )
    )
    record_event(session, cluster, event, reason)


def stop_all(session: Session, tenant_id: str, reason: str, *, event: str = "stop_requested") -> list[str]:
    """Want every live cluster of the tenant stopped; the ids of those that changed."""
    changed = []
    for cluster in store.live_for_tenant(session, tenant_id):
        if cluster.desired_state in ("stopped", "deleted"):
            continue
        cluster.desired_state = "stopped"
        store.cancel_running(session, cluster.id, _CANCELLED_BY_STOP, "superseded by a stop")
        _request(session, cluster, "stop", event, reason)
        changed.append(cluster.id)
    session.flush()
    return changed


def delete_all(session: Session, tenant_id: str, reason: str, *, event: str = "delete_requested") -> list[str]:
    """Want every live cluster of the tenant deleted; the ids of those that changed."""
    changed = []
    for cluster in store.live_for_tenant(session, tenant_id):
        if cluster.desired_state == "deleted":
            continue
        cluster.desired_state = "deleted"
        store.cancel_running(session, cluster.id, _CANCELLED_BY_DELETE, "the cluster is being deleted")
        _request(session, cluster, "delete", event, reason)
        changed.append(cluster.id)
    session.flush()
    return changed
