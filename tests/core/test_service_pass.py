"""The reconciler's pass over a service (``service_pass``), against the real database.

Services are created and changed through the real API, reconciled in this process as a
worker would, with a scripted service runner (``tests/support/scripted_service.py``), and
checked in Postgres: states and events, operations, the spec, usage intervals per version.
The end-to-end tests with real Ray Serve are in ``tests/e2e/test_services_local.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.clusters.reconcile import Reconciler
from rayplane.clusters.states import SERVICE_ONLY
from rayplane.clusters.values import EventKind, State
from rayplane.providers.base import RetriableError, TerminalError
from rayplane.settings import Settings
from rayplane.usage.models import UsageInterval
from tests.support.factories import Actor
from tests.support.scripted_provider import ScriptedProvider
from tests.support.scripted_service import ScriptedServiceProvider, ScriptedServiceRunner

Client = tuple[httpx.AsyncClient, Actor]
APPS = [{"name": "echo", "import_path": "echo:app", "route_prefix": "/echo"}]
STEPPED = {"strategy": "incremental", "step_percent": 50, "interval_seconds": 30}
BIGGER = [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 2}]


def body(**over: Any) -> dict[str, Any]:
    return {
        "name": "echo",
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 2}],
        "serve": {"applications": APPS},
        **over,
    }


@pytest.fixture
def cloud() -> ScriptedServiceProvider:
    return ScriptedServiceProvider()


@pytest.fixture
def runner(cloud: ScriptedServiceProvider) -> ScriptedServiceRunner:
    return cloud.services


@pytest.fixture
def reconciler(sync_sessions: sessionmaker[Session], cloud: ScriptedServiceProvider, settings: Settings) -> Reconciler:
    return Reconciler(sync_sessions, {"local": cloud}, settings, owner="test-service-pass")


def row(sessions: sessionmaker[Session], sid: str) -> Cluster:
    with sessions() as s:
        c = s.get(Cluster, sid)
        assert c is not None
        return c


def passes(reconciler: Reconciler, sessions: sessionmaker[Session], sid: str, n: int) -> list[State]:
    """``n`` passes; the state after each."""
    out = []
    for _ in range(n):
        reconciler.reconcile(sid)
        out.append(row(sessions, sid).state)
    return out


def moves(sessions: sessionmaker[Session], sid: str) -> list[State | None]:
    with sessions() as s:
        stmt = select(ClusterEvent).where(ClusterEvent.cluster_id == sid, ClusterEvent.kind == EventKind.STATE_CHANGED)
        return [e.to_state for e in s.execute(stmt.order_by(ClusterEvent.at, ClusterEvent.id)).scalars()]


def events(sessions: sessionmaker[Session], sid: str, kind: EventKind) -> list[ClusterEvent]:
    with sessions() as s:
        stmt = select(ClusterEvent).where(ClusterEvent.cluster_id == sid, ClusterEvent.kind == kind)
        return list(s.execute(stmt).scalars())


def usage(sessions: sessionmaker[Session], sid: str) -> dict[str, tuple[str, int]]:
    """The open intervals: group -> (VM size, nodes)."""
    with sessions() as s:
        stmt = select(UsageInterval).where(UsageInterval.cluster_id == sid, UsageInterval.ended_at.is_(None))
        return {u.group_name: (u.vm_size, u.node_count) for u in s.execute(stmt).scalars()}


def op(sessions: sessionmaker[Session], r: httpx.Response) -> tuple[str, str | None, str | None]:
    """(status, error code, error message) of the operation a 202 answered with."""
    with sessions() as s:
        o = s.get(Operation, r.headers["Operation-Location"].rsplit("/", 1)[1])
        assert o is not None
        return o.status, o.error_code, o.error_message


async def call(client: Client, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
    http, actor = client
    r = await http.request(method, path, headers=actor.headers, json=json)
    assert r.status_code == 202, r.text
    return r


async def running(client: Client, reconciler: Reconciler, sessions: sessionmaker[Session], **over: Any) -> str:
    """A service RUNNING on version 1."""
    sid = str((await call(client, "POST", "/v1/services", body(**over))).json()["id"])
    assert passes(reconciler, sessions, sid, 2) == [State.DEPLOYING, State.RUNNING]
    return sid


async def test_create_deploys_then_runs_and_the_api_shows_the_endpoint(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    r = await call(committed, "POST", "/v1/services", body())
    sid = str(r.json()["id"])
    assert passes(reconciler, sync_sessions, sid, 2) == [State.DEPLOYING, State.RUNNING]
    assert moves(sync_sessions, sid) == [State.PROVISIONING, State.DEPLOYING, State.RUNNING]
    assert op(sync_sessions, r) == ("Succeeded", None, None)
    c = row(sync_sessions, sid)
    service = c.observed["service"]
    endpoint = f"http://127.0.0.1:{c.provider_state['listen_port']}"
    assert (service["endpoint_url"], service["active_version"], service["pending_version"]) == (endpoint, 1, None)
    assert service["applications"] == [{"version": 1, "name": "echo", "status": "RUNNING", "message": ""}]
    assert c.observed["versions"]["1"]["head"] == {"alive": True}
    assert c.observed_generation == c.generation == 1
    assert usage(sync_sessions, sid) == {"v1/head": ("Standard_D2s_v5", 1), "v1/cpu": ("Standard_D2s_v5", 1)}
    assert runner.routes[sid] == {1: 100}

    http, actor = committed
    got = (await http.get(f"/v1/services/{sid}", headers=actor.headers)).json()
    assert (got["state"], got["endpoint_url"], got["version"], got["active_version"]) == ("RUNNING", endpoint, 1, 1)
    assert [(a["name"], a["status"]) for a in got["applications"]] == [("echo", "RUNNING")]
    assert got["nodes"]["1"]["head"] == {"alive": True}


async def test_a_serve_only_patch_deploys_in_place_on_the_same_version(
    committed: Client, reconciler: Reconciler, cloud: ScriptedServiceProvider, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions)
    apps = [*APPS, {"name": "counter", "import_path": "counter:app", "route_prefix": "/counter"}]
    r = await call(committed, "PATCH", f"/v1/services/{sid}", {"serve": {"applications": apps}})
    assert r.json()["version"] == 1
    assert passes(reconciler, sync_sessions, sid, 2) == [State.DEPLOYING, State.RUNNING]
    assert op(sync_sessions, r) == ("Succeeded", None, None)
    c = row(sync_sessions, sid)
    assert c.observed_generation == c.generation == 2
    assert [a["name"] for a in c.observed["service"]["applications"]] == ["counter", "echo"]
    assert list(cloud.running) == [f"{sid}-v1"]  # no second cluster


async def test_an_image_patch_rolls_out_a_new_version_billed_beside_the_old(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions, rollout=STEPPED)
    patch = {"image": "example.azurecr.io/echo:2", "worker_groups": BIGGER}
    r = await call(committed, "PATCH", f"/v1/services/{sid}", patch)
    assert r.json()["version"] == 2
    # The new version starts, then takes half of the traffic; the next step waits its interval.
    assert passes(reconciler, sync_sessions, sid, 3) == [State.ROLLING_OUT] * 3
    c = row(sync_sessions, sid)
    assert c.observed["service"]["pending_version"] == 2
    assert c.observed["service"]["traffic_percent"] == 50
    assert c.service is not None
    assert c.service.previous is not None
    assert usage(sync_sessions, sid) == {
        "v1/head": ("Standard_D2s_v5", 1),
        "v1/cpu": ("Standard_D2s_v5", 1),
        "v2/head": ("Standard_D2s_v5", 1),
        "v2/cpu": ("Standard_D4s_v5", 1),
    }
    assert op(sync_sessions, r)[0] == "Running"

    runner.advance(30)
    assert passes(reconciler, sync_sessions, sid, 1) == [State.RUNNING]
    c = row(sync_sessions, sid)
    assert c.service is not None
    assert (c.service.version, c.service.previous) == (2, None)
    assert (c.observed["service"]["active_version"], c.observed["service"]["pending_version"]) == (2, None)
    assert op(sync_sessions, r) == ("Succeeded", None, None)
    assert runner.routes[sid] == {2: 100}
    passes(reconciler, sync_sessions, sid, 1)  # observes version 2 alone
    assert usage(sync_sessions, sid) == {"v2/head": ("Standard_D2s_v5", 1), "v2/cpu": ("Standard_D4s_v5", 1)}


async def test_a_version_never_healthy_is_dropped_once_and_its_number_not_reused(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions)
    before = row(sync_sessions, sid)
    r = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:2"})
    runner.fail(sid, 2, "ModuleNotFoundError: No module named 'echo'")
    assert passes(reconciler, sync_sessions, sid, 2) == [State.ROLLING_OUT] * 2  # within its health timeout
    runner.advance(600)
    assert passes(reconciler, sync_sessions, sid, 3) == [State.RUNNING] * 3

    c = row(sync_sessions, sid)
    assert c.service is not None
    assert before.service is not None
    assert (c.spec, c.service.serve, c.service.version, c.service.previous) == (
        before.spec,
        before.service.serve,
        1,
        None,
    )
    assert c.generation == 3  # the PATCH's, then the rollback's: an If-Match on the PATCH's fails
    assert c.observed_generation == 3
    status, code, message = op(sync_sessions, r)
    assert (status, code) == ("Failed", "RolloutFailed")
    assert message is not None
    assert "ModuleNotFoundError" in message
    failed = events(sync_sessions, sid, EventKind.ROLLOUT_FAILED)
    assert len(failed) == 1
    assert "ModuleNotFoundError" in (failed[0].reason or "")
    assert c.provider_state["failed"] == [2]
    assert (c.observed["service"]["active_version"], c.observed["service"]["pending_version"]) == (1, None)
    assert "ModuleNotFoundError" in c.observed["service"]["failure"]

    r = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:3"})
    assert r.json()["version"] == 3
    runner.recover(sid, 2)
    assert passes(reconciler, sync_sessions, sid, 1) == [State.ROLLING_OUT]
    assert row(sync_sessions, sid).observed["service"]["pending_version"] == 3


async def test_a_rollback_during_a_rollout_drops_the_new_version(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions, rollout=STEPPED)
    update = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:2"})
    passes(reconciler, sync_sessions, sid, 2)
    assert row(sync_sessions, sid).observed["service"]["traffic_percent"] == 50
    runner.hold_drain(sid, 2)  # requests in flight on version 2

    rollback = await call(committed, "POST", f"/v1/services/{sid}:rollback")
    assert passes(reconciler, sync_sessions, sid, 1) == [State.ROLLING_BACK]
    assert row(sync_sessions, sid).rollback_requested is True
    assert runner.routes[sid] == {1: 100}
    http, actor = committed
    got = (await http.get(f"/v1/services/{sid}", headers=actor.headers)).json()
    # A rollback pass observes nothing: the last observation stays, not an empty one.
    assert (got["dashboard_url"], set(got["nodes"])) == (f"http://127.0.0.1/{sid}-v1", {"1", "2"})
    runner.release_drain(sid, 2)
    assert passes(reconciler, sync_sessions, sid, 1) == [State.RUNNING]
    got = (await http.get(f"/v1/services/{sid}", headers=actor.headers)).json()
    assert (got["dashboard_url"], set(got["nodes"])) == (f"http://127.0.0.1/{sid}-v1", {"1"})

    c = row(sync_sessions, sid)
    assert c.rollback_requested is False
    assert c.service is not None
    assert (c.service.version, c.service.previous) == (1, None)
    assert op(sync_sessions, rollback) == ("Succeeded", None, None)
    assert op(sync_sessions, update)[:2] == ("Failed", "RolloutFailed")
    assert f"{sid}-v2" not in runner.provider.running
    assert moves(sync_sessions, sid)[-3:] == [State.ROLLING_OUT, State.ROLLING_BACK, State.RUNNING]


async def test_a_rollback_before_the_new_version_started_returns_the_spec(
    committed: Client, reconciler: Reconciler, cloud: ScriptedServiceProvider, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions)
    before = row(sync_sessions, sid)
    update = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:2"})
    rollback = await call(committed, "POST", f"/v1/services/{sid}:rollback")
    assert passes(reconciler, sync_sessions, sid, 2) == [State.RUNNING] * 2
    c = row(sync_sessions, sid)
    assert c.service is not None
    assert (c.spec, c.service.version, c.service.previous, c.rollback_requested) == (before.spec, 1, None, False)
    assert op(sync_sessions, rollback) == ("Succeeded", None, None)
    assert op(sync_sessions, update)[:2] == ("Failed", "RolloutFailed")
    assert ("ensure", f"{sid}-v2") not in cloud.calls  # the dropped version never starts


async def test_a_second_change_supersedes_the_pending_version(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions, rollout=STEPPED)
    first = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:2"})
    assert passes(reconciler, sync_sessions, sid, 1) == [State.ROLLING_OUT]
    second = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:3"})
    assert second.json()["version"] == 3
    # Version 2 dropped (not as a failure), version 3 started, then half of the traffic.
    assert passes(reconciler, sync_sessions, sid, 3) == [State.ROLLING_OUT] * 3
    assert op(sync_sessions, second)[0] == "Running"
    c = row(sync_sessions, sid)
    assert (c.observed["service"]["pending_version"], c.provider_state["failed"]) == (3, [])
    runner.advance(30)
    assert passes(reconciler, sync_sessions, sid, 1) == [State.RUNNING]
    assert op(sync_sessions, first)[0] == op(sync_sessions, second)[0] == "Succeeded"
    assert row(sync_sessions, sid).observed["service"]["active_version"] == 3
    assert events(sync_sessions, sid, EventKind.ROLLOUT_FAILED) == []


async def test_a_change_recorded_while_a_version_is_dropped_is_kept(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    """The pass that drops version 2 must not roll back version 3, recorded mid-pass."""
    sid = await running(committed, reconciler, sync_sessions)
    await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:2"})
    runner.fail(sid, 2, "ModuleNotFoundError: No module named 'echo'")
    assert passes(reconciler, sync_sessions, sid, 1) == [State.ROLLING_OUT]
    runner.expire(sid)
    runner.pause(sid)
    dropping = asyncio.create_task(asyncio.to_thread(reconciler.reconcile, sid))
    assert await asyncio.to_thread(runner.reached.wait, 30)
    third = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:3"})
    runner.resume.set()
    await dropping
    c = row(sync_sessions, sid)
    assert c.service is not None
    assert (c.spec.image, c.service.version) == ("example.azurecr.io/echo:3", 3)
    assert c.service.previous is not None
    assert op(sync_sessions, third)[0] == "Running"
    assert passes(reconciler, sync_sessions, sid, 1) == [State.ROLLING_OUT]
    assert row(sync_sessions, sid).observed["service"]["pending_version"] == 3


async def test_a_change_recorded_while_a_rollout_completes_rolls_back_to_the_new_serving_version(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions, rollout=STEPPED)
    await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:2"})
    passes(reconciler, sync_sessions, sid, 2)  # version 2 at 50 %
    runner.advance(30)
    runner.pause(sid)
    completing = asyncio.create_task(asyncio.to_thread(reconciler.reconcile, sid))
    assert await asyncio.to_thread(runner.reached.wait, 30)
    await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:3"})
    runner.resume.set()
    await completing
    c = row(sync_sessions, sid)
    assert c.service is not None
    assert c.service.previous is not None
    assert (c.observed["service"]["active_version"], c.service.previous.spec.image) == (2, "example.azurecr.io/echo:2")
    runner.fail(sid, 3, "ModuleNotFoundError: No module named 'echo'")
    runner.expire(sid)
    assert passes(reconciler, sync_sessions, sid, 2) == [State.ROLLING_OUT, State.RUNNING]
    c = row(sync_sessions, sid)
    assert c.service is not None
    assert (c.service.version, c.spec.image) == (2, "example.azurecr.io/echo:2")  # what serves, not version 1


async def test_losing_the_serving_head_degrades_then_recovers(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions)
    runner.kill_head(sid, 1)
    assert passes(reconciler, sync_sessions, sid, 1) == [State.DEGRADED]
    assert row(sync_sessions, sid).state_code == "NodeLost"
    assert [e.reason for e in events(sync_sessions, sid, EventKind.NODE_LOST)] == ["the head node is down"]
    assert passes(reconciler, sync_sessions, sid, 1) == [State.RUNNING]
    assert row(sync_sessions, sid).state_reason == "recovered"
    assert usage(sync_sessions, sid)["v1/head"] == ("Standard_D2s_v5", 1)


async def test_stop_start_and_delete(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions)
    endpoint = row(sync_sessions, sid).observed["service"]["endpoint_url"]

    stop = await call(committed, "POST", f"/v1/services/{sid}:stop")
    assert passes(reconciler, sync_sessions, sid, 1) == [State.STOPPED]
    assert op(sync_sessions, stop) == ("Succeeded", None, None)
    assert usage(sync_sessions, sid) == {}
    assert runner.provider.running == {}
    assert sid not in runner.routes

    start = await call(committed, "POST", f"/v1/services/{sid}:start")
    assert passes(reconciler, sync_sessions, sid, 2) == [State.DEPLOYING, State.RUNNING]
    assert op(sync_sessions, start) == ("Succeeded", None, None)
    assert row(sync_sessions, sid).observed["service"]["endpoint_url"] == endpoint
    assert set(usage(sync_sessions, sid)) == {"v1/head", "v1/cpu"}

    delete = await call(committed, "DELETE", f"/v1/services/{sid}")
    assert passes(reconciler, sync_sessions, sid, 1) == [State.DELETED]
    assert op(sync_sessions, delete) == ("Succeeded", None, None)
    assert ("teardown", sid) in runner.calls
    assert runner.provider.running == {}
    assert usage(sync_sessions, sid) == {}


async def test_a_runner_error_is_retried_on_the_next_pass(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = str((await call(committed, "POST", "/v1/services", body())).json()["id"])
    runner.fail_next = [RetriableError("Serve's dashboard did not answer", code="ServeUnavailable")]
    assert passes(reconciler, sync_sessions, sid, 3) == [State.PROVISIONING, State.DEPLOYING, State.RUNNING]
    assert [e.code for e in events(sync_sessions, sid, EventKind.ERROR)] == ["ServeUnavailable"]


async def test_a_cloud_without_a_service_runner_fails_the_service(
    committed: Client, sync_sessions: sessionmaker[Session], settings: Settings
) -> None:
    reconciler = Reconciler(sync_sessions, {"local": ScriptedProvider()}, settings, owner="test-service-pass")
    r = await call(committed, "POST", "/v1/services", body())
    sid = str(r.json()["id"])
    assert passes(reconciler, sync_sessions, sid, 1) == [State.FAILED]
    assert row(sync_sessions, sid).state_code == "ServicesUnsupported"
    assert op(sync_sessions, r)[:2] == ("Failed", "ServicesUnsupported")


async def test_a_plain_cluster_never_enters_a_service_state(
    committed: Client, reconciler: Reconciler, sync_sessions: sessionmaker[Session]
) -> None:
    spec = {k: v for k, v in body().items() if k != "serve"}
    cid = str((await call(committed, "POST", "/v1/clusters", spec)).json()["id"])
    passes(reconciler, sync_sessions, cid, 2)
    await call(committed, "PATCH", f"/v1/clusters/{cid}", {"worker_groups": BIGGER})
    passes(reconciler, sync_sessions, cid, 2)
    await call(committed, "POST", f"/v1/clusters/{cid}:stop")
    passes(reconciler, sync_sessions, cid, 1)
    history = moves(sync_sessions, cid)
    assert history == [
        State.PROVISIONING,
        State.RUNNING,
        State.UPDATING,
        State.RUNNING,
        State.STOPPING,
        State.STOPPED,
    ]
    assert not SERVICE_ONLY & set(history)


async def test_a_new_version_that_cannot_start_is_dropped_and_the_serving_one_never_stops(
    committed: Client, reconciler: Reconciler, runner: ScriptedServiceRunner, sync_sessions: sessionmaker[Session]
) -> None:
    sid = await running(committed, reconciler, sync_sessions)
    before = row(sync_sessions, sid)
    r = await call(committed, "PATCH", f"/v1/services/{sid}", {"image": "example.azurecr.io/echo:2"})
    runner.fail_next.append(TerminalError("no quota left for Standard_D2s_v5", code="QuotaExceeded"))
    calls = len(runner.calls)
    states = passes(reconciler, sync_sessions, sid, 2)
    assert State.FAILED not in states
    assert states[-1] == State.RUNNING
    c = row(sync_sessions, sid)
    assert c.service is not None
    assert before.service is not None
    assert (c.spec, c.service.version, c.service.previous) == (before.spec, 1, None)
    assert (c.rollback_requested, c.rollback_reason) == (False, None)
    status, code, message = op(sync_sessions, r)
    assert (status, code) == ("Failed", "RolloutFailed")
    assert "could not be started: no quota left" in (message or "")
    abandoned = events(sync_sessions, sid, EventKind.ROLLBACK_REQUESTED)
    assert [e.code for e in abandoned] == ["RolloutAbandoned"]
    assert [call for call, _ in runner.calls[calls:] if call in ("stop", "teardown")] == []
    assert c.observed["service"]["active_version"] == 1
