"""Ray clusters end to end on the local provider: real API, real Celery worker and beat,
real Postgres and Redis, real Ray processes. Small shapes: 1-CPU head and 1-CPU workers
(2-vCPU sizes scaled down onto a 2-CPU local cloud).
"""

from __future__ import annotations

import functools
import io
import os
import shlex
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
import redis as redis_lib

from tests.e2e.stack import Stack, local_stack, wait_for

# Whole-system tests: minutes each on a 2-core machine, more when it is busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

E2E_REDIS_DB = 7
COUNT_SCRIPT = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(1)\n"


def spec(name: str, workers: int = 1, max_workers: int = 2) -> dict[str, Any]:
    return {
        "name": name,
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [
            {"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": workers, "max_nodes": max_workers}
        ],
    }


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    with local_stack(admin_db_url, redis_url, E2E_REDIS_DB) as s:
        yield s


def delete(stack: Stack, cid: str) -> None:
    assert stack.request("DELETE", f"/v1/clusters/{cid}").status_code == 202
    stack.wait_state(cid, "DELETED", timeout=240)


def resized(stack: Stack, cid: str, size: int) -> bool:
    c = stack.cluster(cid)
    return bool(
        c["state"] == "RUNNING"
        and c["observed"]["groups"]["cpu"]["ready"] == size
        and c["observed_generation"] == c["generation"]
    )


def node_count_is(stack: Stack, cid: str, count: int) -> bool:
    return len(stack.ray_node_processes(cid)) == count


def test_lifecycle_job_resize_stop_start_delete(stack: Stack) -> None:
    r = stack.request("POST", "/v1/clusters", json=spec("life"))
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    running = stack.wait_state(cid, "RUNNING")
    assert running["dashboard_url"].startswith("http://127.0.0.1:")
    assert running["observed"]["groups"]["cpu"] == {"ready": 1, "wanted": 1}
    assert len(stack.ray_node_processes(cid)) == 2  # head + one worker

    job = stack.request(
        "POST",
        f"/v1/clusters/{cid}/jobs",
        json={
            "entrypoint": "python -c \"import ray, os; ray.init(); print('hello from', os.environ['GREETING'])\"",
            "runtime_env": {"env_vars": {"GREETING": "rayplane"}},
        },
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
        "the job to finish",
    )
    logs = stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}/logs").text
    assert done["status"] == "SUCCEEDED", logs
    assert "hello from rayplane" in logs
    assert done["ended_at"] is not None

    # a working dir uploaded as a package, and logs followed as a stream until the job ends
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "count.py", "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(1)\n"
        )
    up = stack.request(
        "POST", f"/v1/clusters/{cid}/packages", content=archive.getvalue(), headers={"Content-Type": "application/zip"}
    )
    assert up.status_code == 201, up.text
    job2 = stack.request(
        "POST",
        f"/v1/clusters/{cid}/jobs",
        json={"entrypoint": "python count.py", "runtime_env": {"working_dir": up.json()["uri"]}},
    ).json()
    with httpx.stream(
        "GET",
        f"{stack.url}/v1/clusters/{cid}/jobs/{job2['id']}/logs",
        params={"follow": "true"},
        headers=stack.headers,
        timeout=300,
    ) as streamed:
        text = "".join(streamed.iter_text())
    assert [line for line in text.splitlines() if line.startswith("tick")] == ["tick 0", "tick 1", "tick 2"]

    for size in (2, 1):
        etag = stack.request("GET", f"/v1/clusters/{cid}").headers["etag"]
        r = stack.request(
            "PATCH",
            f"/v1/clusters/{cid}",
            headers={"If-Match": etag},
            json={"worker_groups": spec("x", workers=size, max_workers=size)["worker_groups"]},
        )
        assert r.status_code == 202, r.text
        wait_for(functools.partial(resized, stack, cid, size), 300, f"{size} worker(s)")
        wait_for(functools.partial(node_count_is, stack, cid, size + 1), 120, f"{size + 1} Ray nodes")

    pids = [p.pid for p in stack.cluster_processes(cid)]
    assert pids
    assert stack.request("POST", f"/v1/clusters/{cid}:stop").status_code == 202
    stack.wait_state(cid, "STOPPED")
    assert [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE] == []
    assert stack.cluster_processes(cid) == []

    assert stack.request("POST", f"/v1/clusters/{cid}:start").status_code == 202
    stack.wait_state(cid, "RUNNING")
    delete(stack, cid)
    assert stack.cluster_processes(cid) == []
    assert not list(stack.ray_root.glob(f"*{cid[-10:]}*"))
    # the job outlives the cluster, with its logs
    kept = stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}")
    assert kept.json()["status"] == "SUCCEEDED"
    assert "hello from rayplane" in stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}/logs").text


