"""A job on an emulated Azure cluster runs on that cluster's real Ray (issue 13 "Ray that
really runs", issue 12 item 8).

The whole control plane with the Azure emulator's ``ray_backend: "real"``: every Running
head and worker pod of the RayCluster is a real ``ray start`` node, and the service proxy
reaches the real dashboard. A job submitted through Rayplane's API runs ``ray.init()``,
which must connect to the cluster (head + CPU worker + GPU worker: 3 nodes, ``GPU`` 1), not
start a private Ray of its own, and must write no ``~/.ray/auth_token`` in the host's HOME.
Every Ray process the emulator starts carries its marker; the module kills what is left
of them whatever the outcome.
"""

from __future__ import annotations

import ast
import base64
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulators.azure.kube import raynodes
from ops.emulator import RAY_BACKEND_ENV
from tests.e2e.azure_support import AKS, RG, EmulatedAzure, azure_stack
from tests.e2e.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

E2E_REDIS_DB = 14  # 7-13 are other e2e modules'
HEAD_SIZE = "Standard_D4s_v5"
GPU_SIZE = "Standard_NC4as_T4_v3"
PROBE = (
    "import ray; ray.init(); "
    "print('NODES', sum(1 for n in ray.nodes() if n['Alive'])); "
    "print('RESOURCES', dict(ray.cluster_resources()))"
)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rp-home-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str, home: Path) -> Iterator[Stack]:
    url = redis_url.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}" if redis_url.startswith("redis://") else redis_url
    env = {RAY_BACKEND_ENV: "real", "HOME": str(home)}
    marker = ""
    try:
        with azure_stack(admin_db_url, url, **env) as s:
            marker = raynodes.instance_marker(s.workdir / "data" / "azure-emulator")
            yield s
            # The emulator stopped its nodes when the stack stopped (checked below).
    finally:
        if marker:
            left = raynodes.marked_pids(marker)
            raynodes.kill_marked(marker)  # never leave Ray behind, even on failure
            assert not left, f"Ray processes outlived the emulator: {left}"


@pytest.fixture(scope="module")
def azure(stack: Stack) -> EmulatedAzure:
    return EmulatedAzure(stack)


