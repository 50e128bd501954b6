"""Recording what a user (or a budget, or the Marketplace) wants a cluster to be.

The one place intent is written, for the API (async sessions) and for workers (sync
sessions) alike. Recording intent never touches the cloud and never writes ``state``: it
sets ``desired_state`` (and the retry flag), bumps ``generation`` (the ETag), makes the
cluster due (``next_reconcile_at = now``), ends as Canceled the running operations the new
request makes moot, and opens an ``Operation`` for the request. The reconciler, under its
lease, does the rest.

``request`` is pure bookkeeping on the ORM object and returns what to write; ``write`` and
``write_async`` write it with one shared statement (``statements.cancel_running``), so the
two session kinds cannot drift apart.

Locks: callers hold the cluster row ``FOR UPDATE`` (the API's ``get(for_update=True)``,
the workers' ``live_for_tenant``), so a reconcile pass's apply phase and a request serialise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from rayplane.clusters import statements
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.states import record_event
from rayplane.clusters.values import DesiredState, EventKind, OperationKind, OperationStatus, State
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id

K = OperationKind
# What each request makes moot, and the message those operations end with.
CANCELS: dict[OperationKind, tuple[frozenset[OperationKind], str]] = {
    K.STOP: (frozenset({K.START, K.RETRY}), "superseded by a stop"),
    K.START: (frozenset({K.STOP}), "superseded by a start"),
    K.DELETE: (frozenset({K.CREATE, K.UPDATE, K.START, K.STOP, K.RETRY, K.ROLLBACK}), "the cluster is being deleted"),
}
DESIRED: dict[OperationKind, DesiredState] = {
    K.STOP: DesiredState.STOPPED,
    K.START: DesiredState.RUNNING,
    K.RETRY: DesiredState.RUNNING,
    K.DELETE: DesiredState.DELETED,
}


@dataclass(frozen=True)
class Intent:
    """What recording one request writes besides the cluster row itself."""

    cluster: Cluster
    operation: Operation
    event: tuple[EventKind | str, str] | None = None


def request(cluster: Cluster, kind: OperationKind, *, event: tuple[EventKind | str, str] | None = None) -> Intent:
    """Record ``kind`` on ``cluster`` (already locked) and return what else to write.

    An update's new spec is set by the caller before this call. A stop of a STOPPED cluster
    and a start of a cluster already RUNNING at its spec are answered Succeeded at once.
    """
    if kind in DESIRED:
        cluster.desired_state = DESIRED[kind]
    if kind == K.RETRY:
        cluster.retry_requested = True
        cluster.attempts = 0
    if kind == K.ROLLBACK:
        cluster.rollback_requested = True
    now = utcnow()
    cluster.generation += 1
    cluster.next_reconcile_at = now
    done = (kind == K.STOP and cluster.state == State.STOPPED) or (
        kind == K.START and cluster.state == State.RUNNING and cluster.observed_generation >= cluster.generation - 1
    )
    return Intent(cluster, new_operation(cluster, kind, succeeded_at=now if done else None), event)


def new_operation(cluster: Cluster, kind: OperationKind, *, succeeded_at: datetime | None = None) -> Operation:
    """An operation for the cluster's current generation (Succeeded when ``succeeded_at``)."""
    return Operation(
        id=new_id("op"),
        tenant_id=cluster.tenant_id,
        cluster_id=cluster.id,
        kind=kind,
        status=OperationStatus.SUCCEEDED if succeeded_at else OperationStatus.RUNNING,
        target_generation=cluster.generation,
        completed_at=succeeded_at,
    )


def write(session: Session, intent: Intent) -> Operation:
    """Write ``intent`` in a worker's (sync) session."""
    cancel = CANCELS.get(intent.operation.kind)
    if cancel:
        session.execute(statements.cancel_running(intent.cluster.id, cancel[0], cancel[1]))
    _add(session, intent)
    session.flush()
    return intent.operation


async def write_async(session: AsyncSession, intent: Intent) -> Operation:
    """Write ``intent`` in the API's (async) session."""
    cancel = CANCELS.get(intent.operation.kind)
    if cancel:
        await session.execute(statements.cancel_running(intent.cluster.id, cancel[0], cancel[1]))
    _add(session, intent)
    await session.flush()
    return intent.operation


def _add(session: Session | AsyncSession, intent: Intent) -> None:
    session.add(intent.operation)
    if intent.event is not None:
        record_event(session, intent.cluster, intent.event[0], intent.event[1])
