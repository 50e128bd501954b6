"""A GPU worker group that cannot be scheduled on AKS, end to end against the emulator: the
real API, Celery worker and beat, and the emulated AKS with its scheduler, cluster autoscaler
and NVIDIA device plugin.

The fault: the device plugin's image cannot be pulled (a cluster whose egress cannot reach
``nvcr.io``; the emulator's ``missing_images``), so no GPU node would advertise
``nvidia.com/gpu``. kube-scheduler finds no node for the GPU worker and the cluster autoscaler
refuses to grow the GPU pool (``NotTriggerScaleUp``: ``1 Insufficient nvidia.com/gpu``). Rayplane
must put that cause and what to do about it in the cluster's events within one reconcile pass of
the refusal, and fail the cluster as ``Unschedulable`` (no retry of its own can help); once the
plugin runs, a retry of the cluster brings it up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from kubernetes import client as k8s

from rayplane.providers.azure import manifests, scheduling
from tests.e2e.azure_support import EmulatedAzure, azure_stack
from tests.e2e.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

E2E_REDIS_DB = 2  # 3-15 are other modules'; each stack has its own task queue besides
# The pass interval of a PROVISIONING cluster (RAYPLANE_RECONCILE_BUSY_SECONDS), set here
# rather than inherited so the bound below stays one pass whatever the default becomes.
PASS_SECONDS = 3.0
# A pass's own work: cached ARM reads, four Kubernetes reads and one commit against this
# emulator, well under a second even on a busy machine.
WORK_SECONDS = 1.0
PLUGIN_IMAGES = manifests.DEVICE_PLUGIN_IMAGE.split(":")[0] + ":*"


def gpu_spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "cloud": "azure-demo",
        "head": {"vm_size": "Standard_D4s_v5"},
        "worker_groups": [
            {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "min_nodes": 1, "max_nodes": 1},
        ],
    }


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    url = redis_url.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}" if redis_url.startswith("redis://") else redis_url
    with azure_stack(admin_db_url, url, RAYPLANE_RECONCILE_BUSY_SECONDS=str(PASS_SECONDS)) as s:
        yield s


@pytest.fixture(scope="module")
def azure(stack: Stack) -> EmulatedAzure:
    return EmulatedAzure(stack)


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def core_once_created(azure: EmulatedAzure) -> k8s.CoreV1Api | None:
    """The AKS cluster's Kubernetes API, None until Rayplane has created the cluster."""
    try:
        return azure.core()
    except ResourceNotFoundError:
        return None


def created(event: Any) -> datetime:
    """When the event was written, to the nanosecond: client-go's recorder names an event
    ``<object>.<hex UnixNano>`` (and so does the emulator's); its timestamps have seconds only."""
    suffix = event.metadata.name.rsplit(".", 1)[-1]
    return datetime.fromtimestamp(int(suffix, 16) / 1e9, UTC)


def gpu_refusal(core: k8s.CoreV1Api, namespace: str) -> Any:
    """The autoscaler's refusal to scale up for a GPU shortage, as Kubernetes holds it."""
    for event in core.list_namespaced_event(namespace).items:
        if event.reason == "NotTriggerScaleUp" and scheduling.GPU_SHORT in (event.message or ""):
            return event
    return None


