"""Why Ray pods stay Pending on AKS, read from the scheduler's condition and the cluster
autoscaler's events; and the NVIDIA device plugin Rayplane installs for GPU nodes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from rayplane.providers.azure import manifests, scheduling
from rayplane.providers.azure.kube import Kube

SCHEDULER = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector."


def pod(name: str, group: str, message: str | None) -> dict[str, Any]:
    labels = {"ray.io/node-type": "head"} if group == "head" else {"ray.io/node-type": "worker", "ray.io/group": group}
    status: dict[str, Any] = {"phase": "Pending"}
    if message:
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        status["conditions"] = [cond]
    return {"metadata": {"name": name, "labels": labels}, "spec": {}, "status": status}


def refusal(name: str, message: str, at: str) -> dict[str, Any]:
    return {
        "reason": "NotTriggerScaleUp",
        "message": message,
        "lastTimestamp": at,
        "involvedObject": {"kind": "Pod", "name": name},
    }


def test_only_pods_the_scheduler_refused_count() -> None:
    pending = scheduling.unschedulable([pod("a", "work", SCHEDULER), pod("b", "work", None), pod("h", "head", None)])
    assert pending == {"a": ("work", SCHEDULER)}


def test_one_cause_per_group_and_message_and_no_fatal_without_the_autoscalers_refusal() -> None:
    pending = scheduling.unschedulable([pod("a", "work", SCHEDULER), pod("b", "work", SCHEDULER)])
    found = scheduling.causes(pending, [])
    assert len(found.messages) == 1
    assert SCHEDULER in found.messages[0]
    # Waiting for the autoscaler is no event of its own.
    assert (found.events, found.fatal) == ((), None)


def test_a_refusal_for_want_of_resources_is_fatal_and_outranks_an_older_one() -> None:
    pending = scheduling.unschedulable([pod("a", "work", SCHEDULER)])
    waiting = "pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector"
    final = "pod didn't trigger scale-up: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector"
    found = scheduling.causes(
        pending, [refusal("a", final, "2026-01-01T00:00:01Z"), refusal("a", waiting, "2026-01-01T00:00:02Z")]
    )
    assert [e.code for e in found.events] == ["NotTriggerScaleUp"]
    assert final in found.events[0].reason
    assert found.fatal is not None
    assert found.fatal.code == scheduling.UNSCHEDULABLE
    assert "1 Insufficient cpu" in found.fatal.reason
    assert SCHEDULER in found.fatal.reason
    assert scheduling.causes(pending, [refusal("a", waiting, "2026-01-01T00:00:02Z")]).fatal is None


def test_the_device_plugin_runs_on_gpu_nodes_whatever_their_taints() -> None:
    ds = manifests.device_plugin_daemonset()
    assert (ds["kind"], ds["metadata"]["namespace"]) == ("DaemonSet", "kube-system")
    template = ds["spec"]["template"]
    assert template["metadata"]["labels"]["name"] == "nvidia-device-plugin-ds"
    assert template["spec"]["containers"][0]["image"].startswith("nvcr.io/nvidia/k8s-device-plugin:")
    assert template["spec"]["nodeSelector"] == {"kubernetes.azure.com/accelerator": "nvidia"}
    keys = {(t["key"], t.get("value")) for t in template["spec"]["tolerations"]}
    assert ("sku", "gpu") in keys
    assert (manifests.SPOT_TAINT_KEY, "spot") in keys


def _node(cpu: str, memory: str) -> dict[str, Any]:
    return {"metadata": {"name": "aks-rp-0"}, "status": {"allocatable": {"cpu": cpu, "memory": memory}}}


def _with(requests: dict[str, str], owner: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "x"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "ds"}]
    return {"metadata": meta, "spec": {"containers": [{"resources": {"requests": requests}}]}, "status": {}}


def test_quantities_read_as_the_scheduler_counts_them() -> None:
    assert scheduling.quantity("3500m") == Decimal("3.5")
    assert scheduling.quantity("2Gi") == 2 * 2**30
    assert scheduling.quantity("bogus") == 0
    init = {"spec": {"containers": [{"resources": {"limits": {"cpu": "1"}}}], "initContainers": [_container("2")]}}
    assert scheduling.requests(init)["cpu"] == 2


def _container(cpu: str) -> dict[str, Any]:
    return {"resources": {"requests": {"cpu": cpu}}}


def test_no_room_on_a_node_of_the_pool_once_its_daemonset_pods_have_theirs() -> None:
    ray = _with({"cpu": "3460m", "memory": "12Gi"})
    node = _node("3860m", "14Gi")
    daemonsets = [_with({"cpu": "350m", "memory": "470Mi"}, "DaemonSet"), _with({"cpu": "300m"}, "DaemonSet")]
    other_ray = _with({"cpu": "3000m"}, "Pod")
    fatal = scheduling.no_room(ray, "work", SCHEDULER, node, [*daemonsets, other_ray])
    assert fatal is not None
    assert fatal.code == scheduling.UNSCHEDULABLE
    assert "lacks cpu" in fatal.reason
    assert SCHEDULER in fatal.reason
    # Another workload's pod does not count (it may leave; DaemonSet pods stay), and with one
    # DaemonSet pod fewer the Ray pod fits.
    assert scheduling.no_room(ray, "work", SCHEDULER, node, [daemonsets[0], other_ray]) is None
    # The scheduler's message must say Insufficient.
    assert (
        scheduling.no_room(ray, "work", "0/1 nodes are available: 1 node(s) were unschedulable.", node, daemonsets)
        is None
    )


def test_a_gpu_group_that_cannot_be_scheduled_says_what_to_do() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    pending = scheduling.unschedulable([pod("g", "gpu", message)])
    said = "pod didn't trigger scale-up: 1 Insufficient nvidia.com/gpu"
    found = scheduling.causes(pending, [refusal("g", said, "2026-01-01T00:00:01Z")])
    [event] = found.events
    assert event.code == "NotTriggerScaleUp"
    assert event.reason.startswith("the gpu pods cannot be scheduled: 0/3 nodes are available")
    # The pods ask for their VM size's GPUs: what is missing is the plugin that registers them.
    assert f"kube-system/{manifests.DEVICE_PLUGIN_NAME}" in event.reason
    assert "ImagePullBackOff" in event.reason
    assert "nvcr.io" in event.reason
    assert "retry the cluster" in event.reason
    assert found.fatal is not None
    assert found.fatal.code == scheduling.UNSCHEDULABLE
    assert "would advertise the GPUs they ask for" in found.fatal.reason
    # Not the cpu/memory wording: room after reservations has nothing to do with it.
    assert "reservations" not in found.fatal.reason
    assert f"kube-system/{manifests.DEVICE_PLUGIN_NAME}" in found.fatal.reason
    assert scheduling.advice("0/1 nodes are available: 1 node(s) had untolerated taint") == ""


def test_gpus_taken_on_a_pool_at_its_maximum_size_is_not_blamed_on_the_device_plugin() -> None:
    message = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    said = "pod didn't trigger scale-up: 1 max node group size reached"
    pending = scheduling.unschedulable([pod("g", "gpu", message)])
    found = scheduling.causes(pending, [refusal("g", said, "2026-01-01T00:00:01Z")])
    [event] = found.events
    assert "raise the group's max_nodes" in event.reason
    assert "device plugin" not in event.reason
    assert found.fatal is None


def test_a_refusal_short_of_cpu_and_gpus_keeps_the_room_wording() -> None:
    said = "pod didn't trigger scale-up: 1 Insufficient cpu, 1 Insufficient nvidia.com/gpu"
    pending = scheduling.unschedulable([pod("g", "gpu", "0/1 nodes are available: 1 Insufficient cpu.")])
    found = scheduling.causes(pending, [refusal("g", said, "2026-01-01T00:00:01Z")])
    assert found.fatal is not None
    assert "after AKS's reservations and DaemonSets" in found.fatal.reason


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GPU_SCHEDULER = (
    "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector."
)


def _gpu_node(gpus: str | None, ready_for: float) -> dict[str, Any]:
    allocatable = {"cpu": "3860m", "memory": "24Gi", **({"nvidia.com/gpu": gpus} if gpus is not None else {})}
    since = (NOW - timedelta(seconds=ready_for)).isoformat().replace("+00:00", "Z")
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": since}
    return {"metadata": {"name": "aks-gpu-0"}, "status": {"allocatable": allocatable, "conditions": [ready]}}


def test_a_ready_gpu_node_that_advertises_no_gpus_is_the_device_plugins_fault() -> None:
    event = scheduling.no_gpus("gpu", GPU_SCHEDULER, _gpu_node(None, 120), NOW)
    assert event is not None
    assert event.code == scheduling.GPU_NOT_ADVERTISED
    assert event.reason.startswith("the gpu pods cannot be scheduled: node aks-gpu-0 of their pool")
    assert "advertises no nvidia.com/gpu" in event.reason
    assert f"kube-system/{manifests.DEVICE_PLUGIN_NAME}" in event.reason
    # The same text on every pass while it lasts (recorded once).
    assert scheduling.no_gpus("gpu", GPU_SCHEDULER, _gpu_node("0", 120), NOW + timedelta(seconds=60)) == event


def test_gpus_taken_or_not_yet_registered_are_not_blamed_on_the_device_plugin() -> None:
    # The plugin registers a new node's GPUs within seconds of it being Ready.
    assert scheduling.no_gpus("gpu", GPU_SCHEDULER, _gpu_node(None, 10), NOW) is None
    # The node has its GPU; another pod holds it.
    assert scheduling.no_gpus("gpu", GPU_SCHEDULER, _gpu_node("1", 600), NOW) is None
    # The scheduler did not say the GPUs were short.
    assert scheduling.no_gpus("gpu", SCHEDULER, _gpu_node(None, 600), NOW) is None
    not_ready = _gpu_node(None, 600)
    not_ready["status"]["conditions"][0]["status"] = "False"
    assert scheduling.no_gpus("gpu", GPU_SCHEDULER, not_ready, NOW) is None


class _Nodes:
    """Kubernetes' node list for one pool, counting the calls."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes, self.calls = nodes, 0

    def list_items(self, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        assert path == "/api/v1/nodes"
        assert params == [("labelSelector", f"{manifests.POOL_LABEL}=rpgpu")]
        self.calls += 1
        return self.nodes


def test_gpus_unregistered_looks_at_the_pool_of_pods_short_of_gpus_only() -> None:
    gpu_pod = pod("g1", "gpu", GPU_SCHEDULER)
    gpu_pod["spec"] = {"nodeSelector": {manifests.POOL_LABEL: "rpgpu"}}
    other = {**pod("g2", "gpu", GPU_SCHEDULER), "spec": gpu_pod["spec"]}
    cpu_pod = {**pod("c", "cpu", SCHEDULER), "spec": {"nodeSelector": {manifests.POOL_LABEL: "rpcpu"}}}
    pods = [gpu_pod, other, cpu_pod]
    kube = _Nodes([_gpu_node(None, 120), {**_gpu_node("1", 120), "metadata": {"name": "aks-gpu-1"}}])
    [event] = scheduling.gpus_unregistered(cast(Kube, kube), pods, scheduling.unschedulable(pods), NOW)
    assert "aks-gpu-0" in event.reason
    assert kube.calls == 1  # one list for the GPU pool; none for the cpu pool's pod
    healthy = _Nodes([])
    assert scheduling.gpus_unregistered(cast(Kube, healthy), [cpu_pod], scheduling.unschedulable([cpu_pod]), NOW) == ()
    assert healthy.calls == 0
