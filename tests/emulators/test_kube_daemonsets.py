"""AKS's own DaemonSets and the NVIDIA device plugin on the emulated clusters: every node's
room is its allocatable minus the DaemonSets' requests, a GPU node advertises
``nvidia.com/gpu`` only once a device plugin targets it, and a pod no node group can ever take
gets the cluster autoscaler's ``NotTriggerScaleUp`` event."""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulators.azure import aksnode
from emulators.azure.fleet import PoolSpec
from emulators.azure.kube.testing import KubeRayEnv, device_plugin_daemonset, load_yaml, small_raycluster, wait_for
from emulators.azure.server import EmulatorProcess
from tests.support.emulators import kube_knobs

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
KUBECTL = "/usr/bin/kubectl"


@functools.cache
def _crd_json() -> str:
    return json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0])


@pytest.fixture(scope="module", autouse=True)
def fast_nodes(emulator: EmulatorProcess) -> Iterator[None]:
    with kube_knobs(emulator, node_boot_seconds=0.3, scale_down_seconds=1.0):
        yield


def _env(emu: EmulatorProcess) -> KubeRayEnv:
    return KubeRayEnv(emu, json.loads(_crd_json()))


def _events(env: KubeRayEnv, reason: str) -> list[Any]:
    return [e for e in env.core.list_namespaced_event("default").items if e.reason == reason]


def test_daemonset_figures_add_up() -> None:
    spec = PoolSpec("p", "Standard_D4s_v5", 4, 16)
    cpu, memory, pods = aksnode.daemonset_requests(spec)
    assert (cpu, memory, pods) == (350, 470, 6)
    monitored = aksnode.daemonset_requests(PoolSpec("p", "Standard_D4s_v5", 4, 16, monitoring=True))
    assert monitored == (500, 1020, 7)


