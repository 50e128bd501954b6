"""The API server's pod proxy of the emulated AKS cluster: a Running Ray pod's metrics export
port answers Ray's Prometheus text (simulated Ray: figures from the pod's resources), and the
refusals of kube-apiserver's pod proxy (no such pod, no IP, nothing listening, a wrong token).
Also Rayplane's Azure metrics targets, listed and scraped through it with the real clients."""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulators.azure.kube.testing import KubeRayEnv, load_yaml, small_raycluster
from emulators.azure.server import EmulatorProcess
from rayplane.metrics.series import Figure, node_figures
from rayplane.providers.azure import scrape_targets
from rayplane.providers.azure.kube import Kube
from tests.support.emulators import kube_knobs

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"


@functools.cache
def _crd_json() -> str:
    return json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0])


@pytest.fixture(scope="module", autouse=True)
def fast_nodes(emulator: EmulatorProcess) -> Iterator[None]:
    with kube_knobs(emulator, node_boot_seconds=0.2):
        yield


@pytest.fixture(scope="module")
def env(emulator: EmulatorProcess) -> KubeRayEnv:
    env = KubeRayEnv(emulator, json.loads(_crd_json()))
    env.cluster.add_pool("cpu", autoscale=True, max_count=3, vcpus=4, memory_gib=16)
    env.create(small_raycluster("rc"))
    env.wait_ready("rc", 1)
    return env


def _pod(env: KubeRayEnv, node_type: str) -> Any:
    [pod] = env.pods("rc", f"ray.io/node-type={node_type}")
    return pod


def test_a_running_ray_pods_metrics_port_answers_rays_prometheus_text(env: KubeRayEnv) -> None:
    with env.cluster.http() as http:
        for node_type in ("head", "worker"):
            name = _pod(env, node_type).metadata.name
            r = http.get(f"/api/v1/namespaces/default/pods/{name}:8080/proxy/metrics")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/plain")
            figures = node_figures(node_type, r.text).figures
            # The pod's Ray container has a 1Gi memory limit: Ray declares that much.
            assert figures[Figure.MEMORY_TOTAL] == 2**30
            assert 0 < figures[Figure.CPU_PERCENT] <= 100
            assert figures[Figure.MEMORY_PERCENT] == 25.0
            assert (Figure.TASKS_RUNNING in figures) == (node_type == "head")


def test_refusals_as_the_api_servers_pod_proxy_answers(env: KubeRayEnv, emulator: EmulatorProcess) -> None:
    head = _pod(env, "head").metadata.name
    with env.cluster.http() as http:
        missing = http.get("/api/v1/namespaces/default/pods/nope:8080/proxy/metrics")
        assert (missing.status_code, missing.json()["reason"]) == (404, "NotFound")
        assert missing.json()["message"] == 'pods "nope" not found'
        # Nothing listens on another port; a port name is not looked up (kube-apiserver dials it as given).
        for port in ("9999", "metrics"):
            refused = http.get(f"/api/v1/namespaces/default/pods/{head}:{port}/proxy/metrics")
            assert refused.status_code == 503
            assert "connection refused" in refused.json()["message"]
        # A pod the scheduler cannot place has no IP.
        pending = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "stuck", "namespace": "default"},
            "spec": {"nodeSelector": {"agentpool": "nowhere"}, "containers": [{"name": "c", "image": "busybox"}]},
        }
        assert http.post("/api/v1/namespaces/default/pods", json=pending).status_code == 201
        no_ip = http.get("/api/v1/namespaces/default/pods/stuck:8080/proxy/metrics")
        assert (no_ip.status_code, no_ip.json()["message"]) == (400, "address not allowed")
    with httpx.Client(base_url=env.cluster.server, verify=emulator.ssl_context() or False) as anonymous:
        wrong = anonymous.get(
            f"/api/v1/namespaces/default/pods/{head}:8080/proxy/metrics", headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401


def test_rayplanes_targets_of_a_raycluster_are_scraped_through_the_pod_proxy(env: KubeRayEnv) -> None:
    """``scrape_targets`` lists the RayCluster's Running pods with the kubeconfig the provider
    uses (``Kube``), and each target, fetched as the scraper fetches it, answers."""
    kube = Kube(yaml.safe_dump(env.cluster.kubeconfig))
    try:
        state = {"namespace": "default", "name": "rc", "applied": "d1"}
        found = scrape_targets.selector(state)
        assert found == ("default", "ray.io/cluster=rc")
        targets = scrape_targets.targets(
            kube.pods(*found), "default", kube.server, {"Authorization": f"Bearer {kube.token}"}, kube.ca_file or True
        )
        assert sorted(t.group for t in targets) == ["head", "workers"]
        for t in targets:
            assert t.url == f"{kube.server}/api/v1/namespaces/default/pods/{t.node}:8080/proxy/metrics"
            verify = ssl.create_default_context(cafile=t.verify) if isinstance(t.verify, str) else t.verify
            with httpx.Client(verify=verify, trust_env=False, timeout=5) as client:
                answer = client.get(t.url, headers=dict(t.headers))
            assert answer.status_code == 200
            assert Figure.CPU_PERCENT in node_figures(t.group, answer.text).figures
    finally:
        kube.close()
