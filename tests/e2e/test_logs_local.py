"""Issue 15's proof on the local provider: a cluster's Ray logs outlive it in Azurite.

A job prints a marker every second for 15 s; a worker's raylet is then killed with SIGKILL;
the cluster is deleted; then the markers and the dead worker's raylet log are read back
through the API and the CLI from Azurite (and checked in Azurite itself through the SDK).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from rayplane.logstore import LogKey, open_store
from rayplane.providers.local import logship
from tests.cli.support import Cli
from tests.e2e.stack import Stack, local_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

E2E_REDIS_DB = 5  # 6-15 are other e2e modules'
CONTAINER = f"e2e-logs-{uuid.uuid4().hex[:8]}"
MARKERS = 15
# Each marker carries the time it was printed, so the test can tell how far behind it arrived.
JOB = (
    "python -c \"import time; [print(f'MARKER-{i:02d} {time.time():.3f}', flush=True) or time.sleep(1)"
    f' for i in range({MARKERS})]"'
)
# At most this far behind the job, through the shipper, the store and the API's follow.
FOLLOW_LAG_SECONDS = 8.0


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str, azurite: str) -> Iterator[Stack]:
    env = {"RAYPLANE_LOG_STORE_URL": azurite, "RAYPLANE_LOG_CONTAINER": CONTAINER}
    with local_stack(admin_db_url, redis_url, E2E_REDIS_DB, env) as s:
        yield s


def worker_raylet(stack: Stack, cid: str, node: str) -> psutil.Process:
    """The raylet of local node ``node`` (its command line names the node's directory)."""
    node_dir = f"/{cid[-10:]}/{node}/"
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].endswith("raylet") and any(node_dir in arg for arg in cmd):
            return p
    raise AssertionError(f"no raylet of {node} found")


