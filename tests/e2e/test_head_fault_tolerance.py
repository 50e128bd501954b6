"""Head-node fault tolerance end to end on the local provider: real API, Celery worker and beat,
real Postgres and Redis, real Ray (GCS on Redis).

A cluster with ``head.gcs_fault_tolerance`` and one worker; a job creates a detached actor on
the worker node and counts to 3; the head's gcs_server and raylet are killed with SIGKILL; the
reconciler restarts the head on the same GCS address and namespace without touching the
worker, and the cluster is RUNNING again; a second job finds the actor by name with its count
intact. Deleting the cluster deletes the namespace's keys from Redis.
"""

from __future__ import annotations

import io
import json
import signal
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psutil
import pytest
import redis as redis_lib

from tests.e2e.stack import Stack, local_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

E2E_REDIS_DB = 8
# A detached actor on the worker node (the group's resource), counting; "read" adds one more.
ACTOR_SCRIPT = """
import sys
import ray

ray.init(namespace="ft")


@ray.remote(num_cpus=0, resources={"rayplane_group_cpu": 0.01}, lifetime="detached", name="counter")
class Counter:
    def __init__(self):
        self.value = 0

    def add(self):
        self.value += 1
        return self.value

    def get(self):
        return self.value

    def node(self):
        return ray.get_runtime_context().get_node_id()


if sys.argv[1] == "create":
    c = Counter.remote()
    for _ in range(3):
        ray.get(c.add.remote())
else:
    c = ray.get_actor("counter")
    ray.get(c.add.remote())
print("driver-node", ray.get_runtime_context().get_node_id(), flush=True)
print("actor-node", ray.get(c.node.remote()), flush=True)
print("count", ray.get(c.get.remote()), flush=True)
"""


def gcs_keys(redis_url: str, cid: str) -> list[str]:
    """Ray's keys of the cluster's namespace: database 0 (Ray's client has no database number)."""
    client = redis_lib.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/0")
    try:
        return sorted(k.decode() for k in client.scan_iter(match=f"RAYrayplane-{cid}@*"))
    finally:
        client.close()


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    # ``rayplane dev`` starts a Redis of its own for Ray's GCS, so the control plane's may be
    # a unix socket: fault tolerance works either way.
    with local_stack(admin_db_url, redis_url, E2E_REDIS_DB) as s:
        yield s


def run_job(stack: Stack, cid: str, uri: str, mode: str) -> str:
    job = stack.request(
        "POST",
        f"/v1/clusters/{cid}/jobs",
        json={"entrypoint": f"python ft_actor.py {mode}", "runtime_env": {"working_dir": uri}},
    )
    assert job.status_code == 201, job.text
    jid = job.json()["id"]
    done = wait_for(
        lambda: (
            (j := stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}").json())["status"]
            in ("SUCCEEDED", "FAILED", "STOPPED")
            and j
        ),
        300,
        f"the {mode} job to finish",
    )
    logs = stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}/logs").text
    assert done["status"] == "SUCCEEDED", logs
    return logs


def parse(logs: str) -> dict[str, str]:
    return dict(
        line.split(" ", 1) for line in logs.splitlines() if line.startswith(("driver-node", "actor-node", "count"))
    )


def nodes_file(stack: Stack, cid: str) -> dict[str, Any]:
    return dict(json.loads((stack.ray_root / cid[-10:] / "nodes.json").read_text())["nodes"])


def test_killed_head_restarts_and_a_detached_actor_keeps_its_state(
    stack: Stack, redis_url: str, record_property: Any
) -> None:
    body = {
        "name": "ft",
        "head": {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
    }
    r = stack.request("POST", "/v1/clusters", json=body)
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    assert r.json()["spec"]["head"] == {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True}
    stack.wait_state(cid, "RUNNING")
    worker = stack.worker_process()
    assert worker is not None
    gcs_url = worker.environ()["RAYPLANE_LOCAL_GCS_REDIS_URL"]  # the supervisor's own GCS Redis
    assert gcs_keys(gcs_url, cid), "the head keeps no GCS tables in the GCS Redis"
    if redis_url.startswith("redis://"):
        assert gcs_keys(redis_url, cid) == [], "Ray reached the control plane's Redis"

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ft_actor.py", ACTOR_SCRIPT)
    up = stack.request(
        "POST", f"/v1/clusters/{cid}/packages", content=archive.getvalue(), headers={"Content-Type": "application/zip"}
    )
    assert up.status_code == 201, up.text
    uri = up.json()["uri"]
    before = parse(run_job(stack, cid, uri, "create"))
    assert before["count"] == "3"
    assert before["actor-node"] != before["driver-node"]  # the actor lives on the worker node

    nodes = nodes_file(stack, cid)
    head, worker = nodes["head"], next(n for name, n in nodes.items() if name != "head")
    gcs_port = head["ports"]["gcs"]
    victims = [p for p in psutil.Process(head["pid"]).children(recursive=True) if p.name() in ("gcs_server", "raylet")]
    assert sorted(p.name() for p in victims) == ["gcs_server", "raylet"]
    killed_at = time.monotonic()
    for p in victims:
        p.send_signal(signal.SIGKILL)

    def recovered() -> dict[str, Any] | None:
        """RUNNING again as seen by a pass after the new head started (an earlier answer may
        still show the observation from before the kill), after a DEGRADED for the loss."""
        c = stack.cluster(cid)
        if c["state"] == "FAILED":
            raise AssertionError(f"cluster FAILED: {c['state_reason']}\n{stack.log.read_text()[-3000:]}")
        new = nodes_file(stack, cid).get("head")
        if new is None or new["pid"] == head["pid"] or c["state"] != "RUNNING" or not c["observed"]["head"]["alive"]:
            return None
        seen = datetime.fromisoformat(c["observed"]["observed_at"]).timestamp()
        lost = ("state_changed", "DEGRADED") in [(e["kind"], e["to_state"]) for e in stack.events(cid)]
        return c if lost and seen > new["started_at"] else None

    wait_for(recovered, 300, "the cluster to be RUNNING with a new head", interval=0.25)
    recovery = time.monotonic() - killed_at
    record_property("head_recovery_seconds", round(recovery, 1))
    print(f"\nhead killed -> cluster RUNNING again in {recovery:.1f} s")

    kinds = [(e["kind"], e["to_state"]) for e in stack.events(cid)]
    assert ("node_lost", "DEGRADED") in kinds
    assert kinds[-1] == ("state_changed", "RUNNING"), kinds
    now = nodes_file(stack, cid)
    assert now["head"]["ports"]["gcs"] == gcs_port  # the same GCS address
    assert now[worker["name"]]["pid"] == worker["pid"]  # the worker node was kept, not restarted
    assert psutil.pid_exists(worker["pid"])

    after = parse(run_job(stack, cid, uri, "read"))
    assert after["actor-node"] == before["actor-node"]
    assert after["count"] == "4"  # 3 before the head died, one more now
    print(f"detached actor kept its count: {after['count']} after one more add (3 before the kill)")

    assert stack.request("DELETE", f"/v1/clusters/{cid}").status_code == 202
    stack.wait_state(cid, "DELETED", timeout=240)
    assert gcs_keys(gcs_url, cid) == []
    assert stack.cluster_processes(cid) == []
