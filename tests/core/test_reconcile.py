"""The reconciler's decisions over a real database, with an in-memory provider.

Clusters are created through the real API (committed), then reconciled pass by pass with
a sync session factory on the same database, as a worker would.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from rayplane.clusters import store
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.clusters.reconcile import Reconciler
from rayplane.db.base import utcnow
from rayplane.providers.base import ProviderEvent, RetriableError, TerminalError
from rayplane.settings import Settings
from rayplane.usage.models import UsageInterval
from tests.support.factories import Actor
from tests.support.scripted_provider import ScriptedProvider

SPEC = {
    "name": "recon",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 3}],
}


@pytest.fixture
def reconciler(sync_sessions: sessionmaker[Session], provider: ScriptedProvider, settings: Settings) -> Reconciler:
    fast = settings.model_copy(update={"max_attempts": 3})
    return Reconciler(sync_sessions, {"local": provider}, fast, owner="test-worker")


async def create(client: httpx.AsyncClient, actor: Actor, **over: Any) -> str:
    r = await client.post("/v1/clusters", headers=actor.headers, json={**SPEC, **over})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def cluster(sessions: sessionmaker[Session], cid: str) -> Cluster:
    with sessions() as s:
        c = s.get(Cluster, cid)
        assert c is not None
        return c


def events(sessions: sessionmaker[Session], cid: str) -> list[tuple[str, str | None]]:
    with sessions() as s:
        rows = s.execute(select(ClusterEvent).where(ClusterEvent.cluster_id == cid).order_by(ClusterEvent.id)).scalars()
        return [(e.kind, e.to_state) for e in rows]


def usage(sessions: sessionmaker[Session], cid: str) -> list[tuple[str, int, bool]]:
    with sessions() as s:
        rows = s.execute(
            select(UsageInterval).where(UsageInterval.cluster_id == cid).order_by(UsageInterval.started_at)
        ).scalars()
        return [(u.group_name, u.node_count, u.ended_at is None) for u in rows]


def ops(sessions: sessionmaker[Session], cid: str) -> list[tuple[str, str]]:
    with sessions() as s:
        rows = s.execute(select(Operation).where(Operation.cluster_id == cid).order_by(Operation.id)).scalars()
        return [(o.kind, o.status) for o in rows]


async def test_create_to_running_with_events_usage_and_operation(
    committed: tuple[httpx.AsyncClient, Actor], reconciler: Reconciler, sync_sessions: sessionmaker[Session]
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    assert reconciler.reconcile(cid) == "ensure"
    assert cluster(sync_sessions, cid).state == "PROVISIONING"
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert c.state == "RUNNING"
    assert c.observed["groups"] == {"cpu": {"ready": 1, "wanted": 1}}
    assert c.observed_generation == c.generation == 1
    assert c.lease_owner is None
    assert events(sync_sessions, cid) == [
        ("created", "PENDING"),
        ("state_changed", "PROVISIONING"),
        ("state_changed", "RUNNING"),
    ]
    assert ops(sync_sessions, cid) == [("create", "Succeeded")]
    assert sorted(usage(sync_sessions, cid)) == [("cpu", 1, True), ("head", 1, True)]
    assert c.next_reconcile_at is not None


async def test_lost_node_degrades_then_recovers(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)
    provider.kill(cid, "cpu")
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert c.state == "DEGRADED"
    assert c.state_reason == "group cpu: 0 of 1 nodes running"
    assert ("node_lost", "DEGRADED") in events(sync_sessions, cid)
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).state == "RUNNING"
    # usage: the lost node's interval closed, a new one opened when it came back
    assert [u for u in usage(sync_sessions, cid) if u[0] == "cpu"] == [("cpu", 1, False), ("cpu", 1, True)]


async def test_resize_goes_through_updating(
    committed: tuple[httpx.AsyncClient, Actor], reconciler: Reconciler, sync_sessions: sessionmaker[Session]
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)
    groups = [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 2, "max_nodes": 3}]
    r = await client.patch(f"/v1/clusters/{cid}", headers=actor.headers, json={"worker_groups": groups})
    assert r.status_code == 202
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).state == "UPDATING"
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert (c.state, c.observed_generation, c.observed["groups"]["cpu"]) == (
        "RUNNING",
        2,
        {"ready": 2, "wanted": 2},
    )
    assert ops(sync_sessions, cid) == [("create", "Succeeded"), ("update", "Succeeded")]
    assert [u for u in usage(sync_sessions, cid) if u[0] == "cpu"] == [("cpu", 1, False), ("cpu", 2, True)]


async def test_stop_start_delete(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)
    await client.post(f"/v1/clusters/{cid}:stop", headers=actor.headers)
    assert reconciler.reconcile(cid) == "stop"
    c = cluster(sync_sessions, cid)
    assert c.state == "STOPPED"
    assert c.next_reconcile_at is None
    assert cid not in provider.running
    assert all(not open_ for _, _, open_ in usage(sync_sessions, cid))
    await client.post(f"/v1/clusters/{cid}:start", headers=actor.headers)
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).state == "STARTING"
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).state == "RUNNING"
    await client.delete(f"/v1/clusters/{cid}", headers=actor.headers)
    assert reconciler.reconcile(cid) == "teardown"
    c = cluster(sync_sessions, cid)
    assert (c.state, c.next_reconcile_at, c.deleted_at is not None) == ("DELETED", None, True)
    assert [k for k, _ in ops(sync_sessions, cid)] == ["create", "stop", "start", "delete"]
    assert ops(sync_sessions, cid)[-1] == ("delete", "Succeeded")
    # the name is free again
    assert await create(client, actor) != cid


async def test_retriable_errors_back_off_then_fail_and_retry_recovers(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    provider.fail_next = [RetriableError("no capacity", code="AllocationFailed") for _ in range(3)]
    before = utcnow()
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert (c.state, c.attempts) == ("PROVISIONING", 1)
    assert c.next_reconcile_at is not None
    assert c.next_reconcile_at > before
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert c.state == "FAILED"
    assert c.state_code == "AllocationFailed"
    assert "gave up after 3 attempts" in (c.state_reason or "")
    # Entering FAILED asks for one pass that releases whatever compute the cluster had.
    assert c.release_pending
    assert c.next_reconcile_at is not None
    assert reconciler.reconcile(cid) == "release"
    c = cluster(sync_sessions, cid)
    assert (c.state, c.release_pending, c.next_reconcile_at) == ("FAILED", False, None)
    assert provider.calls[-1] == ("stop", cid)
    assert ops(sync_sessions, cid) == [("create", "Failed")]
    r = await client.post(f"/v1/clusters/{cid}:retry", headers=actor.headers)
    assert r.status_code == 202
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).state == "RUNNING"
    assert ops(sync_sessions, cid)[-1] == ("retry", "Succeeded")


async def test_terminal_error_fails_at_once(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    reconciler.reconcile(cid)
    provider.fail_next = [TerminalError("subscription quota reached", code="QuotaExceeded")]
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert (c.state, c.state_code, c.state_reason) == ("FAILED", "QuotaExceeded", "subscription quota reached")


async def test_a_held_lease_skips_the_pass_until_it_expires(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    with sync_sessions() as s, s.begin():
        assert store.acquire_lease(s, cid, "other-worker", 60)
    assert reconciler.reconcile(cid) == "busy"
    assert provider.calls == []
    with sync_sessions() as s, s.begin():
        s.execute(update(Cluster).where(Cluster.id == cid).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert reconciler.reconcile(cid) == "ensure"


async def test_sweep_claims_only_due_rows_and_reclaims_after_the_hold(
    committed: tuple[httpx.AsyncClient, Actor], sync_sessions: sessionmaker[Session]
) -> None:
    client, actor = committed
    due = await create(client, actor, name="due")
    later = await create(client, actor, name="later")
    with sync_sessions() as s, s.begin():
        s.execute(update(Cluster).where(Cluster.id == later).values(next_reconcile_at=utcnow() + timedelta(hours=1)))
    with sync_sessions() as s, s.begin():
        claimed = store.claim_due(s, limit=1000, hold_seconds=30)
    assert due in claimed
    assert later not in claimed
    with sync_sessions() as s, s.begin():
        assert due not in store.claim_due(s, limit=1000, hold_seconds=30)  # held: the nudge is in flight
        s.execute(update(Cluster).where(Cluster.id == due).values(next_reconcile_at=utcnow() - timedelta(seconds=1)))
    with sync_sessions() as s, s.begin():
        assert due in store.claim_due(s, limit=1000, hold_seconds=30)  # the nudge was lost: sent again


async def test_autoscale_up_on_demand_and_down_when_idle(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)
    provider.demand[cid] = {"cpu": 5}
    reconciler.reconcile(cid)
    assert provider.running[cid]["cpu"] == 3
    assert ("scaled", "RUNNING") in events(sync_sessions, cid)
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).observed["groups"]["cpu"] == {"ready": 3, "wanted": 3}
    provider.idle[cid] = {"cpu": 2}
    reconciler.reconcile(cid)
    assert provider.running[cid]["cpu"] == 1
    assert cluster(sync_sessions, cid).state == "RUNNING"


async def test_idle_cluster_is_stopped_with_a_reason(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor, idle_timeout_minutes=5)
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)
    provider.cluster_idle[cid] = 3600.0
    with sync_sessions() as s, s.begin():
        s.execute(update(Cluster).where(Cluster.id == cid).values(last_activity_at=utcnow() - timedelta(minutes=6)))
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert c.desired_state == "stopped"
    assert ("idle_stop", "RUNNING") in events(sync_sessions, cid)
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).state == "STOPPED"


async def test_a_fatal_observation_fails_a_provisioning_cluster_at_once(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    reconciler.reconcile(cid)
    assert cluster(sync_sessions, cid).state == "PROVISIONING"
    why = "the cpu pods can never be scheduled: 0/1 nodes are available: 1 Insufficient cpu."
    provider.fatal[cid] = ProviderEvent("scheduling", why, "Unschedulable")
    reconciler.reconcile(cid)
    c = cluster(sync_sessions, cid)
    assert c.state == "FAILED"
    with sync_sessions() as s:
        last = s.execute(
            select(ClusterEvent).where(ClusterEvent.cluster_id == cid).order_by(ClusterEvent.id.desc())
        ).scalars()
        failed = next(e for e in last if e.to_state == "FAILED")
        assert (failed.code, failed.reason) == ("Unschedulable", why)


async def test_observed_causes_are_recorded_once_each(
    committed: tuple[httpx.AsyncClient, Actor],
    reconciler: Reconciler,
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
) -> None:
    client, actor = committed
    cid = await create(client, actor)
    reconciler.reconcile(cid)
    first = ProviderEvent("scheduling", "the cpu pods cannot be scheduled: 0/1 nodes are available", "FailedScheduling")
    provider.causes[cid] = (first,)
    for _ in range(3):
        reconciler.reconcile(cid)
    second = ProviderEvent("scheduling", "the gpu pods cannot be scheduled: Insufficient nvidia.com/gpu", None)
    provider.causes[cid] = (first, second)
    reconciler.reconcile(cid)
    reconciler.reconcile(cid)

    def reasons() -> list[str]:
        with sync_sessions() as s:
            rows = s.execute(
                select(ClusterEvent).where(ClusterEvent.cluster_id == cid, ClusterEvent.kind == "scheduling")
            ).scalars()
            return [str(e.reason) for e in rows]

    assert reasons() == [first.reason, second.reason]
    assert cluster(sync_sessions, cid).state == "RUNNING"
