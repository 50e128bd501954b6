"""The simulated KubeRay operator, scheduler and cluster autoscaler of an emulated AKS cluster,
driven by the real ``kubernetes`` client: a RayCluster comes up only with the operator installed
and a node pool its pods fit, suspends, survives spot evictions and emulator restarts."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from emulators.azure.kube.testing import (
    KubeRayEnv,
    condition,
    configure,
    load_yaml,
    operator_deployment,
    small_raycluster,
    wait_for,
)
from emulators.azure.server import EmulatorProcess
from tests.support.emulators import kube_knobs

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
SPOT = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}
Obj = dict[str, Any]


@functools.cache
def _crd_json() -> str:
    return json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0])


def _env(emu: EmulatorProcess, **options: Any) -> KubeRayEnv:
    return KubeRayEnv(emu, json.loads(_crd_json()), **options)


@pytest.fixture(scope="module", autouse=True)
def fast_nodes(emulator: EmulatorProcess) -> Iterator[None]:
    """Nodes boot and scale down fast on the shared emulator while this module runs."""
    with kube_knobs(emulator, node_boot_seconds=0.3, scale_down_seconds=1.0):
        yield


def _pod_condition(pod: Any, kind: str) -> Any:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def test_operator_and_a_pool_bring_a_raycluster_up(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("cpu", autoscale=True, min_count=0, max_count=3, vcpus=4, memory_gib=16)
    env.create(small_raycluster("rc", workers=2))
    first = wait_for(lambda: env.rc("rc").get("status"), what="a status")
    assert condition({"status": first}, "RayClusterProvisioned") in ("False", "True")
    rc = env.wait_ready("rc", 2)
    status = rc["status"]
    assert status["state"] == "ready"
    assert status["desiredWorkerReplicas"] == 2
    assert status["availableWorkerReplicas"] == 2
    assert "minWorkerReplicas" not in status
    assert status["maxWorkerReplicas"] == 5
    assert status["desiredCPU"] == "1500m"
    assert status["desiredMemory"] == "3Gi"
    assert status["desiredGPU"] == "0"
    assert status["observedGeneration"] == 1
    assert status["endpoints"]["dashboard"] == "8265"
    provisioned = next(c for c in status["conditions"] if c["type"] == "RayClusterProvisioned")
    assert provisioned["reason"] == "AllPodRunningAndReadyFirstTime"
    head = env.pods("rc", "ray.io/node-type=head")
    assert len(head) == 1
    assert head[0].metadata.name.startswith("rc-head-")
    assert status["head"]["podName"] == head[0].metadata.name
    assert status["head"]["podIP"] == head[0].status.pod_ip
    assert head[0].spec.node_name.startswith("aks-system-")
    workers = env.pods("rc", "ray.io/node-type=worker")
    assert len(workers) == 2
    assert all(p.metadata.name.startswith("rc-workers-worker-") for p in workers)
    assert all(p.metadata.labels["ray.io/group"] == "workers" for p in workers)
    assert all(p.spec.node_name.startswith("aks-cpu-") for p in workers)
    assert workers[0].metadata.owner_references[0].kind == "RayCluster"
    svc = env.core.read_namespaced_service("rc-head-svc", "default")
    assert {p.name: p.port for p in svc.spec.ports}["dashboard"] == 8265
    assert svc.spec.selector == {"ray.io/cluster": "rc", "ray.io/node-type": "head"}
    assert status["head"]["serviceName"] == "rc-head-svc"
    nodes = env.core.list_node(label_selector="agentpool=cpu").items
    assert len(nodes) == 1  # two 500m/1Gi workers fit one 4-vCPU node: the autoscaler added one
    operator = env.apps.read_namespaced_deployment("kuberay-operator", "kuberay-system")
    assert operator.status.available_replicas == 1
    assert any(c.type == "Available" and c.status == "True" for c in operator.status.conditions)

    env.co.delete_namespaced_custom_object("ray.io", "v1", "default", "rayclusters", "rc")
    assert env.pods("rc") == []
    with pytest.raises(ApiException):
        env.core.read_namespaced_service("rc-head-svc", "default")
    wait_for(lambda: not env.core.list_node(label_selector="agentpool=cpu").items, what="the idle pool to scale down")


def test_nothing_progresses_without_the_operator_or_a_matching_pool(emulator: EmulatorProcess) -> None:
    env = _env(emulator, operator=False)
    env.create(small_raycluster("rc", pool="gpu"))
    # A plain Deployment proves the control loop ran; the RayCluster still has no pods.
    plain = operator_deployment("default", image="nginx:1.27")
    plain["metadata"]["name"] = "plain"
    env.apps.create_namespaced_deployment("default", plain)
    wait_for(lambda: (env.apps.read_namespaced_deployment("plain", "default").status.available_replicas or 0) == 1)
    assert env.pods("rc") == []
    assert "status" not in env.rc("rc")

    env.install_operator()
    head = wait_for(lambda: env.pods("rc", "ray.io/node-type=head"), what="a head pod")
    wait_for(lambda: condition(env.rc("rc"), "HeadPodReady") == "True", what="the head on the system pool")

    def unschedulable() -> Any:
        workers = env.pods("rc", "ray.io/node-type=worker")
        cond = _pod_condition(workers[0], "PodScheduled") if workers else None
        return cond if cond is not None and cond.reason == "Unschedulable" else None

    cond = wait_for(unschedulable, what="the worker to be unschedulable")
    assert cond.status == "False"
    assert "didn't match Pod's node affinity/selector" in cond.message
    assert cond.message.startswith("0/1 nodes are available")
    rc = env.rc("rc")
    assert condition(rc, "RayClusterProvisioned") == "False"
    assert rc["status"].get("readyWorkerReplicas", 0) == 0
    assert head[0].status.phase in ("Pending", "Running")

    env.cluster.add_pool("gpu", autoscale=True, max_count=2, vcpus=6, memory_gib=112, gpus=1)
    env.wait_ready("rc", 1)


def test_spot_pool_needs_the_toleration(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("spot", spot=True, autoscale=True, max_count=2, vcpus=4, memory_gib=16)
    env.create(small_raycluster("intolerant", pool="spot"))
    env.create(small_raycluster("tolerant", pool="spot", tolerations=[SPOT]))
    env.wait_ready("tolerant", 1)
    worker = env.pods("intolerant", "ray.io/node-type=worker")[0]
    cond = _pod_condition(worker, "PodScheduled")
    assert worker.status.phase == "Pending"
    assert cond.reason == "Unschedulable"
    assert "untolerated taint {kubernetes.azure.com/scalesetpriority: spot}" in cond.message
    spot = env.pods("tolerant", "ray.io/node-type=worker")[0]
    node = env.core.read_node(spot.spec.node_name)
    assert node.metadata.labels["kubernetes.azure.com/scalesetpriority"] == "spot"
    assert condition(env.rc("intolerant"), "RayClusterProvisioned") == "False"


def test_gpu_requests_fit_only_gpu_nodes(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("cpu", autoscale=True, max_count=3, vcpus=8, memory_gib=32)
    env.cluster.add_pool("gpu", autoscale=True, max_count=2, vcpus=6, memory_gib=112, gpus=1)
    env.install_device_plugin()  # AKS's GPU nodes advertise no GPU without it
    gpu = {"requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    env.create(small_raycluster("rc", workers=2, pool=None, worker_resources=gpu))
    rc = env.wait_ready("rc", 2)
    assert rc["status"]["desiredGPU"] == "2"
    workers = env.pods("rc", "ray.io/node-type=worker")
    assert {env.core.read_node(p.spec.node_name).metadata.labels["agentpool"] for p in workers} == {"gpu"}
    assert len({p.spec.node_name for p in workers}) == 2  # one GPU per node
    assert env.core.list_node(label_selector="agentpool=cpu").items == []  # the CPU pool never grew for them
    env.patch(
        "rc", {"spec": {"workerGroupSpecs": [{**rc["spec"]["workerGroupSpecs"][0], "replicas": 3, "maxReplicas": 5}]}}
    )

    def stuck() -> Any:
        pending = [p for p in env.pods("rc", "ray.io/node-type=worker") if p.status.phase == "Pending"]
        cond = _pod_condition(pending[0], "PodScheduled") if pending else None
        return (
            cond if cond is not None and cond.reason == "Unschedulable" and "nvidia.com/gpu" in cond.message else None
        )

    cond = wait_for(stuck, what="a third GPU worker with no GPU left")
    assert "Insufficient nvidia.com/gpu" in cond.message


def test_suspend_deletes_pods_and_resumes(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("cpu", autoscale=True, max_count=2, vcpus=4, memory_gib=16)
    env.create(small_raycluster("rc"))
    env.wait_ready("rc", 1)
    env.patch("rc", {"spec": {"suspend": True}})

    def suspended() -> Obj | None:
        rc = env.rc("rc")
        return rc if condition(rc, "RayClusterSuspended") == "True" else None

    rc = wait_for(suspended, what="RayClusterSuspended")
    assert env.pods("rc") == []
    assert rc["status"]["state"] == "suspended"
    assert condition(rc, "RayClusterSuspending") == "False"
    assert condition(rc, "RayClusterProvisioned") == "False"
    assert condition(rc, "HeadPodReady") == "False"
    env.patch("rc", {"spec": {"suspend": False}})
    rc = env.wait_ready("rc", 1)
    assert condition(rc, "RayClusterSuspended") == "False"
    assert rc["status"]["state"] == "ready"


def test_spot_eviction_drops_ready_workers_then_recovers(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("spot", spot=True, autoscale=True, max_count=3, vcpus=2, memory_gib=8)
    big = {"requests": {"cpu": "1500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    env.create(small_raycluster("rc", workers=2, pool="spot", tolerations=[SPOT], worker_resources=big))
    env.wait_ready("rc", 2)
    before = {p.metadata.name: p.spec.node_name for p in env.pods("rc", "ray.io/node-type=worker")}
    assert len(set(before.values())) == 2  # one worker per 2-vCPU node
    evicted = env.cluster.evict("spot", 1)
    assert len(evicted) == 1
    assert evicted[0] in before.values()
    dropped = wait_for(lambda: (env.rc("rc")["status"].get("readyWorkerReplicas", 0) < 2) or None, timeout=5)
    assert dropped
    rc = env.wait_ready("rc", 2)
    after = {p.metadata.name: p.spec.node_name for p in env.pods("rc", "ray.io/node-type=worker")}
    lost = next(name for name, node in before.items() if node == evicted[0])
    assert lost not in after
    assert evicted[0] not in after.values()
    assert rc["status"]["state"] == "ready"


def test_worker_pod_deleted_is_replaced_and_failures_are_reported(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("cpu", count=1, vcpus=4, memory_gib=16)
    env.create(small_raycluster("rc"))
    env.wait_ready("rc", 1)
    worker = env.pods("rc", "ray.io/node-type=worker")[0]
    env.core.delete_namespaced_pod(worker.metadata.name, "default")
    wait_for(lambda: [p for p in env.pods("rc", "ray.io/node-type=worker") if p.metadata.name != worker.metadata.name])
    env.wait_ready("rc", 1)

    configure(emulator, fail_pod_creation=True)
    try:
        env.patch(
            "rc", {"spec": {"workerGroupSpecs": [{**env.rc("rc")["spec"]["workerGroupSpecs"][0], "replicas": 2}]}}
        )

        def failing() -> Obj | None:
            rc = env.rc("rc")
            return rc if condition(rc, "ReplicaFailure") == "True" else None

        rc = wait_for(failing, what="ReplicaFailure")
        failure = next(c for c in rc["status"]["conditions"] if c["type"] == "ReplicaFailure")
        assert failure["reason"] == "FailedCreateWorkerPod"
    finally:
        configure(emulator, fail_pod_creation=False)
    rc = env.wait_ready("rc", 2)
    assert condition(rc, "ReplicaFailure") is None


def test_state_survives_a_restart(fresh_emulator: EmulatorProcess) -> None:
    emu = fresh_emulator  # restarted below
    configure(emu, node_boot_seconds=0.3)
    env = _env(emu)
    env.cluster.add_pool("cpu", autoscale=True, max_count=2, vcpus=4, memory_gib=16)
    env.create(small_raycluster("rc"))
    before = env.wait_ready("rc", 1)
    pods = sorted(p.metadata.name for p in env.pods("rc"))
    emu.restart()
    client = env.cluster.api_client()
    co = kubernetes.client.CustomObjectsApi(client)
    after = co.get_namespaced_custom_object("ray.io", "v1", "default", "rayclusters", "rc")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["readyWorkerReplicas"] == 1
    assert condition(after, "RayClusterProvisioned") == "True"
    core = kubernetes.client.CoreV1Api(client)
    assert sorted(p.metadata.name for p in core.list_namespaced_pod("default").items) == pods
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    assert int(created.metadata.resource_version) > int(after["metadata"]["resourceVersion"])
    assert configure(emu)["node_boot_seconds"] == 0.3


def test_workers_wait_in_init_for_the_head(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("cpu", count=1, vcpus=4, memory_gib=16)
    env.create(small_raycluster("rc", head_pool="head"))

    def held() -> Any:
        workers = [p for p in env.pods("rc", "ray.io/node-type=worker") if p.spec.node_name]
        cond = _pod_condition(workers[0], "Initialized") if workers else None
        return workers[0] if cond is not None and cond.status == "False" else None

    worker = wait_for(held, what="a bound worker held in Init")
    assert worker.status.phase == "Pending"
    assert [c.name for c in worker.spec.init_containers] == ["wait-gcs-ready"]
    assert _pod_condition(worker, "Initialized").reason == "ContainersNotInitialized"
    assert env.rc("rc")["status"].get("readyWorkerReplicas", 0) == 0
    env.cluster.add_pool("head", autoscale=True, max_count=1, vcpus=4, memory_gib=16)
    env.wait_ready("rc", 1)


def test_operator_environment_and_deployment_pods(emulator: EmulatorProcess) -> None:
    env = _env(emulator, operator=False)
    env.core.create_namespace({"metadata": {"name": "kuberay-system"}})
    operator = operator_deployment()
    container = operator["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE", "value": "true"},
        {"name": "WATCH_NAMESPACE", "value": "default"},
    ]
    env.apps.create_namespaced_deployment("kuberay-system", operator)
    env.cluster.add_pool("cpu", count=1, vcpus=4, memory_gib=16)
    env.core.create_namespace({"metadata": {"name": "ignored"}})
    other = small_raycluster("other")
    env.co.create_namespaced_custom_object("ray.io", "v1", "ignored", "rayclusters", other)
    env.create(small_raycluster("rc"))
    rc = env.wait_ready("rc", 1)
    service = env.core.read_namespaced_service("rc-head-svc", "default")
    assert service.spec.cluster_ip.startswith("10.0.")  # not headless: the operator asked for a cluster IP
    assert rc["status"]["head"]["serviceIP"] == service.spec.cluster_ip
    ignored = env.co.get_namespaced_custom_object("ray.io", "v1", "ignored", "rayclusters", "other")
    assert "status" not in ignored  # outside WATCH_NAMESPACE

    pod = env.core.list_namespaced_pod("kuberay-system").items[0]
    assert pod.metadata.name.startswith("kuberay-operator-")
    assert pod.metadata.owner_references[0].kind == "Deployment"
    env.core.delete_namespaced_pod(pod.metadata.name, "kuberay-system")
    replaced = wait_for(
        lambda: [
            p for p in env.core.list_namespaced_pod("kuberay-system").items if p.metadata.name != pod.metadata.name
        ],
        what="a replacement operator pod",
    )
    assert replaced[0].metadata.labels["pod-template-hash"] == pod.metadata.labels["pod-template-hash"]
    env.apps.patch_namespaced_deployment("kuberay-operator", "kuberay-system", {"spec": {"replicas": 0}})
    wait_for(lambda: not env.core.list_namespaced_pod("kuberay-system").items, what="the operator scaled to zero")


def test_deleting_the_crd_deletes_its_custom_resources(emulator: EmulatorProcess) -> None:
    env = _env(emulator, operator=False)
    env.create(small_raycluster("rc"))
    with env.cluster.http() as http:
        deleted = http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rayclusters.ray.io")
        assert deleted.status_code == 200
        assert http.get("/apis/ray.io/v1/namespaces/default/rayclusters/rc").status_code == 404
        crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        assert http.post(crds, json=json.loads(_crd_json())).status_code == 201
    assert env.co.list_namespaced_custom_object("ray.io", "v1", "default", "rayclusters")["items"] == []
