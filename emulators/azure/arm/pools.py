"""Agent pool handlers: ``.../managedClusters/{c}/agentPools[/{p}]``.

* ``PUT`` -- validate (name, size, spot rules, counts, immutables, quota), then 201 (create) or
  200 (update) with the pool in ``Creating``/``Updating`` and the LRO headers. A new ``eTag``
  each write. The fleet gets the pool when the operation succeeds.
* ``GET`` -- the pool; an autoscaling pool's ``count`` is the fleet's live node count.
* ``GET`` (collection) -- paged list of the cluster's pools.
* ``DELETE`` -- 202 with ``Azure-AsyncOperation`` + ``Location``; 204 when already gone. A
  delete overrides (cancels) a create/update in progress on the same pool, as in AKS.
"""

from __future__ import annotations

from fastapi.responses import Response

from emulators.azure.arm import lifecycle, resources, validation
from emulators.azure.arm.errors import resource_not_found
from emulators.azure.arm.operations import TRANSIENT_STATE
from emulators.azure.arm.service import ArmService, Call, not_found_pool
from emulators.azure.arm.state import ClusterDoc, PoolDoc, pool_key


def _cluster(svc: ArmService, call: Call) -> ClusterDoc:
    p = call.params
    cluster = svc.docs.cluster(p["sub"], p["rg"], p["name"])
    if cluster is None:
        raise resource_not_found("Microsoft.ContainerService/managedClusters", p["name"], p["rg"])
    return cluster


async def get_pool(svc: ArmService, call: Call) -> Response:
    cluster = _cluster(svc, call)
    pool = svc.docs.pool(cluster.key, call.params["pool"])
    if pool is None:
        raise not_found_pool(call.params["pool"])
    return svc.resource_response(svc.render_pool(pool, call.api_version), pool.properties.get("eTag"))


async def list_pools(svc: ArmService, call: Call) -> Response:
    cluster = _cluster(svc, call)
    return svc.page(call, [(pool.key, svc.render_pool(pool, call.api_version)) for pool in svc.docs.pools(cluster.key)])


async def put_pool(svc: ArmService, call: Call) -> Response:
    body = call.json_object()
    cluster = _cluster(svc, call)
    name = call.params["pool"]
    existing = svc.docs.pool(cluster.key, name)
    validation.preconditions(
        call.headers.get("if-match"),
        call.headers.get("if-none-match"),
        existing.properties.get("eTag") if existing else None,
    )
    svc.check_cluster_idle(cluster)
    svc.check_pools_idle(cluster, only=name)
    lifecycle.check_running(cluster)
    sent = resources.as_object(body.get("properties"))
    previous = existing.properties if existing else None
    props = resources.pool_properties(
        sent,
        cluster_version=str(cluster.properties.get("currentKubernetesVersion", resources.DEFAULT_KUBERNETES_VERSION)),
        default_mode=str(previous.get("mode", "User")) if previous else "User",
        node_image=svc.admin.config.latest_node_image_version,
    )
    validation.pool(name, props, previous)
    size = svc.checked_size(props["vmSize"], name, cluster.location)
    key = pool_key(cluster.key, name)
    svc.check_quota(cluster.subscription, cluster.location, {size.family: size.vcpus * props["count"]}, {key})
    action = "create" if previous is None else ("scale" if resources.only_count_changed(previous, props) else "update")
    pool_name = existing.name if existing else name
    resource_id = resources.pool_id(cluster.body["id"], pool_name)
    op = svc.ops.start(
        kind="pool", action=action, cluster=cluster, resource_key=key, resource_id=resource_id, subjects=[pool_name]
    )
    props["eTag"] = resources.new_etag()
    props["provisioningState"] = TRANSIENT_STATE[action]
    doc = PoolDoc(key, cluster.key, pool_name, resources.pool_body(cluster.body["id"], pool_name, props), op["name"])
    svc.docs.save_pool(doc)
    headers = svc.lro_headers(op, call.api_version)
    return svc.resource_response(
        svc.render_pool(doc, call.api_version), props["eTag"], 200 if existing else 201, **headers
    )


async def delete_pool(svc: ArmService, call: Call) -> Response:
    p = call.params
    cluster = svc.docs.cluster(p["sub"], p["rg"], p["name"])
    pool = svc.docs.pool(cluster.key, p["pool"]) if cluster else None
    if cluster is None or pool is None:
        validation.preconditions(call.headers.get("if-match"), None, None)
        return Response(status_code=204)
    validation.preconditions(
        call.headers.get("if-match"), call.headers.get("if-none-match"), pool.properties.get("eTag")
    )
    running = svc.in_progress(pool.operation)
    if running is not None and running["action"] == "delete":
        return svc.accepted(svc.lro_headers(running, call.api_version, location=True))
    svc.check_cluster_idle(cluster)
    op = svc.ops.start(
        kind="pool",
        action="delete",
        cluster=cluster,
        resource_key=pool.key,
        resource_id=pool.body["id"],
        subjects=[pool.name],
    )
    if running is not None:
        svc.ops.cancel(running["name"], by=op["name"])
    pool.properties["provisioningState"] = "Deleting"
    pool.operation = op["name"]
    svc.docs.save_pool(pool)
    return svc.accepted(svc.lro_headers(op, call.api_version, location=True))
