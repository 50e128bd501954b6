"""What the Azure provider asks AKS and Kubernetes for, as plain data (no I/O here).

* **Pools** are shared per (VM size, priority) within a cloud's AKS cluster, so a pool's
  name is a pure function of those two: ``rp`` + ``s``/``r`` + nine hex digits of a hash of
  the size (AKS allows 1-12 lowercase letters and digits for Linux pools, first a letter).
* **Pod requests** are the VM's catalog figures minus what AKS keeps for the kubelet and
  its own DaemonSets (:mod:`rayplane.providers.azure.reservations`), so one Ray pod fills
  one node and the cluster autoscaler adds exactly one node per pod.
* **RayCluster** objects follow KubeRay v1.7.0's ``ray.io/v1`` schema; every object made
  here is validated against the CRD copied into ``infra/kuberay/`` by the tests.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rayplane.providers.azure import reservations
from rayplane.providers.base import ClusterTarget, NodeShape, gcs_storage_namespace


def _kuberay_dir() -> Path:
    """``infra/kuberay`` of the source tree, else the copy an image installs under sys.prefix."""
    source = Path(__file__).resolve().parents[3] / "infra" / "kuberay"
    return source if source.is_dir() else Path(sys.prefix) / "share" / "rayplane" / "kuberay"


KUBERAY_DIR = _kuberay_dir()
CRD_FILES = ("ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml", "ray.io_rayservices.yaml")
OPERATOR_FILE = "operator.yaml"
KUBERAY_VERSION = "v1.7.0"

SPOT_TAINT_KEY = "kubernetes.azure.com/scalesetpriority"
# The Secret with the cluster's Ray token (``authOptions.secretName``) and its data key.
AUTH_SECRET = "rayplane-ray-token"  # noqa: S105 - a name, not a secret
AUTH_TOKEN_KEY = "auth_token"  # noqa: S105 - KubeRay's key name
# The copy of the cloud's GCS Redis password in a fault-tolerant cluster's namespace.
GCS_REDIS_SECRET = "rayplane-gcs-redis"  # noqa: S105 - a name, not a secret
GCS_REDIS_KEY = "password"
POOL_LABEL = "kubernetes.azure.com/agentpool"
MANAGED_LABEL = "rayplane.io/managed"
DEFAULT_IMAGE = "rayproject/ray"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# KubeRay adds the Ray autoscaler as a sidecar of the head pod; these are its resources, and
# the head's Ray container asks for that much less so the pod still fits one node.
AUTOSCALER_CPU_M = 250
AUTOSCALER_MEMORY_MIB = 512
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are ~1 MB of YAML


@dataclass(frozen=True)
class PoolKey:
    """One shared pool: its VM size and whether it is Spot."""

    vm_size: str
    spot: bool

    @property
    def name(self) -> str:
        digest = hashlib.sha256(self.vm_size.lower().encode()).hexdigest()[:9]
        return f"rp{'s' if self.spot else 'r'}{digest}"


def pool_key(shape: NodeShape) -> PoolKey:
    return PoolKey(shape.vm_size, shape.spot)


def pool_properties(key: PoolKey, *, gpus: int, max_count: int, orchestrator_version: str | None) -> dict[str, Any]:
    """The ``properties`` of an agent pool PUT for ``key``, autoscaling from 0 to ``max_count``.

    Spot pools evict by deleting the VM and bid up to the on-demand price (``-1``), so an
    eviction never leaves a deallocated VM that still counts against quota.
    """
    props: dict[str, Any] = {
        "mode": "User",
        "osType": "Linux",
        "vmSize": key.vm_size,
        "count": 0,
        "enableAutoScaling": True,
        # One Ray pod per node: a low maxPods keeps the kubelet's memory reservation small.
        "maxPods": reservations.RAY_POOL_MAX_PODS,
        "minCount": 0,
        "maxCount": max_count,
        "scaleSetPriority": "Spot" if key.spot else "Regular",
        "nodeLabels": {MANAGED_LABEL: "true", "rayplane.io/priority": "spot" if key.spot else "regular"},
        "tags": {"rayplane-managed": "true", "rayplane-vm-size": key.vm_size},
    }
    if key.spot:
        props |= {"scaleSetEvictionPolicy": "Delete", "spotMaxPrice": -1}
    if gpus:
        # AKS installs the NVIDIA driver on GPU nodes, but not the device plugin that makes
        # them advertise nvidia.com/gpu (https://learn.microsoft.com/azure/aks/use-nvidia-gpu):
        # Rayplane installs that itself (``device_plugin_daemonset``). The taint keeps CPU-only
        # pods off these expensive nodes (Rayplane's GPU pods and the plugin tolerate it).
        props["gpuProfile"] = {"driver": "Install"}
        props["nodeTaints"] = ["sku=gpu:NoSchedule"]
    if orchestrator_version:
        props["orchestratorVersion"] = orchestrator_version
    return props


AKS_MAX_POOL_NODES = 1000


def pool_capacity_step(needed: int) -> int:
    """``maxCount`` for a pool that must hold ``needed`` nodes: a power of two with room for
    as many again (at least 8, at most AKS's 1000 per pool), so a growing cloud rarely needs
    a pool update (an ARM write and an LRO). A high ``maxCount`` costs nothing by itself:
    the cluster autoscaler adds nodes only for pending pods."""
    return min(AKS_MAX_POOL_NODES, max(8, 1 << max(2 * needed - 1, 0).bit_length()))


def resource_name(target: ClusterTarget) -> tuple[str, str]:
    """(namespace, RayCluster name) of a Rayplane cluster: one namespace per cluster."""
    suffix = target.cluster_id.lower().replace("_", "-")
    name = target.name if _DNS_LABEL.match(target.name) and len(target.name) <= 40 else "ray"
    return f"rp-{suffix}", name


def _requests(shape: NodeShape, *, head: bool, monitoring: bool) -> tuple[int, int]:
    room = reservations.pod_room(shape.vcpus, shape.memory_gib, monitoring=monitoring)
    cpu_m, mem_mib = room.cpu_m, room.memory_mib
    if head:
        cpu_m, mem_mib = max(cpu_m - AUTOSCALER_CPU_M, 100), max(mem_mib - AUTOSCALER_MEMORY_MIB, 256)
    return cpu_m, mem_mib


def _pod_template(shape: NodeShape, container: str, image: str, *, head: bool, monitoring: bool) -> dict[str, Any]:
    cpu_m, mem_mib = _requests(shape, head=head, monitoring=monitoring)
    requests: dict[str, str] = {"cpu": f"{cpu_m}m", "memory": f"{mem_mib}Mi"}
    limits: dict[str, str] = {"memory": f"{mem_mib}Mi"}
    if shape.gpus:
        # Extended resources are set as limits (requests default to them).
        limits["nvidia.com/gpu"] = str(shape.gpus)
    ports = [{"containerPort": 8080, "name": "metrics"}]
    if head:
        ports = [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
            *ports,
        ]
    tolerations: list[dict[str, Any]] = []
    if shape.spot:
        tolerations.append({"key": SPOT_TAINT_KEY, "operator": "Equal", "value": "spot", "effect": "NoSchedule"})
    if shape.gpus:
        tolerations.append(dict(GPU_TAINT))
    spec: dict[str, Any] = {
        "nodeSelector": {POOL_LABEL: pool_key(shape).name},
        "containers": [
            {
                "name": container,
                "image": image,
                "ports": ports,
                "resources": {"requests": requests, "limits": limits},
                # Let Ray finish in-flight work and flush logs before the pod goes.
                "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}},
            }
        ],
    }
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"labels": {MANAGED_LABEL: "true"}}, "spec": spec}


def _ray_params(shape: NodeShape, *, head: bool, monitoring: bool) -> dict[str, str]:
    cpu_m, mem_mib = _requests(shape, head=head, monitoring=monitoring)
    params = {"num-cpus": str(max(cpu_m // 1000, 1)), "memory": str(mem_mib * 1024 * 1024)}
    if shape.gpus:
        params["num-gpus"] = str(shape.gpus)
    if head:
        params["dashboard-host"] = "0.0.0.0"  # noqa: S104 - inside the pod; reached via the service
    return params


def ray_cluster(target: ClusterTarget, *, replicas: dict[str, int], suspend: bool = False) -> dict[str, Any]:
    """The RayCluster for ``target`` (KubeRay ``ray.io/v1``).

    ``replicas`` is what to write into each group's ``replicas``: with in-tree autoscaling
    on, KubeRay's autoscaler owns that field between Rayplane's writes, so the caller passes
    the value it wants to (re)assert, normally the user's count clamped into [min, max].
    """
    namespace, name = resource_name(target)
    image = target.image or f"{DEFAULT_IMAGE}:{target.ray_version}"
    gpu_image = target.image or f"{DEFAULT_IMAGE}:{target.ray_version}-gpu"
    # Container Insights runs its agent on every node: less room for the Ray pod.
    monitoring = bool(target.cloud_config.get("container_insights"))
    head_params = _ray_params(target.head, head=True, monitoring=monitoring)
    head_params["num-cpus"] = "0"  # keep tasks off the head: it holds the GCS and dashboard
    groups = []
    for group in target.groups:
        params = _ray_params(group.shape, head=False, monitoring=monitoring)
        groups.append(
            {
                "groupName": group.name,
                "replicas": max(group.min_nodes, min(replicas.get(group.name, group.count), group.max_nodes)),
                "minReplicas": group.min_nodes,
                "maxReplicas": group.max_nodes,
                "rayStartParams": params,
                "template": _pod_template(
                    group.shape,
                    "ray-worker",
                    gpu_image if group.shape.gpus else image,
                    head=False,
                    monitoring=monitoring,
                ),
            }
        )
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_LABEL: "true", "rayplane.io/cluster-id": target.cluster_id.lower().replace("_", "-")},
        },
        "spec": {
            "rayVersion": target.ray_version,
            "suspend": suspend,
            # Ray's token authentication with Rayplane's token: KubeRay reads it from this
            # Secret (key ``auth_token``), sets RAY_AUTH_MODE=token and RAY_AUTH_TOKEN in every
            # Ray container, and generates no token of its own.
            "authOptions": {"mode": "token", "secretName": AUTH_SECRET},
            "enableInTreeAutoscaling": True,
            "autoscalerOptions": {
                "upscalingMode": "Default",
                "idleTimeoutSeconds": 60,
                "resources": {
                    "requests": {"cpu": f"{AUTOSCALER_CPU_M}m", "memory": f"{AUTOSCALER_MEMORY_MIB}Mi"},
                    "limits": {"cpu": f"{AUTOSCALER_CPU_M}m", "memory": f"{AUTOSCALER_MEMORY_MIB}Mi"},
                },
            },
            "headGroupSpec": {
                "serviceType": "ClusterIP",
                "rayStartParams": head_params,
                "template": _pod_template(target.head, "ray-head", image, head=True, monitoring=monitoring),
            },
            "workerGroupSpecs": groups,
            **({"gcsFaultToleranceOptions": gcs_fault_tolerance(target)} if target.gcs_fault_tolerance else {}),
        },
    }


def gcs_redis(target: ClusterTarget) -> dict[str, Any]:
    """The cloud's ``gcs_redis`` config; ValueError when it names none."""
    config = target.cloud_config.get("gcs_redis")
    if not isinstance(config, dict) or not config.get("address") or not config.get("password_secret"):
        raise ValueError("the cloud names no Redis for the head's GCS (gcs_redis in its config)")
    return config


def gcs_fault_tolerance(target: ClusterTarget) -> dict[str, Any]:
    """KubeRay v1.7.0's ``gcsFaultToleranceOptions``: the head's GCS in the cloud's Redis, under
    the cluster's own namespace of keys, with the password from the Secret Rayplane copies into
    the cluster's namespace (``gcs_redis_secret``). KubeRay then sets the head's
    ``RAY_REDIS_ADDRESS``, ``REDIS_PASSWORD`` and ``RAY_external_storage_namespace``, gives the
    workers ``RAY_gcs_rpc_server_reconnect_timeout_s`` (600 s), and deletes the namespace's
    keys with a cleanup Job when the RayCluster is deleted."""
    config = gcs_redis(target)
    options: dict[str, Any] = {
        "redisAddress": str(config["address"]),
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": GCS_REDIS_SECRET, "key": GCS_REDIS_KEY}}},
        "externalStorageNamespace": gcs_storage_namespace(target.cluster_id),
    }
    if config.get("username"):
        options["redisUsername"] = {"value": str(config["username"])}
    return options


def gcs_redis_secret(target: ClusterTarget, password_b64: str) -> dict[str, Any]:
    """The cluster's copy of the GCS Redis password (base64, as read from the operator's
    Secret), in the cluster's namespace where the RayCluster's ``secretKeyRef`` finds it."""
    ns, _ = resource_name(target)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": GCS_REDIS_SECRET, "namespace": ns, "labels": {MANAGED_LABEL: "true"}},
        "type": "Opaque",
        "data": {GCS_REDIS_KEY: password_b64},
    }