def test_a_gpu_group_without_a_running_device_plugin_shows_the_cause_within_one_pass(
    stack: Stack, azure: EmulatedAzure
) -> None:
    r = azure.admin.post("/_emulator/kube/config", json={"missing_images": [PLUGIN_IMAGES]})
    assert r.status_code == 200, r.text
    try:
        r = stack.request("POST", "/v1/clusters", json=gpu_spec("nogpu"))
        assert r.status_code == 202, r.text
        cid = r.json()["id"]
        ns = "rp-" + cid.lower().replace("_", "-")
        core = wait_for(lambda: core_once_created(azure), 120, "the AKS cluster")
        refused = wait_for(lambda: gpu_refusal(core, ns), 120, "the autoscaler's refusal", interval=0.2)
        # The refused pod is the GPU worker, pending with the scheduler's condition.
        assert refused.involved_object.kind == "Pod"
        worker = core.read_namespaced_pod(refused.involved_object.name, ns)
        assert worker.metadata.labels["ray.io/group"] == "gpu"
        assert worker.status.phase == "Pending"
        [scheduled] = [c for c in worker.status.conditions if c.type == "PodScheduled"]
        assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
        # No node of the cluster advertises a GPU: the plugin's image does not pull.
        nodes = core.list_node().items
        assert not any("nvidia.com/gpu" in (n.status.allocatable or {}) for n in nodes)

        def shown() -> list[dict[str, Any]]:
            return [e for e in stack.events(cid) if e["kind"] == "scheduling" and scheduling.GPU_SHORT in e["reason"]]

        # One pass: the interval, the sweep that hands a due cluster to a worker (the interval
        # is longer than the sweep's, so a pass does not requeue itself), and the pass's work.
        # Less than two intervals, so a cause that needed a second pass fails it.
        deadline = PASS_SECONDS + float(stack.env["RAYPLANE_SWEEP_INTERVAL_SECONDS"]) + WORK_SECONDS
        assert deadline < 2 * PASS_SECONDS
        causes = wait_for(shown, deadline, "the GPU cause in the cluster's events", interval=0.1)
    finally:
        azure.admin.post("/_emulator/kube/config", json={"missing_images": []})
    # Measured on the clocks that stamped both (this machine's): the autoscaler's event and
    # Rayplane's record, not the test's polling.
    lag = (min(_at(e["at"]) for e in causes) - created(refused)).total_seconds()
    assert lag <= deadline, (lag, causes)

    # The autoscaler's words, and what to do, in plain terms.
    refusal = next(e for e in causes if e.get("code") == "NotTriggerScaleUp")
    assert "the gpu pods cannot be scheduled" in refusal["reason"]
    assert "pod didn't trigger scale-up: 1 Insufficient nvidia.com/gpu" in refusal["reason"]
    assert f"kube-system/{manifests.DEVICE_PLUGIN_NAME}" in refusal["reason"]
    assert "ImagePullBackOff" in refusal["reason"]
    assert "nvcr.io" in refusal["reason"]

    # No retry of Rayplane's can make GPUs appear: FAILED at once, not PROVISIONING until the
    # provisioning timeout, with the same cause and advice as the state's reason.
    cluster = stack.cluster(cid)
    assert (cluster["state"], cluster["state_code"]) == ("FAILED", scheduling.UNSCHEDULABLE)
    assert "would advertise the GPUs they ask for" in cluster["state_reason"]
    assert "retry the cluster" in cluster["state_reason"]
    failed = [e for e in stack.events(cid) if e.get("to_state") == "FAILED"]
    assert [e["code"] for e in failed] == [scheduling.UNSCHEDULABLE]
    assert not any(e.get("code") == "ProvisioningTimeout" for e in stack.events(cid))
    # Each distinct cause once, however many passes saw it.
    reasons = [e["reason"] for e in stack.events(cid) if e["kind"] == "scheduling"]
    assert len(reasons) == len(set(reasons)), reasons

    # The advice holds: with the plugin's image pulling again, a retry brings the GPU up.
    wait_for(lambda: any(e["kind"] == "compute_released" for e in stack.events(cid)), 60, "the release pass")
    r = stack.request("POST", f"/v1/clusters/{cid}:retry")
    assert r.status_code == 202, r.text
    running = stack.wait_state(cid, "RUNNING", timeout=180)
    assert running["observed"]["groups"]["gpu"]["ready"] == 1
    gpu_nodes = azure.core().list_node(label_selector="kubernetes.azure.com/accelerator=nvidia").items
    assert gpu_nodes
    assert all(n.status.allocatable["nvidia.com/gpu"] == "1" for n in gpu_nodes)
    r = stack.request("DELETE", f"/v1/clusters/{cid}")
    assert r.status_code == 202, r.text
    stack.wait_state(cid, "DELETED", timeout=120)
