"""Cluster power and upgrades: stop/start, Kubernetes versions, upgrade profiles, node images.

Routes (each after the dispatcher's auth and api-version checks), shapes from the AKS REST API
examples named (azure-rest-api-specs, ``aks/stable/<version>/examples``):

* ``POST .../managedClusters/{c}/stop`` and ``/start`` (ManagedClustersStop.json,
  ManagedClustersStart.json, 2026-06-01 / 2026-03-01): 202 with ``Location`` and
  ``Azure-AsyncOperation``; the cluster and its pools show ``Stopping``/``Starting``, then
  ``Succeeded`` with ``powerState.code`` ``Stopped``/``Running``. A stopped cluster's nodes are
  deallocated (the fleet drops them; pools keep their ``count``) and its Kubernetes API does not
  answer (:class:`StoppedClusterGuard`); start brings the nodes back. The operation result is 204.
* ``GET /subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/kubernetesVersions``
  (KubernetesVersions_List.json): ``{"values": [{"version", "capabilities", "isDefault"?,
  "patchVersions": {patch: {"upgrades"}}}]}`` from :data:`KUBERNETES_VERSIONS`.
* ``GET .../locations/{l}/orchestrators`` (listOrchestrators, ContainerServiceListOrchestrators.json
  of older stable versions): the same versions as ``orchestrators`` entries.
* ``GET .../managedClusters/{c}/upgradeProfiles/default`` (ManagedClustersGetUpgradeProfile.json)
  and ``.../agentPools/{p}/upgradeProfiles/default`` (AgentPoolsGetUpgradeProfile.json, with
  ``latestNodeImageVersion``).
* ``POST .../agentPools/{p}/upgradeNodeImageVersion`` (AgentPoolsUpgradeNodeImageVersion.json):
  202 with the pool in ``UpgradingNodeImageVersion`` and the LRO headers; when the operation ends
  the pool's ``nodeImageVersion`` is the latest (``ArmConfig.latest_node_image_version``).

Upgrades follow AKS's rule: later patches of the same minor and any patch of the next minor.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from emulators.azure.arm import resources
from emulators.azure.arm.errors import ArmError, resource_not_found
from emulators.azure.arm.service import ArmService, Call, not_found_pool
from emulators.azure.arm.state import ArmStore, ClusterDoc, PoolDoc
from emulators.azure.fleet import cluster_key

KUBERNETES_VERSIONS = resources.KUBERNETES_VERSIONS
DEFAULT_MINOR = resources.DEFAULT_MINOR


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def upgrades(version: str) -> list[str]:
    """Versions a cluster or pool on ``version`` may upgrade to, oldest first."""
    minor = _minor(version)
    out = [v for v in KUBERNETES_VERSIONS.get(minor, []) if _key(v) > _key(version)]
    minors = sorted(KUBERNETES_VERSIONS, key=_key)
    nexts = [m for m in minors if _key(m) > _key(minor)]
    if nexts:
        out += KUBERNETES_VERSIONS[nexts[0]]
    return out


def kubernetes_versions() -> dict[str, Any]:
    values = []
    for minor in sorted(KUBERNETES_VERSIONS, key=_key):
        entry: dict[str, Any] = {
            "version": minor,
            "capabilities": {"supportPlan": ["KubernetesOfficial"]},
            "patchVersions": {patch: {"upgrades": upgrades(patch)} for patch in KUBERNETES_VERSIONS[minor]},
        }
        if minor == DEFAULT_MINOR:
            entry["isDefault"] = True
        values.append(entry)
    return {"values": values}


async def list_kubernetes_versions(svc: ArmService, call: Call) -> Response:
    return JSONResponse(kubernetes_versions())


async def list_orchestrators(svc: ArmService, call: Call) -> Response:
    p = call.params
    orchestrators = []
    for minor in sorted(KUBERNETES_VERSIONS, key=_key):
        for patch in KUBERNETES_VERSIONS[minor]:
            entry: dict[str, Any] = {
                "orchestratorType": "Kubernetes",
                "orchestratorVersion": patch,
                "upgrades": [{"orchestratorType": "Kubernetes", "orchestratorVersion": v} for v in upgrades(patch)],
            }
            if patch == KUBERNETES_VERSIONS[DEFAULT_MINOR][-1]:
                entry["default"] = True
            orchestrators.append(entry)
    body = {
        "id": f"/subscriptions/{p['sub']}/providers/Microsoft.ContainerService/locations/{p['loc']}/orchestrators",
        "name": "default",
        "type": "Microsoft.ContainerService/locations/orchestrators",
        "properties": {"orchestrators": orchestrators},
    }
    return JSONResponse(body)


def _cluster(svc: ArmService, call: Call) -> ClusterDoc:
    p = call.params
    cluster = svc.docs.cluster(p["sub"], p["rg"], p["name"])
    if cluster is None:
        raise resource_not_found("Microsoft.ContainerService/managedClusters", p["name"], p["rg"])
    return cluster


def _pool(svc: ArmService, call: Call, cluster: ClusterDoc) -> PoolDoc:
    pool = svc.docs.pool(cluster.key, call.params["pool"])
    if pool is None:
        raise not_found_pool(call.params["pool"])
    return pool


def is_stopped(cluster: ClusterDoc) -> bool:
    return bool((cluster.properties.get("powerState") or {}).get("code") == "Stopped")


def check_running(cluster: ClusterDoc) -> None:
    """409 for a change to a stopped cluster (AKS accepts only start, delete and reads then)."""
    if is_stopped(cluster):
        message = f"The managed cluster '{cluster.name}' is stopped; start it before changing it or its agent pools."
        raise ArmError(409, "OperationNotAllowed", message)


async def cluster_upgrade_profile(svc: ArmService, call: Call) -> Response:
    cluster = _cluster(svc, call)
    version = str(cluster.properties.get("currentKubernetesVersion", resources.DEFAULT_KUBERNETES_VERSION))
    pools = []
    for pool in svc.docs.pools(cluster.key):
        pool_version = str(pool.properties.get("currentOrchestratorVersion", version))
        pools.append(
            {
                "name": pool.name,
                "kubernetesVersion": pool_version,
                "osType": pool.properties.get("osType", "Linux"),
                "upgrades": [{"kubernetesVersion": v} for v in upgrades(pool_version)],
            }
        )
    body = {
        "id": f"{cluster.body['id']}/upgradeprofiles/default",
        "name": "default",
        "type": "Microsoft.ContainerService/managedClusters/upgradeprofiles",
        "properties": {
            "controlPlaneProfile": {
                "name": "master",
                "kubernetesVersion": version,
                "osType": "Linux",
                "upgrades": [{"kubernetesVersion": v} for v in upgrades(version)],
            },
            "agentPoolProfiles": pools,
        },
    }
    return JSONResponse(body)


async def pool_upgrade_profile(svc: ArmService, call: Call) -> Response:
    cluster = _cluster(svc, call)
    pool = _pool(svc, call, cluster)
    version = str(pool.properties.get("currentOrchestratorVersion", resources.DEFAULT_KUBERNETES_VERSION))
    body = {
        "id": f"{pool.body['id']}/upgradeprofiles/default",
        "name": "default",
        "type": "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles",
        "properties": {
            "kubernetesVersion": version,
            "osType": pool.properties.get("osType", "Linux"),
            "upgrades": [{"kubernetesVersion": v} for v in upgrades(version)],
            "latestNodeImageVersion": svc.admin.config.latest_node_image_version,
        },
    }
    return JSONResponse(body)


async def upgrade_node_image(svc: ArmService, call: Call) -> Response:
    cluster = _cluster(svc, call)
    pool = _pool(svc, call, cluster)
    svc.check_cluster_idle(cluster)
    svc.check_pools_idle(cluster, only=pool.name)
    check_running(cluster)
    op = svc.ops.start(
        kind="pool",
        action="nodeimage",
        cluster=cluster,
        resource_key=pool.key,
        resource_id=pool.body["id"],
        subjects=[pool.name],
        target=svc.admin.config.latest_node_image_version,
    )
    pool.properties["provisioningState"] = "UpgradingNodeImageVersion"
    pool.properties["eTag"] = resources.new_etag()
    pool.operation = op["name"]
    svc.docs.save_pool(pool)
    headers = svc.lro_headers(op, call.api_version, location=True)
    return JSONResponse(svc.render_pool(pool, call.api_version), status_code=202, headers=headers)


async def _power(svc: ArmService, call: Call, action: str) -> Response:
    cluster = _cluster(svc, call)
    svc.check_cluster_idle(cluster)
    svc.check_pools_idle(cluster)
    pools = svc.docs.pools(cluster.key)
    op = svc.ops.start(
        kind="cluster",
        action=action,
        cluster=cluster,
        resource_key=cluster.key,
        resource_id=cluster.body["id"],
        subjects=[cluster.name, *(p.name for p in pools)],
    )
    state = "Stopping" if action == "stop" else "Starting"
    cluster.properties["provisioningState"] = state
    cluster.operation = op["name"]
    svc.docs.save_cluster(cluster)
    for pool in pools:
        pool.properties["provisioningState"] = state
        pool.operation = op["name"]
        svc.docs.save_pool(pool)
    return svc.accepted(svc.lro_headers(op, call.api_version, location=True))


async def stop(svc: ArmService, call: Call) -> Response:
    return await _power(svc, call, "stop")


async def start(svc: ArmService, call: Call) -> Response:
    return await _power(svc, call, "start")


class StoppedClusterGuard:
    """ASGI middleware: a stopped cluster's Kubernetes API (``/kubernetes/{s}/{rg}/{c}/...``)
    answers 503 with a Kubernetes ``Status``, as an unreachable AKS API server fails every call
    (on AKS the server's name stops resolving while the cluster is stopped)."""

    def __init__(self, app: ASGIApp, docs: ArmStore) -> None:
        self.app = app
        self.docs = docs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            parts = str(scope.get("path", "")).split("/")
            if len(parts) >= 5 and parts[1] == "kubernetes":
                cluster = self.docs.cluster_by_key(cluster_key(parts[2], parts[3], parts[4]))
                if cluster is not None and is_stopped(cluster):
                    message = f"the managed cluster {cluster.name} is stopped: its API server is not running"
                    status = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": message,
                        "reason": "ServiceUnavailable",
                        "code": 503,
                    }
                    await JSONResponse(status, status_code=503)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
