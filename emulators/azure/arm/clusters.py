"""Managed cluster handlers: ``.../managedClusters[/{c}]`` and its credential actions.

* ``PUT`` -- create (201) or update (200) the cluster and the pools in its
  ``agentPoolProfiles`` (each validated like an agent pool PUT; the first profile is the System
  pool unless a profile says so), one LRO for all of them. Pools not named in an update are
  left alone, as AKS does.
* ``GET`` -- the cluster with ``agentPoolProfiles`` rendered from its pools.
* ``GET`` (by resource group, by subscription) -- paged lists.
* ``DELETE`` -- 202 (+ ``Location``), then 404 once the operation is done; 204 when missing.
  The delete cancels any create/update in progress on the cluster or its pools; when it
  succeeds the fleet, the kube tokens and every ``cluster_deleted`` callback are told.
* ``POST listClusterUserCredential`` / ``listClusterAdminCredential`` -- kubeconfigs, see
  :mod:`emulators.azure.arm.kubeconfig`.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from emulators.azure.arm import lifecycle, resources, validation
from emulators.azure.arm.errors import ArmError, invalid_parameter, resource_not_found
from emulators.azure.arm.kubeconfig import credential_results
from emulators.azure.arm.service import ArmService, Call
from emulators.azure.arm.state import ClusterDoc, PoolDoc, pool_key, resource_group_prefix, subscription_prefix
from emulators.azure.fleet import cluster_key

CLUSTER_TYPE = "Microsoft.ContainerService/managedClusters"


def _existing(svc: ArmService, call: Call) -> ClusterDoc:
    p = call.params
    cluster = svc.docs.cluster(p["sub"], p["rg"], p["name"])
    if cluster is None:
        raise resource_not_found(CLUSTER_TYPE, p["name"], p["rg"])
    return cluster


async def get_cluster(svc: ArmService, call: Call) -> Response:
    cluster = _existing(svc, call)
    return svc.resource_response(svc.render_cluster(cluster, call.api_version), cluster.body.get("eTag"))


async def list_by_resource_group(svc: ArmService, call: Call) -> Response:
    clusters = svc.docs.clusters(resource_group_prefix(call.params["sub"], call.params["rg"]))
    return svc.page(call, [(c.key, svc.render_cluster(c, call.api_version)) for c in clusters])


async def list_by_subscription(svc: ArmService, call: Call) -> Response:
    clusters = svc.docs.clusters(subscription_prefix(call.params["sub"]))
    return svc.page(call, [(c.key, svc.render_cluster(c, call.api_version)) for c in clusters])


async def credentials(svc: ArmService, call: Call, role: str) -> Response:
    cluster = _existing(svc, call)
    body = credential_results(cluster, role, svc.ctx.store, svc.origin, svc.ctx.settings.data_dir)
    return JSONResponse(body)


def _profiles(
    svc: ArmService, sent: dict[str, Any], key: str, location: str, version: str, creating: bool
) -> list[tuple[str, dict[str, Any], PoolDoc | None]]:
    """(name, validated properties, existing pool) for each of the request's agentPoolProfiles."""
    raw = resources.as_object(sent.get("properties")).get("agentPoolProfiles")
    if raw is None:
        raw = []
    if not isinstance(raw, list) or (creating and not raw):
        raise invalid_parameter("properties.agentPoolProfiles", "at least one agent pool profile is required")
    has_system = any(isinstance(p, dict) and p.get("mode") == "System" for p in raw)
    seen: set[str] = set()
    out = []
    for index, profile in enumerate(raw):
        if not isinstance(profile, dict) or not isinstance(profile.get("name"), str):
            raise invalid_parameter("agentPoolProfile.name", "every agent pool profile needs a name")
        name = profile["name"]
        if name.lower() in seen:
            raise invalid_parameter("agentPoolProfile.name", f"duplicate agent pool name {name!r}")
        seen.add(name.lower())
        existing = svc.docs.pool(key, name)
        previous = existing.properties if existing else None
        if previous is not None:
            default_mode = str(previous.get("mode", "User"))
        else:
            default_mode = "System" if index == 0 and not has_system else "User"
        fields = {k: v for k, v in profile.items() if k != "name"}
        props = resources.pool_properties(
            fields,
            cluster_version=version,
            default_mode=default_mode,
            node_image=svc.admin.config.latest_node_image_version,
        )
        validation.pool(name, props, previous)
        svc.checked_size(props["vmSize"], name, location)
        out.append((existing.name if existing else name, props, existing))
    return out


