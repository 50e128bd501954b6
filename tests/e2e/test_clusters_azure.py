"""Ray clusters end to end on the Azure provider, against the Azure emulator: the real API,
Celery worker and beat, and the real azure-mgmt-containerservice, azure-identity and
kubernetes clients talking HTTPS to the emulated ARM, Entra and AKS API server with its
simulated KubeRay operator and cluster autoscaler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from rayplane.providers.azure import manifests
from tests.e2e.azure_support import EmulatedAzure, azure_stack
from tests.e2e.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

E2E_REDIS_DB = 9  # 7: test_clusters_local, 8: tests/cli/test_live, 10: test_azure_faults


def gpu_spot_spec(name: str, workers: int = 1) -> dict[str, Any]:
    return {
        "name": name,
        "cloud": "azure-demo",
        "head": {"vm_size": "Standard_D4s_v5"},
        "worker_groups": [
            {
                "name": "gpu",
                "vm_size": "Standard_NC4as_T4_v3",
                "spot": True,
                "fallback_to_on_demand": True,
                "min_nodes": workers,
                "max_nodes": 2,
            }
        ],
    }


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    url = redis_url.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}" if redis_url.startswith("redis://") else redis_url
    env = {"RAYPLANE_AZURE_POOL_GRACE_SECONDS": "3", "RAYPLANE_AZURE_POOL_GC_INTERVAL_SECONDS": "2"}
    with azure_stack(admin_db_url, url, **env) as s:
        yield s


@pytest.fixture(scope="module")
def azure(stack: Stack) -> EmulatedAzure:
    return EmulatedAzure(stack)


def ray_cluster(azure: EmulatedAzure, cluster: dict[str, Any]) -> dict[str, Any]:
    ns = "rp-" + cluster["id"].lower().replace("_", "-")
    return dict(azure.custom().get_namespaced_custom_object("ray.io", "v1", ns, "rayclusters", cluster["name"]))


def test_gpu_spot_cluster_lifecycle(stack: Stack, azure: EmulatedAzure) -> None:
    r = stack.request("POST", "/v1/clusters", json=gpu_spot_spec("train"))
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    cluster = stack.wait_state(cid, "RUNNING", timeout=240)

    # Pools: shared per (size, priority), autoscaling from 0; the Spot one as DESIGN says.
    pools = azure.rayplane_pools()
    spot = pools[manifests.PoolKey("Standard_NC4as_T4_v3", True).name]["properties"]
    regular = pools[manifests.PoolKey("Standard_D4s_v5", False).name]["properties"]
    assert (spot["scaleSetPriority"], spot["scaleSetEvictionPolicy"], spot["spotMaxPrice"]) == ("Spot", "Delete", -1)
    assert (spot["mode"], spot["enableAutoScaling"], spot["minCount"]) == ("User", True, 0)
    assert spot["gpuProfile"]["driver"] == "Install"
    assert regular["scaleSetPriority"] == "Regular"
    assert len(pools) == 2

    # The operator and the RayCluster, which validates against the KubeRay CRD.
    operator = azure.apps().read_namespaced_deployment("kuberay-operator", "kuberay-system")
    assert operator.spec.template.spec.containers[0].image == "quay.io/kuberay/operator:v1.7.0"
    rc = ray_cluster(azure, cluster)
    jsonschema.validate({k: rc[k] for k in ("apiVersion", "kind", "spec")}, manifests.crd_schema("RayCluster"))
    gpu_pod = rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert gpu_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t["key"] == manifests.SPOT_TAINT_KEY for t in gpu_pod["tolerations"])
    assert rc["spec"]["enableInTreeAutoscaling"] is True
    conditions = {c["type"]: c["status"] for c in rc["status"]["conditions"]}
    assert conditions["HeadPodReady"] == "True"
    assert conditions["RayClusterProvisioned"] == "True"
    kinds = [e["kind"] for e in stack.events(cid)]
    assert "pool" in kinds

    # AKS runs no device plugin on the GPU pool's nodes: Rayplane installed it, and only
    # with it does the GPU node advertise the GPU the worker asked for.
    plugin = azure.apps().read_namespaced_daemon_set(manifests.DEVICE_PLUGIN_NAME, "kube-system")
    assert plugin.spec.template.metadata.labels["name"] == "nvidia-device-plugin-ds"
    gpu_nodes = azure.core().list_node(label_selector="kubernetes.azure.com/accelerator=nvidia").items
    assert gpu_nodes
    assert all(n.status.allocatable["nvidia.com/gpu"] == "1" for n in gpu_nodes)

    # A job through the API server's service proxy to the head's dashboard.
    job = stack.request("POST", f"/v1/clusters/{cid}/jobs", json={"entrypoint": "python -c 'print(6 * 7)'"})
    assert job.status_code in (201, 202), job.text
    jid = job.json()["id"]
    done = wait_for(
        lambda: (j := stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}").json())["status"] == "SUCCEEDED" and j,
        120,
        "the job to succeed",
    )
    assert done["status"] == "SUCCEEDED"
    assert "42" in stack.request("GET", f"/v1/clusters/{cid}/jobs/{jid}/logs").text

    # Resize 1 -> 2 workers: replicas follow, the autoscaler adds a node, the group is ready.
    etag = stack.request("GET", f"/v1/clusters/{cid}").headers["etag"]
    body = {"worker_groups": gpu_spot_spec("x", workers=2)["worker_groups"]}
    assert stack.request("PATCH", f"/v1/clusters/{cid}", headers={"If-Match": etag}, json=body).status_code == 202
    wait_for(
        lambda: (
            stack.cluster(cid)["state"] == "RUNNING"
            and (stack.cluster(cid).get("observed") or {}).get("groups", {}).get("gpu", {}).get("ready") == 2
        ),
        180,
        "two ready GPU workers",
    )
    assert ray_cluster(azure, cluster)["spec"]["workerGroupSpecs"][0]["replicas"] == 2

    # Stop suspends the RayCluster; start resumes it.
    assert stack.request("POST", f"/v1/clusters/{cid}:stop").status_code == 202
    stack.wait_state(cid, "STOPPED", timeout=120)
    assert ray_cluster(azure, cluster)["spec"]["suspend"] is True
    assert stack.request("POST", f"/v1/clusters/{cid}:start").status_code == 202
    stack.wait_state(cid, "RUNNING", timeout=240)
    assert ray_cluster(azure, cluster)["spec"]["suspend"] is False

    # Delete removes the RayCluster and its namespace; the pools go after the grace period.
    assert stack.request("DELETE", f"/v1/clusters/{cid}").status_code == 202
    stack.wait_state(cid, "DELETED", timeout=120)
    namespaces = [n.metadata.name for n in azure.core().list_namespace().items]
    assert "rp-" + cid.lower().replace("_", "-") not in namespaces
    wait_for(lambda: azure.rayplane_pools() == {}, 90, "unused pools to be deleted")


def test_an_azure_clusters_charts_come_through_the_api_servers_pod_proxy(stack: Stack, azure: EmulatedAzure) -> None:
    """Beat's scrape lists the cluster's Ray pods and GETs each one's metrics port through the
    API server's pod proxy (the emulator's simulated Ray answers Ray's metric names, from the
    node's declared resources): the API then answers series for the head and the worker group."""
    body = {
        "name": "charts",
        "cloud": "azure-demo",
        "head": {"vm_size": "Standard_D4s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 1}],
    }
    r = stack.request("POST", "/v1/clusters", json=body)
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    cluster = stack.wait_state(cid, "RUNNING", timeout=240)
    names = "cpu_utilization_percent,memory_total_bytes,memory_used_bytes,nodes_ready"

    def charted() -> dict[tuple[str, str | None], list[float]] | None:
        answer = stack.request("GET", f"/v1/clusters/{cid}/metrics", params={"names": names, "step": 5})
        assert answer.status_code == 200, answer.text
        series = {(s["name"], s["group"]): [v for _, v in s["points"]] for s in answer.json()["series"]}
        wanted = [
            ("cpu_utilization_percent", "head"),
            ("cpu_utilization_percent", "cpu"),
            ("memory_total_bytes", "cpu"),
        ]
        return series if all(series.get(k) for k in wanted) else None

    series = wait_for(charted, 120, "a scrape of the Azure cluster through the pod proxy")
    assert all(0 < v <= 100 for v in series[("cpu_utilization_percent", "cpu")])
    # What the worker's Ray node declares (its rayStartParams' memory) is the group's total.
    worker = ray_cluster(azure, cluster)["spec"]["workerGroupSpecs"][0]
    assert set(series[("memory_total_bytes", "cpu")]) == {float(worker["rayStartParams"]["memory"])}
    assert max(series[("nodes_ready", "head")]) == 1
    assert stack.request("DELETE", f"/v1/clusters/{cid}").status_code == 202
    stack.wait_state(cid, "DELETED", timeout=120)