def auth_secret(target: ClusterTarget) -> dict[str, Any]:
    """The Secret holding the cluster's Ray token, in the cluster's namespace, under the key
    KubeRay v1.7.0 reads (``auth_token``, its RAY_AUTH_TOKEN_SECRET_KEY)."""
    if not target.ray_token:
        raise ValueError("a RayCluster needs its Ray token")
    ns, _ = resource_name(target)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": AUTH_SECRET, "namespace": ns, "labels": {MANAGED_LABEL: "true"}},
        "type": "Opaque",
        "data": {AUTH_TOKEN_KEY: base64.b64encode(target.ray_token.encode()).decode()},
    }


def namespace(target: ClusterTarget) -> dict[str, Any]:
    ns, _ = resource_name(target)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {MANAGED_LABEL: "true"}}}


DEVICE_PLUGIN_NAME = "nvidia-device-plugin-daemonset"
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"
GPU_TAINT = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}


def device_plugin_daemonset() -> dict[str, Any]:
    """The NVIDIA device plugin as AKS's "Use GPUs" guide installs it
    (https://learn.microsoft.com/azure/aks/use-nvidia-gpu, "Manually install the NVIDIA device
    plugin"): a DaemonSet in ``kube-system`` labelled ``name: nvidia-device-plugin-ds``.

    Without it a GPU node advertises no ``nvidia.com/gpu`` and a GPU pod never schedules. It
    runs only on GPU nodes (AKS's reserved ``kubernetes.azure.com/accelerator: nvidia`` label)
    and tolerates Rayplane's GPU taint and AKS's Spot taint, which those nodes carry. The
    plugin's own container requests nothing, as NVIDIA's static manifest has it, so it takes
    none of the room Rayplane sizes Ray pods for."""
    labels = {"name": "nvidia-device-plugin-ds", MANAGED_LABEL: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": DEVICE_PLUGIN_NAME, "namespace": "kube-system", "labels": {MANAGED_LABEL: "true"}},
        "spec": {
            "selector": {"matchLabels": {"name": "nvidia-device-plugin-ds"}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": {"kubernetes.azure.com/accelerator": "nvidia"},
                    "tolerations": [
                        GPU_TAINT,
                        {"key": SPOT_TAINT_KEY, "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    ],
                    "containers": [
                        {
                            "name": "nvidia-device-plugin-ctr",
                            "image": DEVICE_PLUGIN_IMAGE,
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}],
                        }
                    ],
                    "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}],
                },
            },
        },
    }


def kuberay_objects() -> list[dict[str, Any]]:
    """CRDs first, then the operator's namespace, RBAC and Deployment, in apply order (a fresh
    copy each call; parsed once per process)."""
    import copy

    return copy.deepcopy(_kuberay_objects())


@functools.lru_cache(maxsize=1)
def _kuberay_objects() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for file in (*CRD_FILES, OPERATOR_FILE):
        with open(KUBERAY_DIR / file, encoding="utf-8") as fh:
            objects += [doc for doc in yaml.load_all(fh, Loader=_YAML_LOADER) if doc]
    return objects


def crd_schema(kind: str = "RayCluster") -> dict[str, Any]:
    """The ``v1`` openAPIV3Schema of a KubeRay CRD, from ``infra/kuberay/``."""
    file = {"RayCluster": CRD_FILES[0], "RayJob": CRD_FILES[1], "RayService": CRD_FILES[2]}[kind]
    with open(KUBERAY_DIR / file, encoding="utf-8") as fh:
        crd = yaml.load(fh, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema
