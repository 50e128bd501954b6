"""Test-control routes of the Kubernetes surface, under ``/_emulator/kube`` (not Azure).

* ``POST /clusters`` ``{subscription, resourceGroup, name, role?, token?}`` -- register a
  cluster's bearer token (the ``kube.token`` document ARM would write) and answer
  ``{cluster, server, token, kubeconfig}`` (the kubeconfig as a dict).
* ``GET /clusters`` -- cluster keys with their object counts.
* ``POST /pools`` ``{cluster, name, vm_size, vcpus, memory_gib, gpus, mode, spot, autoscale,
  count, min_count, max_count, labels, taints, monitoring, gpu_managed, max_pods}`` --
  ``Fleet.upsert_pool`` without ARM;
  ``DELETE /pools/{name}?cluster=`` removes one.
* ``POST /evict`` ``{cluster, pool, count}`` -- spot eviction (``Fleet.evict``);
  ``{"evicted": [node names]}``.
* ``POST /oom`` ``{cluster, namespace, pod, container?}`` -- the container OOM-killed and
  restarted (``kubelet_faults.oom_kill``); the pod as it is now.
* ``GET``/``POST /config`` -- the knobs of :mod:`emulators.azure.kube.config`.
* ``GET /objects?cluster=&resource=&namespace=`` -- stored objects for debugging
  (``resource`` is a storage key such as ``core/pods`` or ``ray.io/rayclusters``).

``cluster`` is a cluster key (``fleet.cluster_key``) or ``{subscription, resourceGroup, name}``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from emulators.azure.fleet import PoolSpec, cluster_key
from emulators.azure.kube import config as config_module
from emulators.azure.kube import kubelet_faults
from emulators.azure.kube.routes import TOKEN_KIND

if TYPE_CHECKING:
    from emulators.azure.kube.service import KubeService


class ClusterName(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    subscription: str
    resource_group: str = Field(alias="resourceGroup")
    name: str


ClusterRef = str | ClusterName


def resolve(ref: ClusterRef) -> str:
    return ref if isinstance(ref, str) else cluster_key(ref.subscription, ref.resource_group, ref.name)


class RegisterCluster(ClusterName):
    role: str = "user"
    token: str | None = None


class PoolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: ClusterRef
    name: str
    vm_size: str = "Standard_D4s_v5"
    vcpus: int = 4
    memory_gib: float = 16
    gpus: int = 0
    mode: str = "User"
    spot: bool = False
    autoscale: bool = False
    count: int = 0
    min_count: int = 0
    max_count: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[str] = Field(default_factory=list)
    monitoring: bool = False
    gpu_managed: bool = False
    max_pods: int = 110


class OomRequest(BaseModel):
    cluster: ClusterRef
    namespace: str
    pod: str
    container: str | None = None


class EvictRequest(BaseModel):
    cluster: ClusterRef
    pool: str
    count: int = 1


def kubeconfig(server: str, name: str, user: str, token: str, ca_pem: bytes | None) -> dict[str, Any]:
    """A kubeconfig for ``server`` authenticating with ``token`` (what listClusterUserCredential returns)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }


def _pool_view(pool: Any) -> dict[str, Any]:
    return {
        "name": pool.spec.name,
        "spec": asdict(pool.spec),
        "demand": pool.demand,
        "nodes": [{"name": n.name, "ready_at": n.ready_at, "created_at": n.created_at} for n in pool.nodes],
        "evicted": list(pool.evicted),
    }


def create_admin_router(svc: KubeService) -> APIRouter:
    router = APIRouter(prefix="/_emulator/kube", tags=["emulator-kube"])

    @router.post("/clusters")
    async def register(body: RegisterCluster) -> dict[str, Any]:
        key = cluster_key(body.subscription, body.resource_group, body.name)
        token = body.token or secrets.token_hex(32)
        svc.store.put(TOKEN_KIND, token, {"cluster": key, "role": body.role})
        svc.touch(key)
        server = f"{svc.origin}/kubernetes/{body.subscription}/{body.resource_group}/{body.name}"
        ca_path = svc.ctx.settings.data_dir / "ca.pem"
        ca = ca_path.read_bytes() if server.startswith("https") and ca_path.exists() else None
        prefix = "clusterAdmin" if body.role == "admin" else "clusterUser"
        config = kubeconfig(server, body.name, f"{prefix}_{body.resource_group}_{body.name}", token, ca)
        return {"cluster": key, "server": server, "token": token, "kubeconfig": config}

    @router.get("/clusters")
    async def clusters() -> dict[str, Any]:
        out = {}
        for key in svc.objects.clusters():
            out[key] = sum(1 for _ in svc.objects.iter_type(key, "core/pods"))
        return {"clusters": [{"cluster": k, "pods": n} for k, n in sorted(out.items())]}

    @router.post("/pools")
    async def upsert_pool(body: PoolRequest) -> dict[str, Any]:
        fields = body.model_dump(exclude={"cluster"})
        pool = svc.fleet.upsert_pool(resolve(body.cluster), PoolSpec(**fields))
        svc.wake()
        return _pool_view(pool)

    @router.delete("/pools/{name}")
    async def delete_pool(name: str, cluster: str) -> dict[str, bool]:
        deleted = svc.fleet.delete_pool(cluster, name)
        svc.wake()
        return {"deleted": deleted}

    @router.post("/evict")
    async def evict(body: EvictRequest) -> dict[str, list[str]]:
        key = resolve(body.cluster)
        if svc.fleet.pool(key, body.pool) is None:
            raise HTTPException(404, f"no pool {body.pool!r} in {key}")
        names = svc.fleet.evict(key, body.pool, body.count)
        svc.wake()
        return {"evicted": names}

    @router.post("/oom")
    async def oom(body: OomRequest) -> dict[str, Any]:
        pod = kubelet_faults.oom_kill(svc.objects, resolve(body.cluster), body.namespace, body.pod, body.container)
        if pod is None:
            raise HTTPException(404, f"no running pod {body.namespace}/{body.pod} with that container")
        svc.wake()
        return pod

    @router.get("/config")
    async def get_config() -> dict[str, Any]:
        return config_module.as_dict(svc.config, svc.fleet)

    @router.post("/config")
    async def set_config(body: config_module.ConfigUpdate) -> dict[str, Any]:
        config_module.update(svc.config, body, svc.store, svc.fleet)
        svc.wake()
        return config_module.as_dict(svc.config, svc.fleet)

    @router.get("/objects")
    async def objects(cluster: str, resource: str = "core/pods", namespace: str | None = None) -> dict[str, Any]:
        return {"items": svc.objects.select(cluster, resource, namespace)}

    return router