def test_gpu_is_advertised_only_where_a_device_plugin_runs(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("gpu", vcpus=6, memory_gib=112, gpus=1, count=1, taints=["sku=gpu:NoSchedule"])
    env.cluster.add_pool("managed", vcpus=6, memory_gib=112, gpus=1, count=1, gpu_managed=True)

    def gpus(pool: str) -> str | None:
        node = env.core.list_node(label_selector=f"agentpool={pool}").items[0]
        value: str | None = (node.status.allocatable or {}).get("nvidia.com/gpu")
        return value

    assert gpus("gpu") is None
    # AKS's managed GPU experience runs the plugin itself.
    assert gpus("managed") == "1"
    # A plugin that does not tolerate the pool's taint does not run there.
    intolerant = device_plugin_daemonset(tolerations=[])
    intolerant["metadata"]["name"] = "nvidia-device-plugin-intolerant"
    env.apps.create_namespaced_daemon_set("kube-system", intolerant)
    assert gpus("gpu") is None
    env.install_device_plugin()
    assert gpus("gpu") == "1"
    assert env.core.list_node(label_selector="agentpool=gpu").items[0].status.capacity["nvidia.com/gpu"] == "1"


def test_a_pod_that_fits_allocatable_but_not_beside_the_daemonsets_never_scales_up(
    emulator: EmulatorProcess,
) -> None:
    env = _env(emulator)
    env.cluster.add_pool("cpu", autoscale=True, max_count=3, vcpus=4, memory_gib=16)
    # 4 cores leave 3860m allocatable; AKS's DaemonSets take 350m of it.
    big = {"requests": {"cpu": "3700m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    env.create(small_raycluster("rc", workers=1, worker_resources=big))

    def refused() -> Any:
        found = _events(env, "NotTriggerScaleUp")
        return found[0] if found else None

    event = wait_for(refused, what="the autoscaler's NotTriggerScaleUp")
    assert event.source.component == "cluster-autoscaler"
    assert event.message.startswith("pod didn't trigger scale-up:")
    assert "1 Insufficient cpu" in event.message
    assert env.core.list_node(label_selector="agentpool=cpu").items == []
    worker = env.pods("rc", "ray.io/node-type=worker")[0]
    assert worker.status.phase == "Pending"

    # Without the DaemonSets modelled the same pod fits a new node.
    with kube_knobs(emulator, system_daemonsets=False):
        wait_for(lambda: env.core.list_node(label_selector="agentpool=cpu").items, what="a node for the pod")


def test_extra_daemonset_requests_shrink_every_node(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("cpu", autoscale=True, max_count=3, vcpus=4, memory_gib=16)
    with kube_knobs(emulator, extra_daemonset_cpu_m=3000):
        env.create(small_raycluster("rc", workers=1))
        event = wait_for(
            lambda: next(iter(_events(env, "NotTriggerScaleUp")), None), what="a refusal for the small worker"
        )
        assert "Insufficient cpu" in event.message


def test_a_gpu_pod_scales_a_gpu_pool_up_only_once_the_device_plugin_is_installed(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("gpu", autoscale=True, max_count=2, vcpus=6, memory_gib=112, gpus=1)
    gpu = {"requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    env.create(small_raycluster("rc", workers=1, pool="gpu", worker_resources=gpu))
    event = wait_for(lambda: next(iter(_events(env, "NotTriggerScaleUp")), None), what="a refusal without the plugin")
    assert "Insufficient nvidia.com/gpu" in event.message
    assert env.core.list_node(label_selector="agentpool=gpu").items == []
    env.install_device_plugin()
    env.wait_ready("rc", 1)


def test_a_device_plugin_whose_image_cannot_be_pulled_registers_no_gpus(emulator: EmulatorProcess) -> None:
    env = _env(emulator)
    env.cluster.add_pool("gpu", autoscale=True, max_count=2, vcpus=6, memory_gib=112, gpus=1)
    env.cluster.add_pool("fixed", vcpus=6, memory_gib=112, gpus=1, count=1)
    gpu = {"requests": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}
    with kube_knobs(emulator, missing_images=["nvcr.io/nvidia/k8s-device-plugin*"]):
        env.install_device_plugin()
        node = env.core.list_node(label_selector="agentpool=fixed").items[0]
        assert "nvidia.com/gpu" not in (node.status.allocatable or {})
        env.create(small_raycluster("rc", workers=1, pool="gpu", worker_resources=gpu))
        event = wait_for(lambda: next(iter(_events(env, "NotTriggerScaleUp")), None), what="a refusal")
        assert "Insufficient nvidia.com/gpu" in event.message
        assert env.core.list_node(label_selector="agentpool=gpu").items == []
    # The image pulls again: the plugin runs and the GPU pool grows for the pod.
    node = env.core.list_node(label_selector="agentpool=fixed").items[0]
    assert node.status.allocatable["nvidia.com/gpu"] == "1"
    env.wait_ready("rc", 1)


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
def test_kubectl_applies_the_device_plugin_and_the_gpu_appears(emulator: EmulatorProcess, tmp_path: Path) -> None:
    env = _env(emulator)
    env.cluster.add_pool("gpu", vcpus=6, memory_gib=112, gpus=1, count=1)
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(env.cluster.kubeconfig))
    manifest = tmp_path / "plugin.yaml"
    manifest.write_text(yaml.safe_dump(device_plugin_daemonset()))

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            [KUBECTL, f"--kubeconfig={config}", f"--cache-dir={tmp_path / 'cache'}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    gpu = "jsonpath={.items[0].status.allocatable.nvidia\\.com/gpu}"
    assert kubectl("get", "nodes", "-l", "agentpool=gpu", "-o", gpu) == ""
    assert "created" in kubectl("apply", "-f", str(manifest))
    assert "nvidia-device-plugin-daemonset" in kubectl("get", "ds", "-n", "kube-system")
    assert kubectl("get", "nodes", "-l", "agentpool=gpu", "-o", gpu) == "1"


def test_a_pool_at_its_maximum_size_is_named_as_the_reason(emulator: EmulatorProcess) -> None:
    """cluster-autoscaler rules out a node group at its maximum size ("max node group size
    reached"); a pod that would fit its node waits, told so, rather than with no word."""
    env = _env(emulator)
    env.cluster.add_pool("cpu", autoscale=True, max_count=1, vcpus=4, memory_gib=16)
    big = {"requests": {"cpu": "3", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}  # one per node
    env.create(small_raycluster("rc", workers=2, worker_resources=big))
    event = wait_for(lambda: next(iter(_events(env, "NotTriggerScaleUp")), None), what="the refusal at max size")
    assert event.message.startswith("pod didn't trigger scale-up: 1 max node group size reached")
    assert len(env.core.list_node(label_selector="agentpool=cpu").items) == 1

    def placed() -> list[bool] | None:
        workers = sorted(bool(w.spec.node_name) for w in env.pods("rc", "ray.io/node-type=worker"))
        return workers if workers == [False, True] else None

    wait_for(placed, what="one worker on the pool's one node, the other waiting")