async def put_cluster(svc: ArmService, call: Call) -> Response:
    sent = call.json_object()
    p = call.params
    key = cluster_key(p["sub"], p["rg"], p["name"])
    existing = svc.docs.cluster_by_key(key)
    validation.preconditions(
        call.headers.get("if-match"), call.headers.get("if-none-match"), existing.body.get("eTag") if existing else None
    )
    if existing is not None:
        svc.check_cluster_idle(existing)
        svc.check_pools_idle(existing)
        lifecycle.check_running(existing)
    location = sent.get("location")
    if not isinstance(location, str) or not location.strip():
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    # An update keeps the casing the resource was created with (ARM ids are case-insensitive).
    subscription, resource_group, name = (
        (existing.subscription, existing.resource_group, existing.name) if existing else (p["sub"], p["rg"], p["name"])
    )
    body = resources.cluster_body(
        sent,
        existing.body if existing else None,
        subscription=subscription,
        resource_group=resource_group,
        name=name,
        origin=svc.origin,
        tenant=str(call.claims.get("tid", "")),
    )
    version = body["properties"]["currentKubernetesVersion"]
    profiles = _profiles(svc, sent, key, location, version, creating=existing is None)
    demand: dict[str, int] = {}
    for pool_name, props, _ in profiles:
        size = svc.checked_size(props["vmSize"], pool_name, location)
        demand[size.family] = demand.get(size.family, 0) + size.vcpus * props["count"]
    svc.check_quota(subscription, location, demand, {pool_key(key, n) for n, _, _ in profiles})
    cluster = ClusterDoc(key, subscription, resource_group, name, body)
    op = svc.ops.start(
        kind="cluster",
        action="update" if existing else "create",
        cluster=cluster,
        resource_key=key,
        resource_id=body["id"],
        subjects=[name, *(n for n, _, _ in profiles)],
    )
    body["eTag"] = resources.new_etag()
    body["properties"]["provisioningState"] = "Updating" if existing else "Creating"
    cluster.operation = op["name"]
    svc.docs.save_cluster(cluster)
    for pool_name, props, pool in profiles:
        props["eTag"] = resources.new_etag()
        props["provisioningState"] = "Updating" if pool else "Creating"
        pool_body = resources.pool_body(body["id"], pool_name, props)
        svc.docs.save_pool(PoolDoc(pool_key(key, pool_name), key, pool_name, pool_body, op["name"]))
    headers = svc.lro_headers(op, call.api_version)
    return svc.resource_response(
        svc.render_cluster(cluster, call.api_version), body["eTag"], 200 if existing else 201, **headers
    )


async def delete_cluster(svc: ArmService, call: Call) -> Response:
    p = call.params
    cluster = svc.docs.cluster(p["sub"], p["rg"], p["name"])
    if cluster is None:
        validation.preconditions(call.headers.get("if-match"), None, None)
        return Response(status_code=204)
    validation.preconditions(call.headers.get("if-match"), call.headers.get("if-none-match"), cluster.body.get("eTag"))
    running = svc.in_progress(cluster.operation)
    if running is not None and running["action"] == "delete":
        return svc.accepted(svc.lro_headers(running, call.api_version, location=True))
    op = svc.ops.start(
        kind="cluster",
        action="delete",
        cluster=cluster,
        resource_key=cluster.key,
        resource_id=cluster.body["id"],
        subjects=[cluster.name],
    )
    # Whatever was running on the cluster or its pools is overridden by the delete.
    pools = svc.docs.pools(cluster.key)
    for op_id in {cluster.operation, *(pool.operation for pool in pools)}:
        if op_id:
            svc.ops.cancel(op_id, by=op["name"])
    cluster.properties["provisioningState"] = "Deleting"
    cluster.operation = op["name"]
    svc.docs.save_cluster(cluster)
    for pool in pools:
        pool.properties["provisioningState"] = "Deleting"
        pool.operation = op["name"]
        svc.docs.save_pool(pool)
    return svc.accepted(svc.lro_headers(op, call.api_version, location=True))
