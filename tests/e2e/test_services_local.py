"""Services through the whole control plane on the local provider: the API, the Celery
worker's reconciler, real Ray Serve and the real Caddy endpoint, with ``wrk`` as the load.

One service carries the tests in file order: deploy two applications and call them; change
the Serve config (in place: same version, no new cluster); change the image (a new version
on a new cluster) under load with zero failed requests; a bad version rolled back
automatically with Serve's error, under load, with zero failed requests; delete.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import Stack, local_stack, wait_for
from tests.support.wrk import Wrk, assert_no_errors, parse_wrk

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is missing (make wrk)"),
]

E2E_REDIS_DB = 15  # 7-14 are other e2e modules'
APPS_DIR = Path(__file__).resolve().parents[1] / "support" / "serve_apps"
STEP = 480.0
ON_WORKER = {"rayplane_group_cpu": 0.01}  # the local provider's resource of group "cpu"


def serve(greeting: str = "hello", *, broken: bool = False, on_worker: bool = True) -> dict[str, Any]:
    env = {"working_dir": str(APPS_DIR)}
    apps: list[dict[str, Any]] = [
        {
            "name": "echo",
            "import_path": "echo:app",
            "route_prefix": "/echo",
            "runtime_env": env,
            "deployments": [{"name": "Echo", "user_config": {"greeting": greeting}}],
        },
        {
            "name": "counter",
            "import_path": "counter:app",
            "route_prefix": "/counter",
            "runtime_env": env,
            # On the worker node, so it outlives the head (the head kill test).
            "deployments": [{"name": "Counter", "ray_actor_options": {"num_cpus": 0, "resources": ON_WORKER}}]
            if on_worker
            else [],
        },
    ]
    if broken:
        apps.append(
            {"name": "broken", "import_path": "no_such_module:app", "route_prefix": "/broken", "runtime_env": env}
        )
    return {"applications": apps}


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    with local_stack(admin_db_url, redis_url, E2E_REDIS_DB) as s:
        yield s


class Svc:
    """The module's service: its id and ETag-aware calls."""

    id: str = ""


SVC = Svc()


def get(stack: Stack) -> dict[str, Any]:
    return stack.cluster(SVC.id)


