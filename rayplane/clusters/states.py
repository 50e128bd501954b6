"""The cluster state machine: one table of allowed transitions, one function to move.

``transition`` is the only code that writes ``Cluster.state`` (a test greps for others).
Every accepted change appends a ``ClusterEvent`` in the caller's session, so the state
and its history commit together. It works with sync and async sessions alike: it only
mutates the ORM object and calls ``session.add``.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol

from rayplane.clusters.models import Cluster, ClusterEvent
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id


class State(enum.StrEnum):
    PENDING = "PENDING"
    PROVISIONING = "PROVISIONING"
    RUNNING = "RUNNING"
    UPDATING = "UPDATING"
    DEGRADED = "DEGRADED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    FAILED = "FAILED"
    DELETING = "DELETING"
    DELETED = "DELETED"


S = State
ALLOWED: dict[State, frozenset[State]] = {
    S.PENDING: frozenset({S.PROVISIONING, S.DELETING}),
    S.PROVISIONING: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    S.RUNNING: frozenset({S.UPDATING, S.DEGRADED, S.STOPPING, S.DELETING}),
    S.UPDATING: frozenset({S.RUNNING, S.DEGRADED, S.FAILED, S.DELETING}),
    S.DEGRADED: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    S.STOPPING: frozenset({S.STOPPED, S.DELETING}),
    S.STOPPED: frozenset({S.STARTING, S.DELETING}),
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.DELETING}),
    S.FAILED: frozenset({S.PROVISIONING, S.DELETING}),
    S.DELETING: frozenset({S.DELETED}),
    S.DELETED: frozenset(),
}

# States in which the cluster's compute is (or may be) up; used by stop and idle checks.
ACTIVE = frozenset({S.PROVISIONING, S.RUNNING, S.UPDATING, S.DEGRADED, S.STARTING})
LIVE = frozenset(State) - {S.DELETED}


class InvalidTransition(Exception):
    """A programming error: the reconciler asked for a move the table forbids."""


class _Adds(Protocol):
    def add(self, instance: object) -> None: ...


def can_move(current: State | str, to: State | str) -> bool:
    return State(to) in ALLOWED[State(current)]


def transition(
    session: _Adds,
    cluster: Cluster,
    to: State,
    *,
    reason: str,
    code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> ClusterEvent | None:
    """Move ``cluster`` to ``to`` and record why; ``None`` when it is already there.

    Raises ``InvalidTransition`` for a move not in ``ALLOWED``. The reason (and the cloud's
    error code, when there is one) become the cluster's ``state_reason``/``state_code``.
    """
    current = State(cluster.state)
    if current == to:
        return None
    if to not in ALLOWED[current]:
        raise InvalidTransition(f"{cluster.id}: {current} -> {to} is not allowed")
    cluster.state = to.value
    cluster.state_reason = reason
    cluster.state_code = code
    event = ClusterEvent(
        id=new_id("evt"),
        tenant_id=cluster.tenant_id,
        cluster_id=cluster.id,
        at=utcnow(),
        kind="state_changed",
        from_state=current.value,
        to_state=to.value,
        reason=reason,
        code=code,
        detail=detail,
    )
    session.add(event)
    return event


def record_event(
    session: _Adds,
    cluster: Cluster,
    kind: str,
    reason: str,
    *,
    code: str | None = None,
    detail: dict[str, Any] | None = None,
) -> ClusterEvent:
    """Append a non-state event (scaling, node lost, job finished, idle stop, errors)."""
    event = ClusterEvent(
        id=new_id("evt"),
        tenant_id=cluster.tenant_id,
        cluster_id=cluster.id,
        at=utcnow(),
        kind=kind,
        from_state=cluster.state,
        to_state=cluster.state,
        reason=reason,
        code=code,
        detail=detail,
    )
    session.add(event)
    return event
