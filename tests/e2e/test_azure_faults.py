"""The Azure provider under faults, end to end against the emulator: throttling, server
errors and failed LROs still end RUNNING; quota errors end FAILED with Azure's code; a Spot
capacity error falls back to Regular VMs; a worker killed with SIGKILL in the middle of a
node pool LRO is replaced and the pool is created exactly once."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from ops.demo_azure import DEMO_SUBSCRIPTION_ID
from rayplane.providers.azure.manifests import PoolKey
from tests.e2e.azure_support import AKS, RG, EmulatedAzure, azure_stack
from tests.e2e.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

E2E_REDIS_DB = 10


def spec(name: str, head: str, worker: str, *, spot: bool = False, fallback: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "cloud": "azure-demo",
        "head": {"vm_size": head},
        "worker_groups": [
            {
                "name": "work",
                "vm_size": worker,
                "spot": spot,
                "fallback_to_on_demand": fallback,
                "min_nodes": 1,
                "max_nodes": 2,
            }
        ],
    }


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    url = redis_url.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}" if redis_url.startswith("redis://") else redis_url
    with azure_stack(admin_db_url, url, RAYPLANE_MAX_ATTEMPTS="30") as s:
        yield s


@pytest.fixture(scope="module")
def azure(stack: Stack) -> EmulatedAzure:
    return EmulatedAzure(stack)


@pytest.fixture(autouse=True)
def clean_faults(azure: EmulatedAzure) -> Iterator[None]:
    yield
    azure.admin.put("/_emulator/arm/config", json={"rate_429": 0, "rate_5xx": 0, "operation_seconds": 1})


def create(stack: Stack, body: dict[str, Any]) -> str:
    r = stack.request("POST", "/v1/clusters", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def pool_writes(azure: EmulatedAzure, pool: str) -> int:
    writes = azure.admin.get("/_emulator/arm/requests").json()["writes_by_resource"]
    return sum(n for resource, n in writes.items() if resource.endswith(f"/agentpools/{pool}"))


def test_throttling_server_errors_and_a_failed_lro_still_end_running(stack: Stack, azure: EmulatedAzure) -> None:
    head_pool = PoolKey("Standard_D2s_v5", False).name
    r = azure.admin.post("/_emulator/arm/fail-next", json={"code": "AllocationFailed", "match": head_pool})
    assert r.status_code == 200, r.text
    azure.admin.put("/_emulator/arm/config", json={"rate_429": 0.2, "rate_5xx": 0.1})
    cid = create(stack, spec("faulty", "Standard_D2s_v5", "Standard_D2s_v5"))
    stack.wait_state(cid, "RUNNING", timeout=400)
    faults = azure.admin.get("/_emulator/arm/requests").json()["faults"]
    assert sum(faults.values()) > 0, faults  # the faults really happened
    errors = [e for e in stack.events(cid) if e["kind"] == "error"]
    assert any(e.get("code") == "AllocationFailed" for e in errors), errors


def test_quota_exceeded_fails_the_cluster_with_the_azure_code(stack: Stack, azure: EmulatedAzure) -> None:
    pool = PoolKey("Standard_D8s_v5", False).name
    azure.admin.post("/_emulator/arm/fail-next", json={"code": "QuotaExceeded", "match": pool})
    cid = create(stack, spec("quota", "Standard_D8s_v5", "Standard_D2s_v5"))
    cluster = stack.wait_state(cid, "FAILED", timeout=240)
    assert cluster["state_code"] == "QuotaExceeded"
    assert "QuotaExceeded" in cluster["state_reason"]
    assert "quota increase" in cluster["state_reason"]
    assert any(e["kind"] == "error" and e.get("code") == "QuotaExceeded" for e in stack.events(cid))


def test_spot_capacity_error_falls_back_to_regular_vms(stack: Stack, azure: EmulatedAzure) -> None:
    spot_pool = PoolKey("Standard_E4s_v5", True).name
    azure.admin.post("/_emulator/arm/fail-next", json={"code": "AllocationFailed", "match": spot_pool})
    cid = create(stack, spec("spotty", "Standard_D2s_v5", "Standard_E4s_v5", spot=True, fallback=True))
    cluster = stack.wait_state(cid, "RUNNING", timeout=300)
    fallback = [e for e in stack.events(cid) if e["kind"] == "spot_fallback"]
    assert fallback, stack.events(cid)
    assert "AllocationFailed" in fallback[0]["reason"]
    ns = "rp-" + cid.lower().replace("_", "-")
    rc = azure.custom().get_namespaced_custom_object("ray.io", "v1", ns, "rayclusters", cluster["name"])
    selector = rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]["nodeSelector"]
    assert selector == {"kubernetes.azure.com/agentpool": PoolKey("Standard_E4s_v5", False).name}


def test_worker_killed_mid_pool_lro_resumes_and_creates_the_pool_once(stack: Stack, azure: EmulatedAzure) -> None:
    pool = PoolKey("Standard_D4as_v5", False).name
    azure.admin.put("/_emulator/arm/config", json={"operation_seconds": 8})
    cid = create(stack, spec("killed", "Standard_D2s_v5", "Standard_D4as_v5"))
    wait_for(lambda: pool_writes(azure, pool) >= 1, 120, f"the PUT of pool {pool}", interval=0.2)
    worker = stack.worker_process()
    assert worker is not None
    for child in worker.children(recursive=True):
        os.kill(child.pid, signal.SIGKILL)
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: (w := stack.worker_process()) is not None and w.pid != worker.pid, 60, "a new worker")
    stack.wait_state(cid, "RUNNING", timeout=300)
    assert pool_writes(azure, pool) == 1
    assert [n for n in azure.rayplane_pools() if n == pool] == [pool]


def test_spot_eviction_degrades_the_cluster_then_the_nodes_are_replaced(stack: Stack, azure: EmulatedAzure) -> None:
    pool = PoolKey("Standard_E2s_v5", True).name
    cid = create(stack, spec("evicted", "Standard_D2s_v5", "Standard_E2s_v5", spot=True))
    stack.wait_state(cid, "RUNNING", timeout=300)
    # Replacement VMs boot slowly enough here for the reconciler to see the loss.
    azure.admin.post("/_emulator/kube/config", json={"node_boot_seconds": 10})
    try:
        aks = {"subscription": DEMO_SUBSCRIPTION_ID, "resourceGroup": RG, "name": AKS}
        r = azure.admin.post("/_emulator/kube/evict", json={"cluster": aks, "pool": pool, "count": 1})
        assert r.status_code == 200, r.text
        assert r.json()["evicted"]
        stack.wait_state(cid, "DEGRADED", timeout=60)
    finally:
        azure.admin.post("/_emulator/kube/config", json={"node_boot_seconds": 1})
    stack.wait_state(cid, "RUNNING", timeout=180)
    lost = [e for e in stack.events(cid) if e["kind"] == "node_lost"]
    assert lost, stack.events(cid)
    assert "group work: 0 of 1 nodes running" in lost[0]["reason"]


def test_a_running_cluster_that_fails_is_suspended_and_can_be_deleted(stack: Stack, azure: EmulatedAzure) -> None:
    """A terminal Azure error while RUNNING (a resize onto a size with no quota): the cluster
    goes FAILED, its RayCluster is suspended (no pods left billed or running), the resize's
    operation is answered Failed, and a delete from FAILED finishes."""
    cid = create(stack, spec("failing", "Standard_D2s_v5", "Standard_D2s_v5"))
    cluster = stack.wait_state(cid, "RUNNING", timeout=300)
    pool = PoolKey("Standard_D16s_v5", False).name
    azure.admin.post("/_emulator/arm/fail-next", json={"code": "QuotaExceeded", "match": pool})
    groups = [{"name": "work", "vm_size": "Standard_D16s_v5", "min_nodes": 1, "max_nodes": 2}]
    r = stack.request("PATCH", f"/v1/clusters/{cid}", json={"worker_groups": groups})
    assert r.status_code == 202, r.text
    resize = r.headers["Operation-Location"]
    failed = stack.wait_state(cid, "FAILED", timeout=240)
    assert failed["state_code"] == "QuotaExceeded"
    assert stack.request("GET", resize).json()["status"] == "Failed"
    wait_for(lambda: any(e["kind"] == "compute_released" for e in stack.events(cid)), 120, "the release pass")
    ns = "rp-" + cid.lower().replace("_", "-")
    rc = azure.custom().get_namespaced_custom_object("ray.io", "v1", ns, "rayclusters", cluster["name"])
    assert rc["spec"].get("suspend") is True
    r = stack.request("DELETE", f"/v1/clusters/{cid}")
    assert r.status_code == 202, r.text
    stack.wait_state(cid, "DELETED", timeout=240)
    assert stack.request("GET", r.headers["Operation-Location"]).json()["status"] == "Succeeded"


def test_a_worker_group_that_cannot_fit_after_aks_reservations_fails_with_the_scheduling_cause(
    stack: Stack, azure: EmulatedAzure
) -> None:
    # An add-on's DaemonSet takes 1.5 cores of every node: Rayplane sized its Ray pods for
    # AKS's documented reservations and DaemonSets, so they no longer fit any node of their pool.
    r = azure.admin.post("/_emulator/kube/config", json={"extra_daemonset_cpu_m": 1500})
    assert r.status_code == 200, r.text
    try:
        cid = create(stack, spec("nofit", "Standard_D2s_v5", "Standard_D4s_v5"))
        # Far below the provisioning timeout (600 s): the autoscaler's refusal is final.
        cluster = stack.wait_state(cid, "FAILED", timeout=120)
    finally:
        azure.admin.post("/_emulator/kube/config", json={"extra_daemonset_cpu_m": 0})
    assert cluster["state_code"] == "Unschedulable"
    assert "Insufficient cpu" in cluster["state_reason"]
    assert "pod didn't trigger scale-up" in cluster["state_reason"]
    causes = [e for e in stack.events(cid) if e["kind"] == "scheduling"]
    assert causes, stack.events(cid)
    assert any("Insufficient cpu" in e["reason"] for e in causes), causes
    # Each distinct cause once, however many passes saw it.
    assert len({e["reason"] for e in causes}) == len(causes)
    assert not any(e.get("code") == "ProvisioningTimeout" for e in stack.events(cid))


def causes(stack: Stack, cid: str, code: str) -> list[dict[str, Any]]:
    return [e for e in stack.events(cid) if e.get("code") == code]


def test_an_image_that_cannot_be_pulled_is_named_in_the_events(stack: Stack, azure: EmulatedAzure) -> None:
    image = "rayproject/ray:no-such-tag-2.52"
    r = azure.admin.post("/_emulator/kube/config", json={"missing_images": ["rayproject/ray:no-such-tag*"]})
    assert r.status_code == 200, r.text
    try:
        cid = create(stack, {**spec("badimage", "Standard_D2s_v5", "Standard_D2s_v5"), "image": image})
        found = wait_for(lambda: causes(stack, cid, "ImagePullFailed"), 180, "the image pull failure in the events")
        assert stack.cluster(cid)["state"] == "PROVISIONING"
    finally:
        azure.admin.post("/_emulator/kube/config", json={"missing_images": []})
    assert image in found[0]["reason"], found
    assert "not found" in found[0]["reason"], found
    assert "--attach-acr" in found[0]["reason"], found
    assert found[0]["kind"] == "node_fault"
    # Once per pod and cause, however many passes see it (ErrImagePull, then ImagePullBackOff).
    reasons = [e["reason"] for e in causes(stack, cid, "ImagePullFailed")]
    assert len(reasons) == len(set(reasons)), reasons
    r = stack.request("DELETE", f"/v1/clusters/{cid}")
    assert r.status_code == 202, r.text
    stack.wait_state(cid, "DELETED", timeout=240)


def test_a_worker_killed_for_memory_is_named_in_the_events(stack: Stack, azure: EmulatedAzure) -> None:
    cid = create(stack, spec("oom", "Standard_D2s_v5", "Standard_E2s_v5"))
    stack.wait_state(cid, "RUNNING", timeout=300)
    ns = "rp-" + cid.lower().replace("_", "-")
    [worker, *_] = [
        p.metadata.name
        for p in azure.core().list_namespaced_pod(ns, label_selector="ray.io/group=work").items
        if p.status.phase == "Running"
    ]
    aks = {"subscription": DEMO_SUBSCRIPTION_ID, "resourceGroup": RG, "name": AKS}
    r = azure.admin.post("/_emulator/kube/oom", json={"cluster": aks, "namespace": ns, "pod": worker})
    assert r.status_code == 200, r.text
    [oom] = wait_for(lambda: causes(stack, cid, "OutOfMemory"), 120, "the OOM kill in the events")
    for words in (worker, "restart 1", "group 'work'", "more memory"):
        assert words in oom["reason"], oom
    # Seen again by later passes, recorded once.
    seen = stack.cluster(cid)["observed"]["observed_at"]
    wait_for(lambda: stack.cluster(cid)["observed"]["observed_at"] != seen, 120, "another reconcile pass")
    assert len(causes(stack, cid, "OutOfMemory")) == 1
    r = stack.request("DELETE", f"/v1/clusters/{cid}")
    assert r.status_code == 202, r.text
    stack.wait_state(cid, "DELETED", timeout=240)
