"""The API server's pod proxy: ``/api/v1/namespaces/{ns}/pods/{name}[:{port}]/proxy/{path}``.

As kube-apiserver's ``pod.ResourceLocation`` (``pkg/registry/core/pod/strategy.go``) reads
it: ``{name}`` is ``name``, ``name:port`` or ``scheme:name:port``; the port is used as given
(a *number*: a port name is not looked up, so the dial fails); without one, the first
container port of the pod. A pod that does not exist is a 404 ``pods "<name>" not found``; a
pod without an IP (not scheduled yet) a 400 ``address not allowed``; a target nothing listens
on a 503 ``error trying to reach service: dial tcp <ip>:<port>: connect: connection refused``
(the proxy transport's ``NewServiceUnavailable``). Authentication is the routes' (a bearer
token of this cluster, else 401).

What listens: only the Ray container's metrics export port (its ``metrics`` port, 8080 by
default) of a Running Ray pod (owned by a RayCluster). With ``ray_backend: "real"`` the
request is forwarded to that pod's real Ray node's metrics port
(:meth:`RayNodes.metrics_port`); with the simulated Ray, a small Prometheus text in Ray's own
metric names (:func:`synthetic_metrics`), its values derived from the node's declared
resources (as the simulated dashboard declares them), so charts have something to show.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import Request, Response
from fastapi.responses import PlainTextResponse

from emulators.azure.kube import errors as err
from emulators.azure.kube import raypods
from emulators.azure.kube import resources as res
from emulators.azure.kube.config import KubeConfig
from emulators.azure.kube.dashboard import node_row
from emulators.azure.kube.proxy import split_name

if TYPE_CHECKING:
    from emulators.azure.kube.objects import ObjectStore
    from emulators.azure.kube.raynodes import RayNodes

Obj = dict[str, Any]
METRICS_PORT = raypods.DEFAULT_PORTS["metrics"]
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def metrics_port(pod: Obj) -> int:
    """The Ray container's ``metrics`` port (KubeRay's default 8080)."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for port in containers[0].get("ports") or []:
        if port.get("name") == "metrics" and port.get("containerPort"):
            return int(port["containerPort"])
    return METRICS_PORT


def first_port(pod: Obj) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return str(port["containerPort"])
    return ""


def synthetic_metrics(rc: Obj, pod: Obj) -> str:
    """A Ray node's metrics text for a simulated Ray pod: CPU (a steady figure per pod), memory
    (a quarter of what the node declares used), the object store, GPUs, and the head's task and
    actor gauges, each with Ray's labels."""
    row = node_row(rc, pod)
    total = row["resources_total"]
    ip, is_head = row["node_ip"], row["is_head_node"]
    memory = float(total.get("memory") or 2**30)
    spread = int(hashlib.sha256(str(pod["metadata"]["uid"]).encode()).hexdigest()[:4], 16) % 40
    cpu = 5.0 + spread if is_head else 20.0 + spread
    store = float(total.get("object_store_memory", 0)) / 20
    labels = f'ip="{ip}",SessionName="session_emulated",Version="2.52.0"'
    lines = [
        "# HELP ray_node_cpu_utilization Total CPU usage on a ray node",
        "# TYPE ray_node_cpu_utilization gauge",
        f"ray_node_cpu_utilization{{{labels}}} {cpu}",
        "# HELP ray_node_mem_used Memory usage on a ray node",
        "# TYPE ray_node_mem_used gauge",
        f"ray_node_mem_used{{{labels}}} {memory / 4}",
        "# HELP ray_node_mem_total Total memory on a ray node",
        "# TYPE ray_node_mem_total gauge",
        f"ray_node_mem_total{{{labels}}} {memory}",
        "# HELP ray_object_store_used_memory Amount of memory currently occupied by the object store",
        "# TYPE ray_object_store_used_memory gauge",
        f'ray_object_store_used_memory{{{labels},Location="MMAP_SHM"}} {store}',
    ]
    gpus = int(total.get("GPU", 0))
    if gpus:
        lines += ["# HELP ray_node_gpus_utilization Total GPUs usage", "# TYPE ray_node_gpus_utilization gauge"]
        lines += [f'ray_node_gpus_utilization{{{labels},GpuIndex="{i}"}} {cpu}' for i in range(gpus)]
    if is_head:
        lines += [
            "# HELP ray_tasks Current number of tasks currently in a particular state.",
            "# TYPE ray_tasks gauge",
            f'ray_tasks{{{labels},State="RUNNING",Source="executor"}} 0.0',
            f'ray_tasks{{{labels},State="PENDING_NODE_ASSIGNMENT",Source="owner"}} 0.0',
            "# HELP ray_actors Current number of actors currently in a particular state.",
            "# TYPE ray_actors gauge",
            f'ray_actors{{{labels},State="ALIVE",Source="gcs"}} 0.0',
        ]
    return "\n".join(lines) + "\n"


class PodProxy:
    """Resolves a proxied request to a pod's Ray metrics (see the module docstring)."""

    def __init__(self, objects: ObjectStore, config: KubeConfig, raynodes: RayNodes | None = None) -> None:
        self.objects = objects
        self.config = config
        self.raynodes = raynodes
        self._client: httpx.AsyncClient | None = None

    async def handle(self, request: Request, cluster: str, namespace: str, name_port: str, path: str) -> Response:
        name, port = split_name(name_port)
        pod = self.objects.get(cluster, res.PODS.key, namespace, name)
        if pod is None:
            raise err.not_found("pods", "", name)
        port = port or first_port(pod)
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip:
            raise err.bad_request("address not allowed")
        refused = err.service_unavailable(
            f"error trying to reach service: dial tcp {ip}:{port}: connect: connection refused"
        )
        rc = self._raycluster(cluster, pod)
        if status.get("phase") != "Running" or rc is None or port != str(metrics_port(pod)):
            raise refused
        if self.config.ray_backend == "real" and self.raynodes is not None:
            target = self.raynodes.metrics_port(str(pod["metadata"]["uid"]))
            if target is None:
                raise refused
            return await self._forward(request, target, path)
        if path.strip("/") != "metrics":
            return PlainTextResponse("404 page not found\n", status_code=404)
        return PlainTextResponse(synthetic_metrics(rc, pod), media_type=PROMETHEUS_TEXT)

    def _raycluster(self, cluster: str, pod: Obj) -> Obj | None:
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("kind") == "RayCluster":
                owner = self.objects.by_uid(cluster, str(ref.get("uid")))
                if owner is not None and owner.get("kind") == "RayCluster":
                    return owner
        return None

    async def _forward(self, request: Request, port: int, path: str) -> Response:
        """A GET of the real node's metrics on 127.0.0.1:``port``."""
        if self._client is None:
            # trust_env off: a host proxy setting must not capture localhost calls.
            self._client = httpx.AsyncClient(timeout=10, trust_env=False)
        try:
            resp = await self._client.request(
                request.method,
                f"http://127.0.0.1:{port}/{path.lstrip('/')}",
                params=list(request.query_params.multi_items()),
                headers={k: v for k, v in request.headers.items() if k.lower() == "accept"},
            )
        except httpx.HTTPError as exc:
            raise err.service_unavailable(f"error trying to reach service: {exc}") from exc
        keep = {k: v for k, v in resp.headers.items() if k.lower() == "content-type"}
        return Response(resp.content, status_code=resp.status_code, headers=keep)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
