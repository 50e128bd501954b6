"""``ray_backend: "real"``: the emulated RayCluster's pods are real Ray nodes.

One emulator of the module's own (real Ray is slow to start on a small machine, so the
shared emulator stays simulated): a RayCluster with token authentication and one worker
becomes a two-node Ray cluster behind the service proxy; scaling the worker group down stops
the worker's processes; a new head gets the worker back; stopping the emulator stops all of them; a process marked by a
previous run of the same data dir is killed when the emulator starts. Every process the
emulator marks is killed at the end, whatever the outcome.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.azure.kube import rayargs, raynodes
from emulators.azure.kube.testing import KubeRayEnv, configure, load_yaml, small_raycluster, wait_for
from emulators.azure.server import EmulatorProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
PROXY = "/api/v1/namespaces/default/services/rc-head-svc:dashboard/proxy"
TOKEN = "emulated-ray-token"
AUTH = {"X-Ray-Authorization": f"Bearer {TOKEN}"}


@functools.cache
def _crd() -> str:
    return json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("realray")
    marker = raynodes.instance_marker(path)
    try:
        yield path
    finally:
        raynodes.kill_marked(marker)  # whatever a failed test left


@pytest.fixture(scope="module")
def stale(data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process carrying this data dir's marker, as a node of a previous run would."""
    env = {"PATH": "/usr/bin:/bin", rayargs.MARKER_ENV: raynodes.instance_marker(data_dir) + "old-pod"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env, start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def emulator(data_dir: Path, stale: subprocess.Popen[bytes]) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(data_dir) as emu:
        configure(emu, ray_backend="real", node_boot_seconds=0.2, ray_stop_seconds=5.0)
        yield emu


@pytest.fixture(scope="module")
def env(emulator: EmulatorProcess) -> KubeRayEnv:
    env = KubeRayEnv(emulator, json.loads(_crd()))
    env.cluster.add_pool("cpu", autoscale=True, max_count=3, vcpus=4, memory_gib=16, gpus=1)
    env.install_device_plugin()  # as on AKS, GPU nodes advertise nvidia.com/gpu only with it
    secret = {"metadata": {"name": "rc"}, "data": {"auth_token": base64.b64encode(TOKEN.encode()).decode()}}
    env.core.create_namespaced_secret("default", secret)
    gpu = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}}
    rc = small_raycluster("rc", worker_resources=gpu)
    rc["spec"]["authOptions"] = {"mode": "token"}
    env.create(rc)
    env.wait_ready("rc", 1, timeout=180)
    return env


def alive(http: httpx.Client) -> list[dict[str, Any]]:
    r = http.get(PROXY + "/api/v0/nodes", params={"detail": "1"}, headers=AUTH)
    return [n for n in r.json()["data"]["result"]["result"] if n["state"] == "ALIVE"] if r.status_code == 200 else []


def test_a_stale_node_of_a_previous_run_is_killed(stale: subprocess.Popen[bytes], emulator: EmulatorProcess) -> None:
    assert stale.wait(timeout=10) == -9


def test_the_pods_are_a_real_ray_cluster_behind_the_proxy(env: KubeRayEnv) -> None:
    with env.cluster.http() as http:
        assert http.get(PROXY + "/api/v0/nodes").status_code == 401  # Ray's own token check
        assert http.get(PROXY + "/api/v0/nodes", headers={"X-Ray-Authorization": "Bearer nope"}).status_code == 403
        nodes = wait_for(lambda: rows if len(rows := alive(http)) == 2 else None, timeout=60, what="2 Ray nodes")
        worker = next(n for n in nodes if not n["is_head_node"])
        assert worker["resources_total"]["GPU"] == 1.0  # declared from nvidia.com/gpu; no GPU here
        assert worker["resources_total"]["CPU"] == 1.0  # the limit, 1 CPU
        version = http.get(PROXY + "/api/version", headers=AUTH).json()
        assert version["ray_version"]
    head = env.pods("rc", "ray.io/node-type=head")[0]
    log = env.core.read_namespaced_pod_log(head.metadata.name, "default", container="ray-head")
    # What this node's `ray start` really printed (its start.log), not the simulated lines.
    root = raynodes.ray_root(env.cluster.emulator.data_dir)
    real = (raynodes.node_dir(root, head.metadata.uid) / "start.log").read_text()
    assert "Ray runtime started" in log
    assert log.splitlines() == real.splitlines()[: len(log.splitlines())]


def test_a_new_head_gets_its_worker_back(env: KubeRayEnv) -> None:
    """The head pod deleted: KubeRay makes a new one, and the worker's Ray container restarts
    and joins the new head (its node of the old head is stopped)."""
    old = env.pods("rc", "ray.io/node-type=head")[0]
    env.core.delete_namespaced_pod(old.metadata.name, "default")

    def rejoined() -> list[dict[str, Any]] | None:
        heads = env.pods("rc", "ray.io/node-type=head")
        if not heads or heads[0].metadata.uid == old.metadata.uid or heads[0].status.phase != "Running":
            return None
        with env.cluster.http() as http:
            rows = alive(http)
        return rows if len(rows) == 2 else None

    rows = wait_for(rejoined, timeout=120, what="a new head with its worker")
    assert sum(1 for n in rows if n["is_head_node"]) == 1


def test_scaling_down_stops_the_workers_processes(env: KubeRayEnv, emulator: EmulatorProcess) -> None:
    worker = env.pods("rc", "ray.io/node-type=worker")[0]
    marker = raynodes.instance_marker(emulator.data_dir) + worker.metadata.uid
    assert raynodes.marked_pids(marker)
    env.patch("rc", {"spec": {"workerGroupSpecs": [{**env.rc("rc")["spec"]["workerGroupSpecs"][0], "replicas": 0}]}})
    wait_for(lambda: not raynodes.marked_pids(marker), timeout=30, what="the worker's Ray processes to stop")
    with env.cluster.http() as http:
        wait_for(lambda: len(alive(http)) == 1, timeout=60, what="the worker to be gone from Ray")


def test_stopping_the_emulator_stops_every_node(env: KubeRayEnv, emulator: EmulatorProcess) -> None:
    marker = raynodes.instance_marker(emulator.data_dir)
    assert raynodes.marked_pids(marker)
    emulator.stop()
    wait_for(lambda: not raynodes.marked_pids(marker), timeout=15, what="every Ray process to stop")
