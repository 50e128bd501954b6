"""The simulated Ray head dashboard behind the API server's service proxy: the Jobs REST API
running real subprocesses, packages as working dirs, nodes and cluster status in the shape
Rayplane's observer reads, and jobs across emulator restarts."""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulators.azure.kube.testing import KubeRayEnv, configure, load_yaml, small_raycluster, wait_for
from emulators.azure.server import EmulatorProcess
from rayplane.providers.local.observe import parse_demand, parse_nodes
from tests.support.emulators import kube_knobs

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
PROXY = "/api/v1/namespaces/default/services/rc-head-svc:dashboard/proxy"


@functools.cache
def _crd_json() -> str:
    return json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0])


def _env(emu: EmulatorProcess, *, rc: dict[str, Any] | None = None, pool: bool = True) -> KubeRayEnv:
    env = KubeRayEnv(emu, json.loads(_crd_json()))
    if pool:
        env.cluster.add_pool("cpu", autoscale=True, max_count=3, vcpus=4, memory_gib=16)
    env.create(rc or small_raycluster("rc"))
    if pool:
        env.wait_ready("rc", 1)
    return env


@pytest.fixture(scope="module", autouse=True)
def fast_nodes(emulator: EmulatorProcess) -> Iterator[None]:
    """Nodes boot and stopped jobs die fast on the shared emulator while this module runs."""
    with kube_knobs(emulator, node_boot_seconds=0.2, job_stop_grace_seconds=1.0):
        yield


@pytest.fixture(scope="module")
def env(emulator: EmulatorProcess) -> KubeRayEnv:
    return _env(emulator)


@pytest.fixture
def http(env: KubeRayEnv) -> Iterator[httpx.Client]:
    with env.cluster.http() as client:
        yield client