def patch(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    etag = stack.request("GET", f"/v1/services/{SVC.id}").headers["ETag"]
    r = stack.request("PATCH", f"/v1/services/{SVC.id}", json=body, headers={"If-Match": etag})
    assert r.status_code == 202, r.text
    return {"op": r.headers["Operation-Location"], "body": r.json()}


def operation(stack: Stack, location: str, timeout: float = STEP) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        op = stack.request("GET", location).json()
        return dict(op) if op["status"] != "Running" else None

    return dict(wait_for(done, timeout, f"{location} to end"))


def explain(stack: Stack, op: dict[str, Any]) -> str:
    """The operation, the service's events and the stack's log tail: what a failure needs."""
    lines = [f"{e['at']} {e['kind']} {e['to_state']} {e['code']} {e['reason']}" for e in stack.events(SVC.id)]
    return "\n".join([json.dumps(op), *lines[-30:], stack.log.read_text()[-3000:]])


def greeting(endpoint: str) -> str:
    r = httpx.get(endpoint + "/echo/x", timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["greeting"])


def test_deploy_two_applications_and_call_them(stack: Stack) -> None:
    body = {
        "name": "echo",
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
        "serve": serve(),
        "rollout": {
            "strategy": "incremental",
            "step_percent": 50,
            "interval_seconds": 3,
            "health_timeout_seconds": 300,
        },
    }
    r = stack.request("POST", "/v1/services", json=body)
    assert r.status_code == 202, r.text
    SVC.id = r.json()["id"]
    assert SVC.id.startswith("svc_")
    assert r.headers["Location"] == f"/v1/services/{SVC.id}"
    done = operation(stack, r.headers["Operation-Location"])
    assert done["status"] == "Succeeded", done
    svc = get(stack)
    assert svc["state"] == "RUNNING"
    assert svc["active_version"] == 1
    assert svc["pending_version"] is None
    assert {(a["name"], a["status"]) for a in svc["applications"]} == {("echo", "RUNNING"), ("counter", "RUNNING")}
    assert svc["spec"]["head"]["gcs_fault_tolerance"] is True  # every service's head survives a crash
    endpoint = svc["endpoint_url"]
    assert endpoint
    assert greeting(endpoint) == "hello"
    assert httpx.get(endpoint + "/counter", timeout=10).status_code == 200
    states = [e["to_state"] for e in stack.events(SVC.id) if e["kind"] == "state_changed"]
    assert states[:3] == ["PROVISIONING", "DEPLOYING", "RUNNING"], states
    # A service is not a cluster: /v1/clusters neither lists nor finds it.
    assert stack.request("GET", f"/v1/clusters/{SVC.id}").status_code == 404
    assert SVC.id not in [c["id"] for c in stack.request("GET", "/v1/clusters").json()["items"]]
    assert stack.request("GET", f"/v1/clusters/{SVC.id}/jobs").status_code == 404


def test_a_serve_config_change_applies_in_place(stack: Stack) -> None:
    before = get(stack)
    nodes_before = {p.pid for p in stack.ray_node_processes(SVC.id + "-v1")}
    change = patch(stack, {"serve": serve("hi")})
    done = operation(stack, change["op"])
    assert done["status"] == "Succeeded", done
    svc = get(stack)
    assert (svc["version"], svc["active_version"]) == (1, 1)
    assert greeting(svc["endpoint_url"]) == "hi"
    assert svc["endpoint_url"] == before["endpoint_url"]
    assert {p.pid for p in stack.ray_node_processes(SVC.id + "-v1")} == nodes_before  # no new cluster


def count(endpoint: str) -> tuple[int, int]:
    r = httpx.get(endpoint + "/counter", timeout=10)
    assert r.status_code == 200, r.text
    return int(r.json()["count"]), int(r.json()["pid"])


def test_a_killed_head_comes_back_and_the_replica_on_the_worker_keeps_its_state(
    stack: Stack, tmp_path: Path, record_property: Any
) -> None:
    """kill -9 of the head's GCS server and raylet under load: the failed requests and the
    time until the endpoint answers and the service is RUNNING again are reported; the
    counter replica, on the worker node, keeps its count (head fault tolerance)."""
    endpoint = get(stack)["endpoint_url"]
    before, replica = count(endpoint)
    head = stack.ray_node_processes(SVC.id + "-v1")
    victims = [
        p
        for node in head
        for p in node.children(recursive=True)
        if p.name() in ("gcs_server", "raylet") and "head" in " ".join(node.cmdline())
    ]
    assert sorted(p.name() for p in victims) == ["gcs_server", "raylet"], [p.cmdline() for p in head]
    load = Wrk(endpoint + "/echo/x", tmp_path / "kill.lua")
    try:
        wait_for(lambda: load.proc.poll() is None, 5, "wrk to start")
        killed_at = time.monotonic()
        for p in victims:
            p.send_signal(signal.SIGKILL)
        wait_for(lambda: get(stack)["state"] != "RUNNING", 60, "the service to notice the head's loss")

        def back() -> bool:
            svc = get(stack)
            try:
                answers = httpx.get(endpoint + "/echo/x", timeout=5).status_code == 200
            except httpx.HTTPError:
                answers = False
            return answers and svc["state"] == "RUNNING" and svc["nodes"]["1"]["head"]["alive"]

        wait_for(back, STEP, "the service to be RUNNING and answering again", interval=0.25)
        recovery = time.monotonic() - killed_at
        counts, _ = load.stop()
    finally:
        load.kill()
    failed = sum(v for k, v in counts.items() if k not in ("requests", "p99_ms"))
    record_property("service_head_recovery_seconds", round(recovery, 1))
    record_property("service_head_kill_failed_requests", failed)
    print(
        f"head killed: RUNNING and answering again in {recovery:.1f} s; "
        f"{failed:.0f} of {counts['requests']:.0f} requests failed"
    )
    after, same = count(endpoint)
    assert (after, same) == (before + 1, replica), "the replica on the worker lost its state"
    states = [e["to_state"] for e in stack.events(SVC.id) if e["kind"] == "state_changed"]
    assert "DEGRADED" in states, states


def test_an_image_change_rolls_out_a_new_cluster_without_a_failed_request(stack: Stack, tmp_path: Path) -> None:
    endpoint = get(stack)["endpoint_url"]
    before = Wrk(endpoint + "/echo/x", tmp_path / "before.lua", seconds=5)
    out = before.proc.communicate(timeout=60)[0]

    baseline = parse_wrk(out)
    assert_no_errors(baseline, out)
    load = Wrk(endpoint + "/echo/x", tmp_path / "during.lua")
    try:
        # A new image and a new shape: version 2 is a head alone (a change of the groups
        # needs a new cluster too), its counter on the head.
        change = patch(
            stack, {"image": "rayproject/ray:rollout-test", "worker_groups": [], "serve": serve("v2", on_worker=False)}
        )
        assert change["body"]["version"] == 2
        wait_for(lambda: get(stack)["state"] == "ROLLING_OUT", STEP, "the rollout to start")
        done = operation(stack, change["op"])
        counts, output = load.stop()
    finally:
        load.kill()
    assert done["status"] == "Succeeded", explain(stack, done)
    assert_no_errors(counts, output)
    print(f"p99 before the rollout {baseline['p99_ms']} ms, during it {counts['p99_ms']} ms")
    svc = get(stack)
    assert (svc["active_version"], svc["pending_version"], svc["state"]) == (2, None, "RUNNING")
    assert svc["endpoint_url"] == endpoint
    assert greeting(endpoint) == "v2"
    kinds = [e["reason"] for e in stack.events(SVC.id)]
    assert any("takes 50 %" in k for k in kinds), kinds
    assert any("takes 100 %" in k for k in kinds), kinds
    wait_for(lambda: not stack.ray_node_processes(SVC.id + "-v1"), 60, "version 1's nodes to stop")


def test_a_bad_version_is_rolled_back_with_the_serve_error_and_no_failed_request(stack: Stack, tmp_path: Path) -> None:
    endpoint = get(stack)["endpoint_url"]
    load = Wrk(endpoint + "/echo/x", tmp_path / "bad.lua")
    try:
        # A shorter health timeout for this version (the policy travels with the change).
        rollout = {**get(stack)["rollout"], "health_timeout_seconds": 120}
        change = patch(
            stack,
            {
                "image": "rayproject/ray:broken-test",
                "serve": serve("v3", broken=True, on_worker=False),
                "rollout": rollout,
            },
        )
        assert change["body"]["version"] == 3
        done = operation(stack, change["op"])
        counts, output = load.stop()
    finally:
        load.kill()
    assert (done["status"], done["error_code"]) == ("Failed", "RolloutFailed"), explain(stack, done)
    # Serve's word on the application that cannot import: DEPLOY_FAILED with the exception,
    # or (a slow machine) still DEPLOYING when the health timeout ends.
    assert "broken: DEPLOY" in (done["error_message"] or ""), explain(stack, done)
    assert_no_errors(counts, output)
    svc = get(stack)
    assert (svc["state"], svc["active_version"], svc["pending_version"]) == ("RUNNING", 2, None)
    # The spec is back to what serves: the image and Serve config of version 2.
    assert svc["spec"]["image"] == "rayproject/ray:rollout-test"
    assert len(svc["serve"]["applications"]) == 2
    assert greeting(endpoint) == "v2"
    failed = [e for e in stack.events(SVC.id) if e["kind"] == "rollout_failed"]
    assert len(failed) == 1, failed
    assert "broken: DEPLOY" in failed[0]["reason"], failed


def test_delete_closes_the_endpoint_and_stops_every_node(stack: Stack) -> None:
    endpoint = get(stack)["endpoint_url"]
    assert stack.request("DELETE", f"/v1/services/{SVC.id}").status_code == 202
    stack.wait_state(SVC.id, "DELETED", timeout=240)
    assert stack.cluster_processes(SVC.id) == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(endpoint + "/echo/x", timeout=5)