def test_killed_worker_node_degrades_then_recovers(stack: Stack) -> None:
    cid = stack.request("POST", "/v1/clusters", json=spec("heal")).json()["id"]
    stack.wait_state(cid, "RUNNING")
    workers = [p for p in stack.ray_node_processes(cid) if "--head" not in p.cmdline()]
    assert len(workers) == 1
    os.killpg(os.getpgid(workers[0].pid), signal.SIGKILL)
    stack.wait_state(cid, "DEGRADED", timeout=180)
    stack.wait_state(cid, "RUNNING", timeout=300)
    kinds = [(e["kind"], e["to_state"]) for e in stack.events(cid)]
    assert ("node_lost", "DEGRADED") in kinds
    assert kinds.index(("state_changed", "DEGRADED")) < len(kinds) - 1
    assert len(stack.ray_node_processes(cid)) == 2
    # Ray's own word on the dead node, with what happens next, once it marks it DEAD.
    [died] = wait_for(
        lambda: [e for e in stack.events(cid) if e.get("code") == "RayNodeDied"], 120, "Ray's death reason"
    )
    assert died["kind"] == "node_fault"
    assert "Ray lost a node of group 'cpu'" in died["reason"], died
    assert "Unexpected termination" in died["reason"], died
    # Each event was recorded once, with its text; the passes after the recovery add none
    # (the local provider's notes about the dead node once became blank events every pass).
    events = stack.events(cid)
    assert all(e["reason"] for e in events), events
    assert [e for e in events if e["kind"] == "provider"] == []
    seen: set[str] = set()

    def passes() -> int:
        seen.add(str(stack.cluster(cid)["observed"].get("observed_at")))
        return len(seen)

    wait_for(lambda: passes() >= 4, 120, "three more reconcile passes", interval=0.5)
    assert len(stack.events(cid)) == len(events)
    delete(stack, cid)


def test_killed_celery_worker_during_provisioning(stack: Stack) -> None:
    cid = stack.request("POST", "/v1/clusters", json=spec("crash")).json()["id"]
    stack.wait_state(cid, "PROVISIONING", timeout=120)
    worker = stack.worker_process()
    assert worker is not None
    os.killpg(os.getpgid(worker.pid), signal.SIGKILL)
    wait_for(lambda: (w := stack.worker_process()) is not None and w.pid != worker.pid, 120, "a new worker")
    stack.wait_state(cid, "RUNNING", timeout=480)
    nodes = stack.ray_node_processes(cid)
    heads = [p for p in nodes if "--head" in p.cmdline()]
    assert len(heads) == 1, [p.cmdline() for p in nodes]
    assert len(nodes) == 2, [p.cmdline() for p in nodes]
    delete(stack, cid)


def test_redis_flushed_during_provisioning_loses_no_work(stack: Stack) -> None:
    """Redis holds only queued nudges and locks: with the stack's database emptied while the
    cluster is provisioning, the sweep finds the work again in Postgres and does it once."""
    created = stack.request("POST", "/v1/clusters", json=spec("flush"))
    cid = created.json()["id"]
    client = redis_lib.Redis.from_url(stack.env["RAYPLANE_REDIS_URL"])
    db = client.connection_pool.connection_kwargs["db"]
    assert db == E2E_REDIS_DB != 0  # the stack's own database, never one shared with others
    stack.wait_state(cid, "PROVISIONING", timeout=120)
    client.flushdb()
    running = stack.wait_state(cid, "RUNNING", timeout=360)

    # the work: the cluster as asked, its create operation done, each node started once
    assert running["observed"]["groups"]["cpu"] == {"ready": 1, "wanted": 1}
    assert running["observed_generation"] == running["generation"]
    operation = stack.request("GET", created.headers["operation-location"]).json()
    assert (operation["kind"], operation["status"]) == ("create", "Succeeded")
    nodes = stack.ray_node_processes(cid)
    assert len(nodes) == 2, [p.cmdline() for p in nodes]
    assert len([p for p in nodes if "--head" in p.cmdline()]) == 1
    kinds = [(e["kind"], e.get("to_state")) for e in stack.events(cid)]
    assert kinds.count(("state_changed", "PROVISIONING")) == 1, kinds
    assert kinds.count(("state_changed", "RUNNING")) == 1, kinds
    assert [k for k, _ in kinds if k in ("error", "node_lost")] == [], kinds
    delete(stack, cid)


def test_bad_spec_creates_nothing(stack: Stack) -> None:
    before = [c["id"] for c in stack.request("GET", "/v1/clusters").json()["items"]]
    bad = spec(f"bad-{uuid.uuid4().hex[:6]}")
    bad["worker_groups"][0]["vm_size"] = "Standard_Nope_v9"
    r = stack.request("POST", "/v1/clusters", json=bad)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.worker_groups.0.vm_size"
    assert [c["id"] for c in stack.request("GET", "/v1/clusters").json()["items"]] == before