def _job(http: httpx.Client, job_id: str, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        info: dict[str, Any] = http.get(f"{PROXY}/api/jobs/{job_id}").json()
        return info if info["status"] in statuses else None

    return wait_for(done, timeout=timeout, what=f"job {job_id} in {statuses}")


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_job_with_a_working_dir_runs_to_succeeded(http: httpx.Client) -> None:
    version = http.get(f"{PROXY}/api/version")
    assert version.status_code == 200
    assert version.json()["ray_version"] == "2.52.0"
    package = "_ray_pkg_0123456789abcdef.zip"
    assert http.get(f"{PROXY}/api/packages/gcs/{package}").status_code == 404
    uploaded = http.put(f"{PROXY}/api/packages/gcs/{package}", content=_zip({"data.txt": "from-the-zip"}))
    assert uploaded.status_code == 200
    assert http.get(f"{PROXY}/api/packages/gcs/{package}").status_code == 200
    script = "print(42); print(open('data.txt').read()); import os; print(os.environ['GREETING'])"
    body = {
        "entrypoint": f'python -c "{script}"',
        "submission_id": "job-42",
        "runtime_env": {"working_dir": f"gcs://{package}", "env_vars": {"GREETING": "hello"}},
        "metadata": {"owner": "rayplane"},
    }
    submitted = http.post(f"{PROXY}/api/jobs/", json=body)
    assert submitted.status_code == 200
    assert submitted.json() == {"job_id": "job-42", "submission_id": "job-42"}
    info = _job(http, "job-42", "SUCCEEDED", "FAILED")
    assert info["status"] == "SUCCEEDED", info
    assert info["driver_exit_code"] == 0
    assert info["message"] == "Job finished successfully."
    assert isinstance(info["start_time"], int)
    assert info["end_time"] >= info["start_time"]
    assert info["entrypoint"] == body["entrypoint"]
    assert info["metadata"] == {"owner": "rayplane"}
    assert info["runtime_env"] == body["runtime_env"]
    assert info["job_id"] == "01000000"
    assert info["type"] == "SUBMISSION"
    logs = http.get(f"{PROXY}/api/jobs/job-42/logs").json()["logs"]
    assert logs.split() == ["42", "from-the-zip", "hello"]
    assert [j["submission_id"] for j in http.get(f"{PROXY}/api/jobs/").json()] == ["job-42"]
    # The other spellings of a service port reach the same dashboard.
    for alt in ("rc-head-svc:8265", "http:rc-head-svc:8265", "http:rc-head-svc:dashboard"):
        url = f"/api/v1/namespaces/default/services/{alt}/proxy/api/jobs/01000000"
        assert http.get(url).json()["submission_id"] == "job-42"
    assert http.delete(f"{PROXY}/api/jobs/job-42").json() == {"deleted": True}
    missing = http.get(f"{PROXY}/api/jobs/job-42")
    assert missing.status_code == 404
    assert missing.text == "Job job-42 does not exist"


def test_failed_stopped_and_pending_jobs(http: httpx.Client) -> None:
    failing = http.post(f"{PROXY}/api/jobs/", json={"entrypoint": "echo boom; exit 3"}).json()["submission_id"]
    assert failing.startswith("raysubmit_")
    info = _job(http, failing, "FAILED", "SUCCEEDED")
    assert info["status"] == "FAILED"
    assert info["driver_exit_code"] == 3
    assert info["error_type"] == "JOB_ENTRYPOINT_COMMAND_ERROR"
    assert info["message"].startswith("Job entrypoint command failed with exit code 3")
    assert "boom" in info["message"]

    sleeper = http.post(f"{PROXY}/api/jobs/", json={"entrypoint": "sleep 60", "submission_id": "sleeper"})
    assert sleeper.status_code == 200
    _job(http, "sleeper", "RUNNING")
    duplicate = http.post(f"{PROXY}/api/jobs/", json={"entrypoint": "true", "submission_id": "sleeper"})
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.text
    assert http.delete(f"{PROXY}/api/jobs/sleeper").status_code == 400  # not terminal yet
    assert http.post(f"{PROXY}/api/jobs/sleeper/stop").json() == {"stopped": True}
    stopped = _job(http, "sleeper", "STOPPED")
    assert stopped["message"] == "Job was intentionally stopped."
    assert http.post(f"{PROXY}/api/jobs/sleeper/stop").json() == {"stopped": False}

    gpu = http.post(f"{PROXY}/api/jobs/", json={"entrypoint": "true", "submission_id": "gpu", "entrypoint_num_gpus": 1})
    assert gpu.status_code == 200
    assert http.get(f"{PROXY}/api/jobs/gpu").json()["status"] == "PENDING"
    status = http.get(f"{PROXY}/api/cluster_status", params={"format": "0"}).json()["data"]
    load = status["clusterStatus"]["loadMetricsReport"]
    assert load["resourceDemand"] == [[{"GPU": 1.0}, 1]]
    assert parse_demand(load).bundles == [({"GPU": 1.0}, 1)]
    assert http.post(f"{PROXY}/api/jobs/gpu/stop").json() == {"stopped": True}
    assert _job(http, "gpu", "STOPPED")["driver_exit_code"] is None
    assert http.post(f"{PROXY}/api/jobs/", json={"entrypoint": "true", "bogus": 1}).status_code == 400
    assert http.get(f"{PROXY}/api/jobs/nope").status_code == 404


def test_nodes_and_cluster_status_as_the_observer_reads_them(env: KubeRayEnv, http: httpx.Client) -> None:
    payload = http.get(f"{PROXY}/api/v0/nodes", params={"detail": "1", "limit": "10000"}).json()
    nodes = parse_nodes(payload)
    assert [n.is_head for n in nodes] == [True, False]
    assert all(n.alive for n in nodes)
    head, worker = nodes
    assert head.resources_total["CPU"] == 1.0  # the Ray container's limit, rounded up
    assert head.resources_total["memory"] == 2**30
    assert head.resources_total["node:__internal_head__"] == 1.0
    assert "node:__internal_head__" not in worker.resources_total
    pods = {p.status.pod_ip for p in env.pods("rc")}
    rows = payload["data"]["result"]["result"]
    assert {r["node_ip"] for r in rows} == pods
    status = http.get(f"{PROXY}/api/cluster_status", params={"format": "0"}).json()
    assert status["result"] is True
    load = status["data"]["clusterStatus"]["loadMetricsReport"]
    assert load["usage"]["CPU"][1] == 2.0
    assert load["usage"]["objectStoreMemory"][1] > 0  # camel-cased, as the dashboard does
    assert load["pgDemand"] == []
    assert load["requestDemand"] == []
    assert "NodeIdleSeconds: Min=" in status["data"]["autoscalingStatus"]


def test_proxy_answers_503_without_a_running_head_and_404_for_unknown_services(emulator: EmulatorProcess) -> None:
    env = _env(emulator, rc=small_raycluster("rc", head_pool="nowhere"), pool=False)
    with env.cluster.http() as http:
        wait_for(lambda: env.pods("rc", "ray.io/node-type=head"), what="the head pod")

        def served() -> httpx.Response | None:
            response = http.get(f"{PROXY}/api/version")
            return response if response.status_code != 404 else None  # 404 until KubeRay made the service

        answer = wait_for(served, what="the head service")
        assert answer.status_code == 503
        assert answer.json()["message"] == 'no endpoints available for service "rc-head-svc"'
        assert answer.json()["kind"] == "Status"
        unknown = http.get("/api/v1/namespaces/default/services/nope:8265/proxy/api/version")
        assert unknown.status_code == 404
        assert unknown.json()["reason"] == "NotFound"


def test_running_job_is_failed_after_a_restart(fresh_emulator: EmulatorProcess) -> None:
    emu = fresh_emulator  # restarted below
    configure(emu, node_boot_seconds=0.2)
    env = _env(emu)
    with env.cluster.http() as http:
        http.post(f"{PROXY}/api/jobs/", json={"entrypoint": "sleep 60", "submission_id": "long"})
        running = _job(http, "long", "RUNNING")
        pid = int(running["driver_info"]["pid"])
    emu.restart()
    with env.cluster.http() as http:
        after = http.get(f"{PROXY}/api/jobs/long").json()
    assert after["status"] == "FAILED"
    assert after["error_type"] == "JOB_SUPERVISOR_ACTOR_DIED"
    with pytest.raises(ProcessLookupError):
        wait_for(lambda: os.kill(pid, 0), timeout=5, what="the old driver to be gone")


def test_a_raycluster_with_token_auth_answers_only_to_its_token(emulator: EmulatorProcess) -> None:
    """KubeRay's ``authOptions`` (mode token, the token in a Secret's ``auth_token``): the
    dashboard behind the proxy wants ``X-Ray-Authorization`` (the API server consumes
    ``Authorization``), 401 without it and 403 with another token, as Ray answers."""
    rc = small_raycluster("rc")
    rc["spec"]["authOptions"] = {"mode": "token", "secretName": "ray-token"}
    env = KubeRayEnv(emulator, json.loads(_crd_json()))
    env.cluster.add_pool("cpu", autoscale=True, max_count=3, vcpus=4, memory_gib=16)
    with env.cluster.http() as http:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ray-token", "namespace": "default"},
            "stringData": {"auth_token": "s3cret"},
        }
        assert http.post("/api/v1/namespaces/default/secrets", json=secret).status_code == 201
        env.create(rc)
        env.wait_ready("rc", 1)
        missing = http.get(f"{PROXY}/api/version")
        assert (missing.status_code, missing.text) == (401, "Unauthorized: Missing authentication token")
        assert http.get(f"{PROXY}/api/version", headers={"X-Ray-Authorization": "Bearer nope"}).status_code == 403
        assert http.get(f"{PROXY}/api/version", headers={"X-Ray-Authorization": "Bearer s3cret"}).status_code == 200
