"""When a cluster's long-running operations are done: their outcome from the cluster's state.

``settle`` runs in the worker's locked apply phase, at the end of every reconcile pass and on
entering a state that ends operations (``rayplane.clusters.states.ON_ENTER``); it is
idempotent, so running it twice in one pass changes nothing the second time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from rayplane.clusters import store
from rayplane.clusters.models import Cluster
from rayplane.clusters.values import OperationKind, OperationStatus, State

K = OperationKind
# Kinds that a FAILED cluster answers with Failed (a stop or delete can still finish).
FAILS_ON_FAILED = frozenset({K.CREATE, K.START, K.RETRY, K.UPDATE})


def outcome(kind: OperationKind, cluster: Cluster, target_generation: int) -> OperationStatus | None:
    """``Succeeded``/``Failed`` once the cluster's state answers the operation, else None."""
    state = cluster.state
    if state == State.FAILED and kind in FAILS_ON_FAILED:
        return OperationStatus.FAILED
    reached = {
        K.CREATE: state == State.RUNNING,
        K.START: state == State.RUNNING,
        K.RETRY: state == State.RUNNING,
        K.UPDATE: state == State.RUNNING and cluster.observed_generation >= target_generation,
        K.STOP: state == State.STOPPED,
        K.DELETE: state == State.DELETED,
        K.ROLLBACK: state == State.RUNNING and not cluster.rollback_requested,
    }
    return OperationStatus.SUCCEEDED if reached.get(kind) else None


def fail_running(
    session: Session, cluster: Cluster, kinds: frozenset[OperationKind], code: str, message: str, now: datetime
) -> None:
    """End the running operations of ``kinds`` Failed with ``code``/``message``: what their
    state could not say (a service's update whose new version was rolled back ends with the
    service RUNNING on its old version)."""
    for op in store.running_operations(session, cluster.id):
        if op.kind in kinds:
            op.status, op.completed_at = OperationStatus.FAILED, now
            op.error_code, op.error_message = code, message[:1000]
    session.flush()


def settle(session: Session, cluster: Cluster, now: datetime) -> None:
    """Mark running operations Succeeded or Failed from the cluster's current state."""
    for op in store.running_operations(session, cluster.id):
        done = outcome(op.kind, cluster, op.target_generation)
        if done == OperationStatus.FAILED:
            op.error_code, op.error_message = cluster.state_code, cluster.state_reason
        if done:
            op.status, op.completed_at = done, now
    session.flush()