def dashboard(azure: EmulatedAzure, ns: str, name: str) -> httpx.Client:
    """The cluster's dashboard through the API server's service proxy, with its Ray token."""
    creds = azure.arm.managed_clusters.list_cluster_user_credentials(RG, AKS)
    assert creds.kubeconfigs
    assert creds.kubeconfigs[0].value is not None
    value = creds.kubeconfigs[0].value
    config = yaml.safe_load(value if isinstance(value, bytes) else base64.b64decode(value))
    server = config["clusters"][0]["cluster"]["server"]
    bearer = config["users"][0]["user"]["token"]
    secret = azure.core().read_namespaced_secret("rayplane-ray-token", ns)
    token = base64.b64decode(secret.data["auth_token"]).decode()
    return httpx.Client(
        base_url=f"{server}/api/v1/namespaces/{ns}/services/{name}-head-svc:dashboard/proxy",
        headers={"Authorization": f"Bearer {bearer}", "X-Ray-Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=azure.ca),
        timeout=30,
    )


def alive_nodes(client: httpx.Client) -> list[dict[str, Any]]:
    r = client.get("/api/v0/nodes", params={"detail": "1"})
    if r.status_code != 200:
        return []
    return [n for n in r.json()["data"]["result"]["result"] if n["state"] == "ALIVE"]


def test_a_job_runs_on_its_clusters_real_ray(stack: Stack, azure: EmulatedAzure, home: Path) -> None:
    spec = {
        "name": "realray",
        "cloud": "azure-demo",
        "head": {"vm_size": HEAD_SIZE},
        "worker_groups": [
            {"name": "cpu", "vm_size": HEAD_SIZE, "min_nodes": 1, "max_nodes": 1},
            {"name": "gpu", "vm_size": GPU_SIZE, "min_nodes": 1, "max_nodes": 1},
        ],
    }
    r = stack.request("POST", "/v1/clusters", json=spec)
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    stack.wait_state(cid, "RUNNING", timeout=300)
    ns = "rp-" + cid.lower().replace("_", "-")

    # The real dashboard, behind the service proxy: Ray checks the token itself.
    with dashboard(azure, ns, "realray") as client:
        version = client.get("/api/version")
        assert version.status_code == 200, version.text
        assert version.json()["ray_version"]
        unauthenticated = client.get("/api/v0/nodes", headers={"X-Ray-Authorization": ""})
        assert unauthenticated.status_code == 401
        nodes = wait_for(lambda: rows if len(rows := alive_nodes(client)) == 3 else None, 120, "3 alive Ray nodes")
        assert sum(1 for n in nodes if n["is_head_node"]) == 1
        assert sorted(n["resources_total"].get("GPU", 0) for n in nodes) == [0, 0, 1]
        ray_version = version.json()["ray_version"]

    # The same dashboard through Rayplane with only the caller's API key: Rayplane adds the AKS
    # proxy's credential and the cluster's Ray token, and the dashboard's page loads.
    through = stack.request("GET", f"/clusters/{cid}/dashboard/api/version")
    assert through.status_code == 200, through.text
    assert through.json()["ray_version"] == ray_version
    page = stack.request("GET", f"/clusters/{cid}/dashboard/")
    assert page.status_code == 200, page.text[:500]
    assert "<html" in page.text.lower()
    # Nobody signed in: a browser's GET is sent to sign-in and back; no Ray data without access.
    anonymous = httpx.get(f"{stack.url}/clusters/{cid}/dashboard/api/version", timeout=30)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/auth/sign-in?next=")
    forged = httpx.get(
        f"{stack.url}/clusters/{cid}/dashboard/api/version", headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert forged.status_code == 401

    # A job through Rayplane: ray.init() joins the cluster (Ray's job supervisor sets RAY_ADDRESS).
    job = stack.request("POST", f"/v1/clusters/{cid}/jobs", json={"entrypoint": f'python -c "{PROBE}"'})
    assert job.status_code in (201, 202), job.text
    jid = job.json()["id"]
    done = wait_for(
        lambda: (
            (j := stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}").json())["status"]
            in ("SUCCEEDED", "FAILED", "STOPPED")
            and j
        ),
        180,
        "the job to finish",
    )
    logs = stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}/logs").text
    assert done["status"] == "SUCCEEDED", logs
    assert "NODES 3" in logs, logs
    line = next(x for x in logs.splitlines() if x.startswith("RESOURCES "))
    resources = ast.literal_eval(line.removeprefix("RESOURCES "))
    assert resources.get("GPU") == 1.0, logs
    assert resources.get("CPU", 0) >= 2, logs  # the workers' CPUs (the head declares none)
    assert "Started a local Ray instance" not in logs

    # Beat's scrape reached each real node's metrics export port through the API server's pod proxy.
    def charted() -> set[str] | None:
        params = {"names": "memory_total_bytes", "step": 5}
        series = stack.request("GET", f"/v1/clusters/{cid}/metrics", params=params).json()["series"]
        groups = {str(s["group"]) for s in series if s["points"] and s["group"]}
        return groups if {"head", "cpu", "gpu"} <= groups else None

    wait_for(charted, 90, "the real nodes' metrics through the pod proxy")

    # Nothing wrote the host's ~/.ray (the stack runs with HOME at a temporary directory).
    assert not (home / ".ray" / "auth_token").exists()

    # Deleting the cluster stops its Ray nodes.
    marker = raynodes.instance_marker(stack.workdir / "data" / "azure-emulator")
    assert raynodes.marked_pids(marker)
    assert stack.request("DELETE", f"/v1/clusters/{cid}").status_code == 202
    stack.wait_state(cid, "DELETED", timeout=180)
    wait_for(lambda: not raynodes.marked_pids(marker), 60, "the cluster's Ray processes to stop")