class Follower(threading.Thread):
    """``?follow=true`` on one file, in a thread: each line with the time it arrived."""

    def __init__(self, stack: Stack, path: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.path = stack, path
        self.lines: list[tuple[float, str]] = []

    def run(self) -> None:
        rest = ""
        timeout = httpx.Timeout(30, read=None)
        url = f"{self.stack.url}{self.path}"
        with httpx.stream("GET", url, params={"follow": "true"}, headers=self.stack.headers, timeout=timeout) as r:
            for chunk in r.iter_text():
                now = time.time()
                *whole, rest = (rest + chunk).split("\n")
                self.lines.extend((now, line) for line in whole)


def marker_names(lines: list[str]) -> list[str]:
    return [ln.split()[0] for ln in lines if ln.startswith("MARKER-")]


def test_logs_outlive_a_killed_worker_and_the_cluster(stack: Stack, azurite: str, tmp_path: Path) -> None:
    started = time.monotonic()
    spec: dict[str, Any] = {
        "name": "logs",
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
    }
    r = stack.request("POST", "/v1/clusters", json=spec)
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    stack.wait_state(cid, "RUNNING")
    r = stack.request("POST", f"/v1/clusters/{cid}/jobs", json={"entrypoint": JOB})
    assert r.status_code == 201, r.text
    job = r.json()
    driver = f"job-driver-{job['submission_id']}.log"
    wait_for(
        lambda: stack.request(
            "GET", f"/v1/clusters/{cid}/logs", params={"node": "head", "component": "job-driver"}
        ).json()["items"],
        60,
        "the job's driver log in the store",
    )
    # Followed from while the job runs until the cluster is gone.
    follower = Follower(stack, f"/v1/clusters/{cid}/logs/head/{driver}")
    follower.start()

    def finished() -> bool:
        status = stack.request("GET", f"/v1/clusters/{cid}/jobs/{job['id']}").json()["status"]
        assert status not in ("FAILED", "STOPPED"), status
        return bool(status == "SUCCEEDED")

    wait_for(finished, 120, "the job to succeed", interval=1)
    # Shipped while the cluster runs: readable through the API within a few seconds.
    wait_for(
        lambda: f"MARKER-{MARKERS - 1:02d}" in stack.request("GET", f"/v1/clusters/{cid}/logs/head/{driver}").text,
        15,
        "the job's last marker in the store",
    )

    # SIGKILL the worker's raylet; its node ends, its shipper stores the last bytes and ends.
    raylet = worker_raylet(stack, cid, "cpu-1")
    local = Path(next(a.split("=", 1)[1] for a in raylet.cmdline() if a.startswith("--log_dir=")))
    os.kill(raylet.pid, signal.SIGKILL)
    node_dir = stack.ray_root / cid[-10:] / "cpu-1"
    wait_for(lambda: not logship.running(node_dir), 60, "the dead worker's shipper to finish")
    local_raylet = (local / "raylet.out").read_bytes()
    assert local_raylet

    assert stack.request("DELETE", f"/v1/clusters/{cid}").status_code == 202
    stack.wait_state(cid, "DELETED", timeout=240)
    assert not (stack.ray_root / cid[-10:]).exists()
    follower.join(timeout=30)
    assert not follower.is_alive(), "following did not end after the cluster was deleted"
    lags = [at - float(line.split()[1]) for at, line in follower.lines if line.startswith("MARKER-")]
    assert marker_names([line for _, line in follower.lines]) == [f"MARKER-{i:02d}" for i in range(MARKERS)]
    assert max(lags) < FOLLOW_LAG_SECONDS, lags

    # In Azurite itself, through the SDK: the dead worker's raylet log, byte for byte.
    tenant = stack.request("GET", "/v1/tenant").json()["id"]
    store = open_store(azurite, CONTAINER)
    assert store.read(LogKey(tenant, cid, "cpu-1", "raylet.out")) == local_raylet

    # Through the API, after the cluster is gone.
    files = stack.request("GET", f"/v1/clusters/{cid}/logs").json()["items"]
    listed = {(f["node"], f["component"], f["path"]) for f in files}
    assert ("cpu-1", "raylet", "raylet.out") in listed
    assert ("head", "gcs_server", "gcs_server.out") in listed
    assert ("head", "job-driver", driver) in listed
    text = stack.request("GET", f"/v1/clusters/{cid}/logs/head/{driver}").text
    assert marker_names(text.splitlines()) == [f"MARKER-{i:02d}" for i in range(MARKERS)]
    tail = stack.request("GET", f"/v1/clusters/{cid}/logs/cpu-1/raylet.out", params={"tail": 3}).text
    assert tail.encode() == b"\n".join(local_raylet.rstrip(b"\n").split(b"\n")[-3:]) + b"\n"
    found = stack.request("GET", f"/v1/clusters/{cid}/jobs/{job['id']}/logs:search", params={"q": "MARKER-1"})
    assert marker_names([h["text"] for h in found.json()["hits"]]) == [f"MARKER-{i}" for i in range(10, MARKERS)]
    # Following a file of a deleted cluster answers what is stored, then ends.
    began = time.monotonic()
    with httpx.stream(
        "GET", f"{stack.url}/v1/clusters/{cid}/logs/head/{driver}", params={"follow": "true"},
        headers=stack.headers, timeout=30,
    ) as followed:  # fmt: skip
        assert followed.read().decode() == text
    assert time.monotonic() - began < 20

    # Through the CLI.
    key = stack.headers["Authorization"].removeprefix("Bearer ")
    cli = Cli(tmp_path / "cli", {"RAYPLANE_API_URL": stack.url, "RAYPLANE_API_KEY": key})
    shown = cli("logs", cid, "--node", "cpu-1", "--component", "raylet", "--tail", "3", timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == tail
    listing = cli("logs", cid, "--list", "-o", "json", timeout=60)
    assert {("cpu-1", "raylet.out"), ("head", driver)} <= {(f["node"], f["path"]) for f in _json(listing.stdout)}
    markers = cli("logs", cid, "--job", job["id"], "--grep", "MARKER", timeout=60)
    assert markers.returncode == 0, markers.stderr
    # Numbered lines; the driver's first lines name the entrypoint, which says MARKER too.
    assert marker_names([ln.split(": ", 1)[1] for ln in markers.stdout.splitlines()]) == [
        f"MARKER-{i:02d}" for i in range(MARKERS)
    ]
    print(f"logs e2e took {time.monotonic() - started:.0f} s; follow lag max {max(lags):.2f} s")


def _json(text: str) -> Any:
    return json.loads(text)
