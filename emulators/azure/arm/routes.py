"""The ARM dispatcher: one catch-all route under ``/subscriptions/`` and a table of handlers.

ARM paths are case-insensitive (``resourceGroups`` = ``resourcegroups``), which FastAPI's
path matching is not, so the table matches case-insensitive regexes against the path. Every
request goes through :mod:`emulators.azure.arm.gate` (count, latency, auth, api-version,
faults), then due operations are settled, then the handler runs. Handlers raise
:class:`~emulators.azure.arm.errors.ArmError` for every failure; it becomes ARM's error JSON.

Operation endpoints (the URLs the LRO headers name):

* ``GET /subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/operations/{id}``
  -- the status document, ``Retry-After`` while InProgress.
* ``GET .../locations/{l}/operationresults/{id}`` -- 202 (+ ``Location``) while InProgress;
  then 204 for a delete, 200 with the resource for a create/update, or the operation's error.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from emulators.azure.arm import authorization, cloud, clusters, gate, identities, lifecycle, pools, roles, storage
from emulators.azure.arm.errors import ArmError
from emulators.azure.arm.operations import status_document
from emulators.azure.arm.service import ArmService, Call
from emulators.azure.arm.versions import API_VERSIONS
from emulators.azure.fleet import cluster_key

Handler = Callable[[ArmService, Call], Awaitable[Response]]

_SEG = r"[^/]+"
_RP = r"providers/Microsoft\.ContainerService"
_CLUSTER = rf"(?P<sub>{_SEG})/resourceGroups/(?P<rg>{_SEG})/{_RP}/managedClusters/(?P<name>{_SEG})"
_OPS = rf"(?P<sub>{_SEG})/{_RP}/locations/(?P<loc>{_SEG})"
_CLUSTERS = "Microsoft.ContainerService/managedClusters"
_POOLS = "Microsoft.ContainerService/managedClusters/agentPools"
_SUBSCRIPTIONS = "Microsoft.Resources/subscriptions"
_GROUPS = "Microsoft.Resources/resourceGroups"
_AUTHZ = r"providers/Microsoft\.Authorization"
#: Any scope below a subscription: a resource group, or a resource in one.
_UNDER = rf"(?P<under>/resourceGroups/{_SEG}(?:/providers/.+)?)?"
#: Resource types whose api-versions are not AKS's: any well-formed version is accepted.
_ANY_VERSION = ("Microsoft.Resources/", "Microsoft.Authorization/", "Microsoft.Storage/", "Microsoft.ManagedIdentity/")
_RG = rf"(?P<sub>{_SEG})/resourceGroups/(?P<rg>{_SEG})"
_ACCOUNT = rf"{_RG}/providers/Microsoft\.Storage/storageAccounts/(?P<account>{_SEG})"
_IDENTITY = rf"{_RG}/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/(?P<identity>{_SEG})"


async def _operation_status(svc: ArmService, call: Call) -> Response:
    op = svc.ops.settle(call.params["op"])
    if op is None or op["subscription"].lower() != call.params["sub"].lower():
        raise ArmError(404, "NotFound", f"Operation '{call.params['op']}' was not found.")
    headers = {"Retry-After": str(svc.admin.config.retry_after)} if op["status"] == "InProgress" else {}
    return JSONResponse(status_document(op), headers=headers)


async def _operation_result(svc: ArmService, call: Call) -> Response:
    op = svc.ops.settle(call.params["op"])
    if op is None or op["subscription"].lower() != call.params["sub"].lower():
        raise ArmError(404, "NotFound", f"Operation '{call.params['op']}' was not found.")
    if op["status"] == "InProgress":
        headers = {"Location": str(call.request.url), "Retry-After": str(svc.admin.config.retry_after)}
        return Response(status_code=202, headers=headers)
    if op["status"] != "Succeeded":
        error = op.get("error") or {"code": op["status"], "message": f"The operation ended {op['status']}."}
        raise ArmError(400, error["code"], error["message"])
    if op["action"] in ("delete", "stop", "start"):
        return Response(status_code=204)
    cluster = svc.docs.cluster_by_key(op["cluster"])
    if cluster is None:
        return Response(status_code=204)
    if op["kind"] == "cluster":
        return JSONResponse(svc.render_cluster(cluster, call.api_version))
    pool = next((p for p in svc.docs.pools(cluster.key) if p.key == op["resource"]), None)
    return Response(status_code=204) if pool is None else JSONResponse(svc.render_pool(pool, call.api_version))


async def _user_credentials(svc: ArmService, call: Call) -> Response:
    return await clusters.credentials(svc, call, "user")


async def _admin_credentials(svc: ArmService, call: Call) -> Response:
    return await clusters.credentials(svc, call, "admin")


#: (pattern after ``/subscriptions/``, {method: handler}, ARM resource type for error messages)
_TABLE: list[tuple[re.Pattern[str], dict[str, Handler], str]] = [
    (
        re.compile(rf"^{_ACCOUNT}/blobServices/default/containers/(?P<container>{_SEG})$", re.IGNORECASE),
        {"GET": storage.get_container, "PUT": storage.put_container, "DELETE": storage.delete_container},
        storage.CONTAINER_TYPE,
    ),
    (
        re.compile(rf"^{_ACCOUNT}/managementPolicies/default$", re.IGNORECASE),
        {"GET": storage.get_policy, "PUT": storage.put_policy, "DELETE": storage.delete_policy},
        storage.POLICY_TYPE,
    ),
    (
        re.compile(rf"^{_ACCOUNT}$", re.IGNORECASE),
        {"GET": storage.get_account, "PUT": storage.put_account, "DELETE": storage.delete_account},
        storage.ACCOUNT_TYPE,
    ),
    (
        re.compile(rf"^{_IDENTITY}/federatedIdentityCredentials/(?P<fic>{_SEG})$", re.IGNORECASE),
        {"GET": identities.get_credential, "PUT": identities.put_credential, "DELETE": identities.delete_credential},
        identities.FIC_TYPE,
    ),
    (
        re.compile(rf"^{_IDENTITY}/federatedIdentityCredentials$", re.IGNORECASE),
        {"GET": identities.list_credentials},
        identities.FIC_TYPE,
    ),
    (
        re.compile(rf"^{_IDENTITY}$", re.IGNORECASE),
        {"GET": identities.get_identity, "PUT": identities.put_identity, "DELETE": identities.delete_identity},
        identities.IDENTITY_TYPE,
    ),
    (
        re.compile(rf"^(?P<sub>{_SEG}){_UNDER}/{_AUTHZ}/roleAssignments/(?P<ra>{_SEG})$", re.IGNORECASE),
        {
            "GET": authorization.get_role_assignment,
            "PUT": authorization.put_role_assignment,
            "DELETE": authorization.delete_role_assignment,
        },
        "Microsoft.Authorization/roleAssignments",
    ),
    (
        re.compile(rf"^(?P<sub>{_SEG}){_UNDER}/{_AUTHZ}/roleAssignments$", re.IGNORECASE),
        {"GET": authorization.list_role_assignments},
        "Microsoft.Authorization/roleAssignments",
    ),
    (
        re.compile(rf"^(?P<sub>{_SEG}){_UNDER}/{_AUTHZ}/permissions$", re.IGNORECASE),
        {"GET": authorization.list_permissions},
        "Microsoft.Authorization/permissions",
    ),
    (
        re.compile(rf"^(?P<sub>{_SEG}){_UNDER}/{_AUTHZ}/roleDefinitions/(?P<rd>{_SEG})$", re.IGNORECASE),
        {"GET": authorization.get_role_definition},
        "Microsoft.Authorization/roleDefinitions",
    ),
    (
        re.compile(rf"^(?P<sub>{_SEG}){_UNDER}/{_AUTHZ}/roleDefinitions$", re.IGNORECASE),
        {"GET": authorization.list_role_definitions},
        "Microsoft.Authorization/roleDefinitions",
    ),
    (
        re.compile(rf"^{_CLUSTER}/agentPools/(?P<pool>{_SEG})/upgradeProfiles/default$", re.IGNORECASE),
        {"GET": lifecycle.pool_upgrade_profile},
        f"{_POOLS}/upgradeProfiles",
    ),
    (
        re.compile(rf"^{_CLUSTER}/agentPools/(?P<pool>{_SEG})/upgradeNodeImageVersion$", re.IGNORECASE),
        {"POST": lifecycle.upgrade_node_image},
        _POOLS,
    ),
    (
        re.compile(rf"^{_CLUSTER}/upgradeProfiles/default$", re.IGNORECASE),
        {"GET": lifecycle.cluster_upgrade_profile},
        f"{_CLUSTERS}/upgradeProfiles",
    ),
    (re.compile(rf"^{_CLUSTER}/stop$", re.IGNORECASE), {"POST": lifecycle.stop}, _CLUSTERS),
    (re.compile(rf"^{_CLUSTER}/start$", re.IGNORECASE), {"POST": lifecycle.start}, _CLUSTERS),
    (
        re.compile(rf"^{_OPS}/kubernetesVersions$", re.IGNORECASE),
        {"GET": lifecycle.list_kubernetes_versions},
        "Microsoft.ContainerService/locations/kubernetesVersions",
    ),
    (
        re.compile(rf"^{_OPS}/orchestrators$", re.IGNORECASE),
        {"GET": lifecycle.list_orchestrators},
        "Microsoft.ContainerService/locations/orchestrators",
    ),
    (re.compile(rf"^(?P<sub>{_SEG})$", re.IGNORECASE), {"GET": cloud.get_subscription}, _SUBSCRIPTIONS),
    (
        re.compile(rf"^(?P<sub>{_SEG})/resourceGroups/(?P<rg>{_SEG})$", re.IGNORECASE),
        {"GET": cloud.get_resource_group, "PUT": cloud.put_resource_group},
        _GROUPS,
    ),
    (re.compile(rf"^(?P<sub>{_SEG})/resourceGroups$", re.IGNORECASE), {"GET": cloud.list_resource_groups}, _GROUPS),
    (
        re.compile(rf"^{_CLUSTER}/agentPools/(?P<pool>{_SEG})$", re.IGNORECASE),
        {"GET": pools.get_pool, "PUT": pools.put_pool, "DELETE": pools.delete_pool},
        _POOLS,
    ),
    (re.compile(rf"^{_CLUSTER}/agentPools$", re.IGNORECASE), {"GET": pools.list_pools}, _POOLS),
    (
        re.compile(rf"^{_CLUSTER}/listClusterUserCredential$", re.IGNORECASE),
        {"POST": _user_credentials},
        _CLUSTERS,
    ),
    (
        re.compile(rf"^{_CLUSTER}/listClusterAdminCredential$", re.IGNORECASE),
        {"POST": _admin_credentials},
        _CLUSTERS,
    ),
    (
        re.compile(rf"^{_CLUSTER}$", re.IGNORECASE),
        {"GET": clusters.get_cluster, "PUT": clusters.put_cluster, "DELETE": clusters.delete_cluster},
        _CLUSTERS,
    ),
    (
        re.compile(rf"^(?P<sub>{_SEG})/resourceGroups/(?P<rg>{_SEG})/{_RP}/managedClusters$", re.IGNORECASE),
        {"GET": clusters.list_by_resource_group},
        _CLUSTERS,
    ),
    (
        re.compile(rf"^(?P<sub>{_SEG})/{_RP}/managedClusters$", re.IGNORECASE),
        {"GET": clusters.list_by_subscription},
        _CLUSTERS,
    ),
    (
        re.compile(rf"^{_OPS}/operations/(?P<op>{_SEG})$", re.IGNORECASE),
        {"GET": _operation_status},
        "Microsoft.ContainerService/locations/operations",
    ),
    (
        re.compile(rf"^{_OPS}/operationresults/(?P<op>{_SEG})$", re.IGNORECASE),
        {"GET": _operation_result},
        "Microsoft.ContainerService/locations/operationresults",
    ),
]


def _match(path: str) -> tuple[dict[str, str], dict[str, Handler], str] | None:
    for pattern, handlers, resource_type in _TABLE:
        found = pattern.match(path)
        if found:
            return found.groupdict(), handlers, resource_type
    return None


def _attribution(svc: ArmService, params: dict[str, str], path: str) -> tuple[str | None, str | None]:
    """(cluster key, resource key) a request counts against."""
    if "op" in params:
        op = svc.docs.operation(params["op"])
        return (op["cluster"] if op else None), None
    if {"sub", "rg", "name"} <= params.keys():
        return cluster_key(params["sub"], params["rg"], params["name"]), path.lower()
    return None, path.lower()


def create_router(svc: ArmService) -> APIRouter:
    """The Azure-facing ARM routes (everything under ``/subscriptions/``)."""
    router = APIRouter(tags=["arm"])

    @router.api_route("/subscriptions/{rest:path}", methods=["GET", "PUT", "POST", "DELETE", "PATCH"])
    async def dispatch(rest: str, request: Request) -> Response:
        method = request.method
        # ARM reads empty path segments as absent: the SDKs send ``providers/Microsoft.Storage//
        # storageAccounts/x`` for a resource with no parent path (Permissions - List For Resource).
        rest = re.sub(r"/{2,}", "/", rest)
        matched = _match(rest.strip("/"))
        params = matched[0] if matched else {}
        cluster, resource = _attribution(svc, params, request.url.path)
        svc.admin.counters.record(method, cluster, resource)
        await gate.delay(svc.admin)
        try:
            claims = gate.authenticate(request, svc.ctx.entra.keys, svc.origin)
            if matched is None:
                message = f"The resource path '/subscriptions/{rest}' is not served by this emulator."
                raise ArmError(404, "InvalidResourceType", message)
            _, handlers, resource_type = matched
            served = None if resource_type.startswith(_ANY_VERSION) else API_VERSIONS
            version = gate.api_version(request, resource_type, served)
            handler = handlers.get(method)
            if handler is None:
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
                )
            # The status of an operation the caller started is not authorized again (the URL came
            # from an authorized write), so a role that may write a cluster may also poll it.
            if "op" not in params and svc.admin.config.enforces_roles(params.get("sub", "")):
                path = f"/subscriptions/{rest.strip('/')}"
                action = roles.request_action(resource_type, method, path)
                svc.roles.authorize(claims, action, roles.request_scope(path, method))
            gate.maybe_fault(svc.admin, method, params.get("sub", ""), claims)
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            svc.ops.settle_due()
            return await handler(svc, Call(request, params, version, claims, body, headers))
        except ArmError as exc:
            return exc.response()

    return router
