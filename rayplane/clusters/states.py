"""The cluster state machine: one table of allowed transitions, one table of what entering a
state does, and one function that moves.

``transition`` is the only code that writes ``Cluster.state`` (a test checks for any other
write: assignments, constructor keywords, ``setattr``, ``.values(state=…)``). Every accepted
change appends a ``ClusterEvent`` in the caller's session and then runs the state's entry
effects (``ON_ENTER``) in the same session, so the state, its history and its consequences
commit together, and no code path that moves a cluster can forget them: a cluster that goes
FAILED from RUNNING closes its usage intervals exactly as one that is stopped on request.

``transition`` runs in a worker's sync session, inside the reconciler's locked apply phase
(the row is locked ``FOR UPDATE``), so two movers of one cluster serialise on that lock.
The API never moves a cluster: it records intent (``rayplane.clusters.intent``), and a new
cluster starts in the model's default state, announced by ``record_created``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from rayplane.clusters import operations
from rayplane.clusters.models import Cluster, ClusterEvent
from rayplane.clusters.values import ClusterKind, EventKind
from rayplane.clusters.values import State as State
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.jobs import store as job_store
from rayplane.usage import store as usage_store

S = State
ALLOWED: dict[State, frozenset[State]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.DELETING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.FAILED, S.DELETING, S.DEPLOYING}),
    S.RUNNING: frozenset({S.UPDATING, S.DEGRADED, S.STOPPING, S.DELETING, S.DEPLOYING, S.ROLLING_OUT, S.ROLLING_BACK}),
    S.UPDATING: frozenset({S.RUNNING, S.DEGRADED, S.FAILED, S.DELETING}),
    S.DEGRADED: frozenset({S.RUNNING, S.FAILED, S.DELETING, S.DEPLOYING, S.ROLLING_OUT}),
    S.STOPPING: frozenset({S.STOPPED, S.DELETING}),
    S.STOPPED: frozenset({S.STARTING, S.DELETING}),
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.DELETING, S.DEPLOYING}),
    # Services only: Serve applications being applied (first deploy, or a Serve config
    # changed in place), a new version rolling out, a new version being dropped.
    S.DEPLOYING: frozenset({S.RUNNING, S.DEGRADED, S.ROLLING_OUT, S.FAILED, S.STOPPING, S.DELETING}),
    S.ROLLING_OUT: frozenset({S.RUNNING, S.DEGRADED, S.ROLLING_BACK, S.DEPLOYING, S.FAILED, S.STOPPING, S.DELETING}),
    S.ROLLING_BACK: frozenset({S.RUNNING, S.DEGRADED, S.DEPLOYING, S.FAILED, S.STOPPING, S.DELETING}),
    # A FAILED cluster can be retried, deleted, or stopped (so a stop asked of it completes).
    S.FAILED: frozenset({S.PROVISIONING, S.STOPPING, S.DELETING}),
    S.DELETING: frozenset({S.DELETED}),
    S.DELETED: frozenset(),
}

# States only a service enters (a test checks no plain cluster's path reaches them).
SERVICE_ONLY = frozenset({S.DEPLOYING, S.ROLLING_OUT, S.ROLLING_BACK})
# States in which the cluster's compute is (or may be) up; used by stop and idle checks.
ACTIVE = frozenset({S.PROVISIONING, S.RUNNING, S.UPDATING, S.DEGRADED, S.STARTING}) | SERVICE_ONLY
LIVE = frozenset(State) - {S.DELETED}


class Effect(enum.Enum):
    """Something that must happen whenever a cluster enters a state, whatever moved it."""

    CLOSE_USAGE = "close the usage intervals: nothing is billed from here on"
    END_JOBS = "end the jobs still recorded as running"
    FORGET_NODES = "forget the observed nodes and the dashboard address"
    RETIRE = "mark the record deleted and stop reconciling it"
    SETTLE_OPERATIONS = "settle the operations this state answers"
    RELEASE_COMPUTE = "stop the nodes in the next pass, leaving the state as it is"


E = Effect
ON_ENTER: dict[State, tuple[Effect, ...]] = {
    S.STOPPED: (E.CLOSE_USAGE, E.END_JOBS, E.FORGET_NODES, E.SETTLE_OPERATIONS),
    S.DELETED: (E.CLOSE_USAGE, E.END_JOBS, E.FORGET_NODES, E.RETIRE, E.SETTLE_OPERATIONS),
    # A FAILED cluster holds no compute: its nodes are stopped by the next pass (RELEASE),
    # it bills nothing from this instant, and no job stays "running" that nobody will ever
    # finish. A retry, or a stop then a start, brings nodes back and opens new intervals.
    S.FAILED: (E.CLOSE_USAGE, E.END_JOBS, E.RELEASE_COMPUTE, E.SETTLE_OPERATIONS),
}

# How END_JOBS ends a job, per state entered: (job status, message).
_JOB_ENDINGS: dict[State, tuple[str, str]] = {
    S.STOPPED: ("STOPPED", "the cluster was stopped"),
    S.DELETED: ("STOPPED", "the cluster was deleted"),
    S.FAILED: ("FAILED", "the cluster failed"),
}


class InvalidTransition(Exception):
    """A programming error: the reconciler asked for a move the table forbids."""


class _Adds(Protocol):
    def add(self, instance: object) -> None: ...


def can_move(current: State, to: State) -> bool:
    return to in ALLOWED[current]


def transition(
    session: Session,
    cluster: Cluster,
    to: State,
    *,
    reason: str,
    code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> ClusterEvent | None:
    """Move ``cluster`` to ``to``, record why, and run ``ON_ENTER[to]``; ``None`` when it is
    already there (and then nothing runs again).

    Raises ``InvalidTransition`` for a move not in ``ALLOWED``, and for a plain cluster moving
    to a state only services have (``SERVICE_ONLY``). The reason (and the cloud's
    error code, when there is one) become the cluster's ``state_reason``/``state_code``.
    """
    current = cluster.state
    if current == to:
        return None
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"{cluster.id}: {current} -> {to} is not allowed")
    if to in SERVICE_ONLY and cluster.kind != ClusterKind.SERVICE:
        raise InvalidTransition(f"{cluster.id}: {to} is a service's state; this is a plain cluster")
    cluster.state = to
    cluster.state_reason = reason
    cluster.state_code = code
    now = utcnow()
    event = _event(cluster, EventKind.STATE_CHANGED, reason, now, current, to, code=code, detail=detail)
    session.add(event)
    for effect in ON_ENTER.get(to, ()):
        _run(session, cluster, to, effect, now, reason)
    return event


def _run(session: Session, cluster: Cluster, state: State, effect: Effect, now: datetime, reason: str) -> None:
    if effect is E.CLOSE_USAGE:
        usage_store.close_all(session, cluster.id, now)
    elif effect is E.END_JOBS:
        status, message = _JOB_ENDINGS[state]
        if state == S.FAILED:
            message = f"{message}: {reason}"[:1000]
        job_store.end_unfinished(session, cluster.id, status=status, message=message, at=now)
    elif effect is E.FORGET_NODES:
        cluster.observed, cluster.dashboard_url = {}, None
        cluster.release_pending = False
    elif effect is E.RELEASE_COMPUTE:
        cluster.release_pending, cluster.next_reconcile_at = True, now
    elif effect is E.RETIRE:
        cluster.deleted_at, cluster.next_reconcile_at = now, None
    elif effect is E.SETTLE_OPERATIONS:
        operations.settle(session, cluster, now)


def record_event(
    session: _Adds,
    cluster: Cluster,
    kind: EventKind | str,
    reason: str,
    *,
    code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> ClusterEvent:
    """Append a non-state event (scaling, node lost, job finished, idle stop, errors).

    ``kind`` is an ``EventKind``, or a provider's own kind for the events it reports."""
    event = _event(cluster, kind, reason, utcnow(), cluster.state, cluster.state, code=code, detail=detail)
    session.add(event)
    return event


def record_created(session: _Adds, cluster: Cluster, reason: str) -> ClusterEvent:
    """The first event of a new cluster, which starts in the model's default state (PENDING)."""
    event = _event(cluster, EventKind.CREATED, reason, utcnow(), None, S.PENDING)
    session.add(event)
    return event


def _event(
    cluster: Cluster,
    kind: EventKind | str,
    reason: str,
    at: datetime,
    from_state: State | None,
    to_state: State | None,
    *,
    code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> ClusterEvent:
    return ClusterEvent(
        id=new_id("evt"),
        tenant_id=cluster.tenant_id,
        cluster_id=cluster.id,
        at=at,
        kind=str(kind),
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        code=code,
        detail=detail,
    )
