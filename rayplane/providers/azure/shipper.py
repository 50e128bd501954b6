"""The Kubernetes side of durable logs on AKS, as plain data: the log shipper sidecar added to
every Ray pod (head and workers) of a RayCluster or RayService, its ServiceAccount (bound to the
cluster's managed identity by the ``azure.workload.identity/client-id`` annotation) and the
ConfigMap holding its typed configuration (:class:`~.podship.ShipperConfig`).

Each pod gets: an ``emptyDir`` at ``/tmp/ray`` shared by the Ray container and the sidecar (Ray
writes its session under ``/tmp/ray``), the label ``azure.workload.identity/use: "true"`` (AKS's
webhook then projects the service account token and sets the ``AZURE_*`` variables), the
service account, and the sidecar with small, bounded resources. The sidecar's name and the
node it ships as come from the downward API, so no per-pod configuration is needed.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from rayplane import __version__
from rayplane.providers.azure.podship import RAY_ROOT, ShipperConfig
from rayplane.providers.azure.workload import SERVICE_ACCOUNT

if TYPE_CHECKING:
    from rayplane.providers.azure.observability import ClusterLogs

CONTAINER = "log-shipper"
CONFIG_MAP = "rayplane-log-shipper"
CONFIG_KEY = "shipper.json"
CONFIG_DIR = "/etc/rayplane"
VOLUME = "ray-tmp"
CONFIG_VOLUME = "log-shipper-config"
IMAGE = f"rayplane:{__version__}"
USE_LABEL = "azure.workload.identity/use"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
TENANT_ID_ANNOTATION = "azure.workload.identity/tenant-id"
# Tailing a few files and appending blocks: small and bounded. A Ray pod fills its node, so the
# Ray container gives up what the sidecar requests (its memory limit too: the pod's sum stays).
SIDECAR_CPU_M, SIDECAR_MEMORY_MIB = 50, 64
RESOURCES = {
    "requests": {"cpu": f"{SIDECAR_CPU_M}m", "memory": f"{SIDECAR_MEMORY_MIB}Mi"},
    "limits": {"cpu": "200m", "memory": f"{SIDECAR_MEMORY_MIB}Mi"},
}
# Enough for the final pass after Ray's own preStop (``ray stop``).
GRACE_SECONDS = 60


def config(logs: ClusterLogs) -> ShipperConfig:
    return ShipperConfig(
        account_url=logs.sink.blob_url, container=logs.sink.container, tenant=logs.tenant, cluster=logs.cluster
    )


def objects(logs: ClusterLogs, namespace: str) -> list[dict[str, Any]]:
    """The ServiceAccount and ConfigMap, applied before the RayCluster that names them."""
    annotations = {CLIENT_ID_ANNOTATION: logs.identity.client_id}
    if logs.identity.tenant_id:
        annotations[TENANT_ID_ANNOTATION] = logs.identity.tenant_id
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "annotations": annotations},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": namespace},
            "data": {CONFIG_KEY: config(logs).to_json()},
        },
    ]


def _env(field: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": field}}}


def sidecar(image: str = IMAGE) -> dict[str, Any]:
    return {
        "name": CONTAINER,
        "image": image,
        "command": ["python", "-m", "rayplane.providers.azure.podship", f"{CONFIG_DIR}/{CONFIG_KEY}"],
        "env": [
            {"name": "POD_NAME", **_env("metadata.name")},
            {"name": "RAY_NODE_TYPE", **_env("metadata.labels['ray.io/node-type']")},
            {"name": "RAY_GROUP", **_env("metadata.labels['ray.io/group']")},
        ],
        "resources": copy.deepcopy(RESOURCES),
        "volumeMounts": [
            {"name": VOLUME, "mountPath": RAY_ROOT, "readOnly": True},
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 10001},
    }


def with_pod_shipper(template: dict[str, Any], image: str = IMAGE) -> dict[str, Any]:
    """A pod template (its first container being Ray's) with the shipper added; a copy."""
    out = copy.deepcopy(template)
    labels = out.setdefault("metadata", {}).setdefault("labels", {})
    labels[USE_LABEL] = "true"
    spec = out.setdefault("spec", {})
    spec["serviceAccountName"] = SERVICE_ACCOUNT
    spec["terminationGracePeriodSeconds"] = max(int(spec.get("terminationGracePeriodSeconds") or 0), GRACE_SECONDS)
    volumes = [v for v in spec.get("volumes", []) if v.get("name") not in (VOLUME, CONFIG_VOLUME)]
    volumes += [
        {"name": VOLUME, "emptyDir": {}},
        {"name": CONFIG_VOLUME, "configMap": {"name": CONFIG_MAP}},
    ]
    spec["volumes"] = volumes
    had = any(c.get("name") == CONTAINER for c in spec.get("containers", []))
    containers = [c for c in spec.get("containers", []) if c.get("name") != CONTAINER]
    ray = containers[0]
    if not had:
        _shrink(ray.setdefault("resources", {}))
    mounts = [m for m in ray.get("volumeMounts", []) if m.get("name") != VOLUME]
    ray["volumeMounts"] = [*mounts, {"name": VOLUME, "mountPath": RAY_ROOT}]
    spec["containers"] = [*containers, sidecar(image)]
    return out


def _shrink(resources: dict[str, Any]) -> None:
    """Take the sidecar's CPU and memory off the Ray container's (``<n>m`` and ``<n>Mi`` as
    :mod:`.manifests` writes them), never below a tenth of what it had."""
    for kind in ("requests", "limits"):
        values = resources.get(kind) or {}
        cpu = str(values.get("cpu", ""))
        if kind == "requests" and cpu.endswith("m"):
            values["cpu"] = f"{max(int(cpu[:-1]) - SIDECAR_CPU_M, int(cpu[:-1]) // 10)}m"
        memory = str(values.get("memory", ""))
        if memory.endswith("Mi"):
            values["memory"] = f"{max(int(memory[:-2]) - SIDECAR_MEMORY_MIB, int(memory[:-2]) // 10)}Mi"


def _group(group: dict[str, Any], image: str) -> None:
    """One group (head or workers) of a RayCluster spec, in place: the pod template with the
    shipper, and Ray's memory (bytes) as much smaller as its container became."""
    if any(c.get("name") == CONTAINER for c in group["template"].get("spec", {}).get("containers", [])):
        return
    group["template"] = with_pod_shipper(group["template"], image)
    params = group.get("rayStartParams") or {}
    if str(params.get("memory", "")).isdigit():
        params["memory"] = str(int(params["memory"]) - SIDECAR_MEMORY_MIB * 1024 * 1024)


def with_shipper(raycluster: dict[str, Any], image: str = IMAGE) -> dict[str, Any]:
    """A RayCluster (or a RayService's ``rayClusterConfig``) with the shipper in every pod."""
    out = copy.deepcopy(raycluster)
    spec = out["spec"]
    _group(spec["headGroupSpec"], image)
    for group in spec.get("workerGroupSpecs", []):
        _group(group, image)
    return out


def with_service_shipper(rayservice: dict[str, Any], image: str = IMAGE) -> dict[str, Any]:
    """A RayService with the shipper in every pod of the clusters KubeRay makes from it."""
    out = copy.deepcopy(rayservice)
    out["spec"]["rayClusterConfig"] = with_shipper({"spec": out["spec"]["rayClusterConfig"]}, image)["spec"]
    return out
