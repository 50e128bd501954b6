"""The state machine over every (from, to) pair."""

from __future__ import annotations

import itertools
from typing import cast

import pytest
from sqlalchemy.orm import Session

from rayplane.clusters.models import Cluster, ClusterEvent
from rayplane.clusters.states import ALLOWED, SERVICE_ONLY, InvalidTransition, State, can_move, transition
from rayplane.clusters.values import ClusterKind


class _NoRows:
    def scalars(self) -> list[object]:
        return []


class Recorder:
    """Stands in for a SQLAlchemy session with no rows: the table's moves and the events
    they add are checked here; what the entry effects write is checked against Postgres in
    tests/core/test_on_enter.py."""

    def __init__(self) -> None:
        self.added: list[object] = []

    def add(self, instance: object) -> None:
        self.added.append(instance)

    def execute(self, statement: object) -> _NoRows:
        return _NoRows()

    def flush(self) -> None:
        return None


def cluster_in(state: State, kind: ClusterKind = ClusterKind.CLUSTER) -> Cluster:
    return Cluster(id="cls_test", tenant_id="ten_test", name="c", state=state.value, spec={}, kind=kind)


DESIGN_TABLE = {
    "PENDING": {"PROVISIONING", "DELETING"},
    "PROVISIONING": {"RUNNING", "FAILED", "DELETING", "DEPLOYING"},
    "RUNNING": {"UPDATING", "DEGRADED", "STOPPING", "DELETING", "DEPLOYING", "ROLLING_OUT", "ROLLING_BACK"},
    "UPDATING": {"RUNNING", "DEGRADED", "FAILED", "DELETING"},
    "DEGRADED": {"RUNNING", "FAILED", "DELETING", "DEPLOYING", "ROLLING_OUT"},
    "STOPPING": {"STOPPED", "DELETING"},
    "STOPPED": {"STARTING", "DELETING"},
    "STARTING": {"RUNNING", "FAILED", "DELETING", "DEPLOYING"},
    # Services only.
    "DEPLOYING": {"RUNNING", "DEGRADED", "ROLLING_OUT", "FAILED", "STOPPING", "DELETING"},
    "ROLLING_OUT": {"RUNNING", "DEGRADED", "ROLLING_BACK", "DEPLOYING", "FAILED", "STOPPING", "DELETING"},
    "ROLLING_BACK": {"RUNNING", "DEGRADED", "DEPLOYING", "FAILED", "STOPPING", "DELETING"},
    "FAILED": {"PROVISIONING", "STOPPING", "DELETING"},  # STOPPING: a stop asked of a FAILED cluster completes
    "DELETING": {"DELETED"},
    "DELETED": set(),
}


def test_table_is_the_designed_one() -> None:
    assert {k.value: {v.value for v in vs} for k, vs in ALLOWED.items()} == DESIGN_TABLE


@pytest.mark.parametrize(("source", "target"), list(itertools.product(State, State)))
def test_every_pair(source: State, target: State) -> None:
    cluster = cluster_in(source, ClusterKind.SERVICE if target in SERVICE_ONLY else ClusterKind.CLUSTER)
    recorder = Recorder()
    session = cast(Session, recorder)
    if source == target:
        assert transition(session, cluster, target, reason="same") is None
        assert recorder.added == []
        return
    if target in ALLOWED[source]:
        event = transition(session, cluster, target, reason="why", code="Code")
        assert cluster.state == target.value
        assert cluster.state_reason == "why"
        assert cluster.state_code == "Code"
        assert isinstance(event, ClusterEvent)
        assert recorder.added == [event]
        assert (event.from_state, event.to_state, event.kind) == (source.value, target.value, "state_changed")
        assert can_move(source, target)
    else:
        with pytest.raises(InvalidTransition):
            transition(session, cluster, target, reason="nope")
        assert cluster.state == source.value
        assert recorder.added == []
        assert not can_move(source, target)


@pytest.mark.parametrize("target", sorted(SERVICE_ONLY))
def test_a_plain_cluster_never_enters_a_service_state(target: State) -> None:
    cluster = cluster_in(State.RUNNING)
    with pytest.raises(InvalidTransition, match="service"):
        transition(cast(Session, Recorder()), cluster, target, reason="why")
    assert cluster.state == State.RUNNING