AUTOSCALE_JOB = (
    'python -c "import ray; ray.init(); '
    "f = ray.remote(lambda: 'scaled up')"
    ".options(num_cpus=1, resources={'rayplane_group_cpu': 1}); "
    'print(ray.get(f.remote()))"'
)


def test_autoscaling_follows_pending_demand_and_idle_nodes(stack: Stack) -> None:
    """A task needing the group's resource makes the group grow from 0; idle, it shrinks back."""
    cid = stack.request("POST", "/v1/clusters", json=spec("auto", workers=0, max_workers=1)).json()["id"]
    stack.wait_state(cid, "RUNNING")
    assert len(stack.ray_node_processes(cid)) == 1
    job = stack.request("POST", f"/v1/clusters/{cid}/jobs", json={"entrypoint": AUTOSCALE_JOB}).json()
    wait_for(lambda: stack.cluster(cid)["observed"]["groups"]["cpu"]["ready"] == 1, 300, "a worker for the demand")
    done = wait_for(
        lambda: (
            (j := stack.request("GET", f"/v1/clusters/{cid}/jobs/{job['id']}").json())["status"]
            in ("SUCCEEDED", "FAILED")
            and j
        ),
        300,
        "the job",
    )
    assert done["status"] == "SUCCEEDED"
    assert "scaled up" in stack.request("GET", f"/v1/clusters/{cid}/jobs/{job['id']}/logs").text
    wait_for(lambda: stack.cluster(cid)["observed"]["groups"]["cpu"]["wanted"] == 0, 400, "the idle worker removed")
    wait_for(functools.partial(node_count_is, stack, cid, 1), 180, "only the head left")
    reasons = [e["reason"] for e in stack.events(cid) if e["kind"] == "scaled"]
    assert any("pending demand" in r for r in reasons), reasons
    assert any("idle" in r for r in reasons), reasons
    delete(stack, cid)


def test_a_busy_clusters_metrics_are_scraped_from_ray_and_charted(stack: Stack) -> None:
    """Beat scrapes the Ray nodes' Prometheus endpoints; the API answers series per group."""
    cid = stack.request("POST", "/v1/clusters", json=spec("charts")).json()["id"]
    stack.wait_state(cid, "RUNNING")
    busy = (
        "import ray, time\n"
        "ray.init()\n"
        "@ray.remote(num_cpus=1)\n"
        "def spin(s):\n"
        "    end = time.time() + s\n"
        "    while time.time() < end: pass\n"
        "ray.get([spin.remote(40) for _ in range(3)])\n"
    )
    r = stack.request("POST", f"/v1/clusters/{cid}/jobs", json={"entrypoint": f"python -c {shlex.quote(busy)}"})
    assert r.status_code == 201, r.text
    names = "nodes_ready,cpu_utilization_percent,memory_used_bytes,tasks_running,tasks_pending,jobs_running"

    def charted() -> dict[tuple[str, str | None], list[float]] | None:
        answer = stack.request("GET", f"/v1/clusters/{cid}/metrics", params={"names": names, "step": 5})
        assert answer.status_code == 200, answer.text
        series = {(s["name"], s["group"]): [v for _, v in s["points"]] for s in answer.json()["series"]}
        running = series.get(("tasks_running", None), [])
        return series if running and max(running) >= 1 and series.get(("jobs_running", None)) else None

    series = wait_for(charted, 120, "a scrape of the busy cluster")
    # One worker to start with; the waiting tasks may make the autoscaler add the second.
    assert 1 <= max(series[("nodes_ready", "cpu")]) <= 2
    assert max(series[("nodes_ready", "head")]) == 1
    assert all(0 <= v <= 100 for v in series[("cpu_utilization_percent", "cpu")])
    assert min(series[("memory_used_bytes", None)]) > 0
    assert max(series[("jobs_running", None)]) == 1
    assert 1 <= max(series[("tasks_running", None)]) <= 3  # three tasks, as many as have a CPU
    assert min(series.get(("tasks_pending", None), [0])) >= 0
    # The CLI's compact table of the same figures.
    env = {**os.environ, "RAYPLANE_API_URL": stack.url, "RAYPLANE_API_KEY": stack.headers["Authorization"].split()[1]}
    shown = subprocess.run(
        [sys.executable, "-m", "cli", "metrics", "charts", "--since", "10m", "--names", names],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    rows = {tuple(line.split()[:2]) for line in shown.stdout.splitlines() if line.strip()}
    assert {("nodes_ready", "cpu"), ("tasks_running", "(all)"), ("memory_used_bytes", "(all)")} <= rows, shown.stdout
    delete(stack, cid)
