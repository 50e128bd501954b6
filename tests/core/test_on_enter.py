"""What entering a state does, wherever the move comes from (``states.ON_ENTER``).

Clusters are created through the real API, reconciled with a scripted provider as a worker
would, and checked in Postgres: usage intervals, jobs and operations.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.clusters import store
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.reconcile import Reconciler
from rayplane.clusters.states import ON_ENTER, Effect, State, transition
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.jobs.models import Job
from rayplane.providers.base import TerminalError
from rayplane.settings import Settings
from rayplane.usage.models import UsageInterval
from tests.support.factories import Actor
from tests.support.scripted_provider import ScriptedProvider

SPEC = {
    "name": "enter",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 2}],
}


@pytest.fixture
def reconciler(sync_sessions: sessionmaker[Session], provider: ScriptedProvider, settings: Settings) -> Reconciler:
    return Reconciler(sync_sessions, {"local": provider}, settings, owner="test-on-enter")


async def running_cluster(
    client: httpx.AsyncClient, actor: Actor, reconciler: Reconciler, sessions: sessionmaker[Session]
) -> str:
    """A RUNNING cluster with open usage intervals and one job recorded as RUNNING."""
    r = await client.post("/v1/clusters", headers=actor.headers, json=SPEC)
    assert r.status_code == 202, r.text
    cid = str(r.json()["id"])
    for _ in range(3):
        reconciler.reconcile(cid)
    with sessions() as s, s.begin():
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        assert cluster.state == State.RUNNING
        s.add(
            Job(
                id=new_id("job"),
                tenant_id=cluster.tenant_id,
                cluster_id=cid,
                submission_id=f"sub-{cid}",
                entrypoint="python train.py",
                status="RUNNING",
                submitted_at=utcnow(),
            )
        )
    assert open_intervals(sessions, cid) == 2  # the head and the cpu group
    return cid


def open_intervals(sessions: sessionmaker[Session], cid: str) -> int:
    with sessions() as s:
        stmt = select(UsageInterval).where(UsageInterval.cluster_id == cid, UsageInterval.ended_at.is_(None))
        return len(list(s.execute(stmt).scalars()))


def jobs(sessions: sessionmaker[Session], cid: str) -> list[tuple[str, str | None]]:
    with sessions() as s:
        return [(j.status, j.message) for j in s.execute(select(Job).where(Job.cluster_id == cid)).scalars()]


def running_ops(sessions: sessionmaker[Session], cid: str) -> list[str]:
    with sessions() as s:
        stmt = select(Operation).where(Operation.cluster_id == cid, Operation.status == "Running")
        return [o.kind for o in s.execute(stmt).scalars()]


def test_the_table_closes_usage_wherever_compute_stops_being_watched() -> None:
    for state in (State.STOPPED, State.DELETED, State.FAILED):
        assert Effect.CLOSE_USAGE in ON_ENTER[state]
        assert Effect.END_JOBS in ON_ENTER[state]
        assert Effect.SETTLE_OPERATIONS in ON_ENTER[state]
    assert ON_ENTER.get(State.RUNNING, ()) == ()


async def test_a_running_cluster_that_fails_terminally_is_billed_no_more(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    """The bug the old branch-keyed side effects hid: RUNNING -> (DEGRADED ->) FAILED left the
    usage intervals open (billed every hour) and the job RUNNING for ever."""
    client, actor = committed
    cid = await running_cluster(client, actor, reconciler, sync_sessions)
    provider.fail_next = [TerminalError("the subscription was disabled", code="SubscriptionNotFound")]
    reconciler.reconcile(cid)
    with sync_sessions() as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        assert (cluster.state, cluster.state_code) == (State.FAILED, "SubscriptionNotFound")
    assert open_intervals(sync_sessions, cid) == 0
    assert jobs(sync_sessions, cid) == [("FAILED", "the cluster failed: the subscription was disabled")]
    assert running_ops(sync_sessions, cid) == []


async def test_a_move_made_outside_the_reconciler_runs_the_same_effects(
    committed: tuple[httpx.AsyncClient, Actor], reconciler: Reconciler, sync_sessions: sessionmaker[Session]
) -> None:
    """``transition`` itself runs the effects: a direct RUNNING -> STOPPING -> STOPPED in any
    session closes usage, ends the job and settles a stop that was asked for."""
    client, actor = committed
    cid = await running_cluster(client, actor, reconciler, sync_sessions)
    r = await client.post(f"/v1/clusters/{cid}:stop", headers=actor.headers)
    assert r.status_code == 202
    assert running_ops(sync_sessions, cid) == ["stop"]
    with sync_sessions() as s, s.begin():
        cluster = store.load(s, cid, lock=True)
        assert cluster is not None
        transition(s, cluster, State.STOPPING, reason="test")
        assert open_intervals(sync_sessions, cid) == 2  # STOPPING has no entry effect
        transition(s, cluster, State.STOPPED, reason="test")
        assert (cluster.observed, cluster.dashboard_url) == ({}, None)
    assert open_intervals(sync_sessions, cid) == 0
    assert jobs(sync_sessions, cid) == [("STOPPED", "the cluster was stopped")]
    assert running_ops(sync_sessions, cid) == []


async def test_entering_deleted_retires_the_record(
    committed: tuple[httpx.AsyncClient, Actor], reconciler: Reconciler, sync_sessions: sessionmaker[Session]
) -> None:
    client, actor = committed
    cid = await running_cluster(client, actor, reconciler, sync_sessions)
    r = await client.delete(f"/v1/clusters/{cid}", headers=actor.headers)
    assert r.status_code == 202
    reconciler.reconcile(cid)
    with sync_sessions() as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        assert cluster.state == State.DELETED
        assert cluster.deleted_at is not None
        assert cluster.next_reconcile_at is None
    assert open_intervals(sync_sessions, cid) == 0
    assert jobs(sync_sessions, cid) == [("STOPPED", "the cluster was deleted")]
    assert running_ops(sync_sessions, cid) == []


async def fail(cid: str, provider: ScriptedProvider, reconciler: Reconciler, sessions: sessionmaker[Session]) -> None:
    """A terminal error on a RUNNING cluster, then the pass that releases its nodes."""
    provider.fail_next = [TerminalError("the subscription was disabled", code="SubscriptionNotFound")]
    reconciler.reconcile(cid)
    assert reconciler.reconcile(cid) == "release"
    assert provider.running.get(cid) is None  # the nodes were stopped
    with sessions() as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        assert (cluster.state, cluster.release_pending, cluster.next_reconcile_at) == (State.FAILED, False, None)


async def test_a_failed_cluster_can_be_stopped_started_and_deleted(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    """``:stop`` and ``DELETE`` work from FAILED, and no operation is left Running with no
    pass to settle it (today a stop of a FAILED cluster stays Running for ever)."""
    client, actor = committed
    cid = await running_cluster(client, actor, reconciler, sync_sessions)
    await fail(cid, provider, reconciler, sync_sessions)

    r = await client.post(f"/v1/clusters/{cid}:stop", headers=actor.headers)
    assert r.status_code == 202
    reconciler.reconcile(cid)
    op = (await client.get(r.headers["Operation-Location"], headers=actor.headers)).json()
    assert op["status"] == "Succeeded"
    assert (await client.get(f"/v1/clusters/{cid}", headers=actor.headers)).json()["state"] == "STOPPED"

    r = await client.post(f"/v1/clusters/{cid}:start", headers=actor.headers)
    assert r.status_code == 202
    for _ in range(3):
        reconciler.reconcile(cid)
    assert (await client.get(f"/v1/clusters/{cid}", headers=actor.headers)).json()["state"] == "RUNNING"
    assert open_intervals(sync_sessions, cid) == 2  # billed again once nodes are observed

    await fail(cid, provider, reconciler, sync_sessions)
    r = await client.delete(f"/v1/clusters/{cid}", headers=actor.headers)
    assert r.status_code == 202
    reconciler.reconcile(cid)
    op = (await client.get(r.headers["Operation-Location"], headers=actor.headers)).json()
    assert op["status"] == "Succeeded"
    assert running_ops(sync_sessions, cid) == []
    assert open_intervals(sync_sessions, cid) == 0


async def test_a_start_or_update_of_a_failed_cluster_is_answered_not_left_running(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await running_cluster(client, actor, reconciler, sync_sessions)
    await fail(cid, provider, reconciler, sync_sessions)
    r = await client.post(f"/v1/clusters/{cid}:start", headers=actor.headers)
    assert r.status_code == 202
    reconciler.reconcile(cid)
    op = (await client.get(r.headers["Operation-Location"], headers=actor.headers)).json()
    assert (op["status"], op["error_code"]) == ("Failed", "SubscriptionNotFound")
    assert running_ops(sync_sessions, cid) == []
