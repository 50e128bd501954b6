"""Changing what every cluster of a tenant should be, from a worker (sync session).

Used when the tenant's Marketplace subscription is suspended (stop all) or cancelled (delete
all), and when a hard-stop budget is exceeded (stop all). Like the API's stop and delete,
these only record intent through ``rayplane.clusters.intent``; the reconciler does the cloud
work and moves ``state`` through the state machine. Each changed cluster gets a ClusterEvent
saying why. Clusters already wanted in that state are left alone, so running this twice (a
redelivered webhook, a retried task) changes nothing the second time.

Locks: every live cluster of the tenant, in id order, for the caller's transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rayplane.clusters import intent, store
from rayplane.clusters.values import DesiredState, EventKind, OperationKind


def stop_all(
    session: Session, tenant_id: str, reason: str, *, event: EventKind = EventKind.STOP_REQUESTED
) -> list[str]:
    """Want every live cluster of the tenant stopped; the ids of those that changed."""
    changed = []
    for cluster in store.live_for_tenant(session, tenant_id):
        if cluster.desired_state in (DesiredState.STOPPED, DesiredState.DELETED):
            continue
        intent.write(session, intent.request(cluster, OperationKind.STOP, event=(event, reason)))
        changed.append(cluster.id)
    return changed


def delete_all(
    session: Session, tenant_id: str, reason: str, *, event: EventKind = EventKind.DELETE_REQUESTED
) -> list[str]:
    """Want every live cluster of the tenant deleted; the ids of those that changed."""
    changed = []
    for cluster in store.live_for_tenant(session, tenant_id):
        if cluster.desired_state == DesiredState.DELETED:
            continue
        intent.write(session, intent.request(cluster, OperationKind.DELETE, event=(event, reason)))
        changed.append(cluster.id)
    return changed
