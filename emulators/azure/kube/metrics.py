"""``metrics.k8s.io/v1beta1``: simulated NodeMetrics and PodMetrics, for ``kubectl top``.

AKS runs metrics-server, which serves the resource metrics API
(https://kubernetes.io/docs/tasks/debug/debug-cluster/resource-metrics-pipeline/); here the
group is in discovery and answers ``GET`` (list, with ``labelSelector``, or one object) of
``nodes``, ``pods`` and ``namespaces/{ns}/pods``. Read-only (other verbs are 405).

Usage is simulated, deterministic and slowly varying: each running container uses a share of
its request (cpu 10-40 %, memory 30-60 %; a container without requests 1m / 16Mi), the share
drawn from a hash of the pod's uid, the container and the current minute. A node uses what
its running pods use plus a system baseline (100m and 800Mi, the kubelet, containerd and the
AKS daemons). Only ``Running`` pods have metrics, as metrics-server reports only pods the
kubelet has stats for; a pod without metrics is a 404 like metrics-server's.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from emulators.azure.kube import errors as err
from emulators.azure.kube import resources as res
from emulators.azure.kube.api import ListOptions, Target
from emulators.azure.kube.objects import now_iso
from emulators.azure.kube.scheduler import container_requests
from emulators.azure.kube.selectors import parse_label_selector

if TYPE_CHECKING:
    from emulators.azure.kube.service import KubeService

Obj = dict[str, Any]
GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
_READ = ("get", "list")
NODE_METRICS = res.ResourceType(
    GROUP, (VERSION,), "nodes", "", "NodeMetrics", False, verbs=_READ, status_subresource=False
)
POD_METRICS = res.ResourceType(GROUP, (VERSION,), "pods", "", "PodMetrics", True, verbs=_READ, status_subresource=False)
TYPES = (NODE_METRICS, POD_METRICS)
_WINDOW = "15.006s"
_BASE_CPU_NANO = 100_000_000
_BASE_MEMORY = 800 * 2**20


def _share(uid: str, container: str, what: str, low: float, high: float) -> float:
    minute = int(time.time() // 60)
    digest = hashlib.sha256(f"{uid}/{container}/{what}/{minute}".encode()).digest()
    return low + (high - low) * (int.from_bytes(digest[:4], "big") / 2**32)


def container_usage(pod: Obj, container: Obj) -> tuple[int, int]:
    """(nanocores, bytes) a running container uses now."""
    req = container_requests(container)
    uid, name = str(pod["metadata"].get("uid", "")), str(container.get("name", ""))
    cpu = math.ceil(req.cpu * 1_000_000 * _share(uid, name, "cpu", 0.10, 0.40)) if req.cpu else 1_000_000
    memory = math.ceil(req.memory * _share(uid, name, "memory", 0.30, 0.60)) if req.memory else 16 * 2**20
    return cpu, memory


def _quantities(cpu_nano: int, memory: int) -> Obj:
    return {"cpu": f"{cpu_nano}n", "memory": f"{memory // 1024}Ki"}


def _running(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def pod_metrics(pod: Obj) -> Obj:
    m = pod["metadata"]
    containers = [
        {"name": c.get("name", ""), "usage": _quantities(*container_usage(pod, c))}
        for c in (pod.get("spec") or {}).get("containers") or []
    ]
    return {
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": {
            "name": m["name"],
            "namespace": m.get("namespace", ""),
            "creationTimestamp": now_iso(),
            **({"labels": m["labels"]} if m.get("labels") else {}),
        },
        "timestamp": now_iso(),
        "window": _WINDOW,
        "containers": containers,
    }


def node_metrics(node: Obj, pods: list[Obj]) -> Obj:
    cpu, memory = _BASE_CPU_NANO, _BASE_MEMORY
    for pod in pods:
        for c in (pod.get("spec") or {}).get("containers") or []:
            used = container_usage(pod, c)
            cpu, memory = cpu + used[0], memory + used[1]
    m = node["metadata"]
    return {
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": {"name": m["name"], "creationTimestamp": now_iso(), "labels": m.get("labels") or {}},
        "timestamp": now_iso(),
        "window": _WINDOW,
        "usage": _quantities(cpu, memory),
    }


def serve(request: Request, svc: KubeService, cluster: str, version: str, rest: list[str]) -> Response:
    """``/apis/metrics.k8s.io/v1beta1/...`` below the group version."""
    if version != VERSION:
        raise err.resource_not_found()
    if request.method != "GET":
        raise err.method_not_allowed(f"{request.method} is not supported on {GROUP}")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if rest[0] not in ("nodes", "pods") or len(rest) > 2 or (namespace and rest[0] != "pods"):
        raise err.resource_not_found()
    try:
        labels = parse_label_selector(request.query_params.get("labelSelector"))
    except ValueError as exc:
        raise err.bad_request(str(exc)) from None
    pods = [p for p in svc.objects.iter_type(cluster, res.PODS.key) if _running(p)]
    if rest[0] == "pods":
        items = [
            pod_metrics(p)
            for p in sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))
            if (not namespace or p["metadata"].get("namespace") == namespace)
            and labels(p["metadata"].get("labels") or {})
        ]
        kind = "PodMetrics"
    else:
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            by_node.setdefault(str((p.get("spec") or {}).get("nodeName") or ""), []).append(p)
        nodes = svc.api.list_objects(Target(cluster, res.NODES, "v1"), ListOptions())["items"]
        items = [
            node_metrics(n, by_node.get(n["metadata"]["name"], []))
            for n in nodes
            if labels(n["metadata"].get("labels") or {})
        ]
        kind = "NodeMetrics"
    if len(rest) == 2:
        found = next((i for i in items if i["metadata"]["name"] == rest[1]), None)
        if found is None:
            raise err.not_found(rest[0], GROUP, rest[1])
        return JSONResponse(found)
    return JSONResponse({"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {}, "items": items})
