"""ARM: Microsoft.ContainerService managedClusters and agentPools at every stable api-version
from 2025-10-01 to 2026-08-01 (:mod:`.versions`), plus what the Azure CLI needs around them
(:mod:`.cloud`: ``/metadata/endpoints``, tenants, subscriptions, resource groups).

Azure surface (every request needs an Entra token for ``https://management.azure.com``):

* ``PUT|GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerService/
  managedClusters/{c}``; ``GET .../managedClusters`` by resource group and by subscription;
  ``POST .../managedClusters/{c}/listClusterUserCredential`` and ``listClusterAdminCredential``.
* ``PUT|GET|DELETE .../managedClusters/{c}/agentPools/{p}``; ``GET .../agentPools``.
* ``GET /subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/operations/{id}``
  and ``.../operationresults/{id}``: the LRO status that ``Azure-AsyncOperation`` / ``Location`` name.
* ``POST .../managedClusters/{c}/stop|start``, ``GET .../upgradeProfiles/default`` (cluster and
  pool), ``POST .../agentPools/{p}/upgradeNodeImageVersion``, ``GET .../locations/{l}/
  kubernetesVersions|orchestrators``: see :mod:`.lifecycle`.

The long-running-operation contract is azure-mgmt-core's ARMPolling: PUT answers 201/200
with the resource (``Creating``/``Updating``), ``Azure-AsyncOperation`` and ``Retry-After``;
DELETE answers 202 with those plus ``Location`` (204 when nothing to delete); the status
document goes InProgress -> Succeeded | Failed | Canceled; the SDK then GETs the resource.

Test control under ``/_emulator/arm`` (see :mod:`emulators.azure.arm.admin`): config
(operation duration, Retry-After, page size, latency, 429/5xx rates, quotas, unavailable
sizes), fail-next rules, request counters, reset (which also forgets registered subscriptions
and resource groups), and ``PUT /_emulator/arm/subscriptions/{s}`` (``{"tenantId",
"displayName"}``) to give a tenant a subscription for ``GET /subscriptions``.

Role assignments (:mod:`.roles`; enforced only with the config's ``enforce_roles`` or for
the subscriptions in ``enforce_roles_subscriptions``, both off by default):
``PUT /_emulator/arm/role-assignments/{name}`` with ``{"scope", "principalId" or "clientId",
"role"}`` (a role name or definition GUID), ``GET /_emulator/arm/role-assignments``
(``?principalId=``), ``DELETE /_emulator/arm/role-assignments/{name}``. They are also
readable and writable through ARM's own ``Microsoft.Authorization`` routes (:mod:`.authorization`).

Modules: :mod:`.routes` (dispatcher), :mod:`.gate` (auth, api-version, faults),
:mod:`.clusters` and :mod:`.pools` (handlers), :mod:`.service` (shared helpers),
:mod:`.resources` (ARM JSON), :mod:`.validation`, :mod:`.operations` (LROs), :mod:`.state`
(documents), :mod:`.kubeconfig`, :mod:`.admin`, :mod:`.lifecycle` (power, versions, upgrades),
:mod:`.cloud` (metadata, subscriptions, tenants, resource groups), :mod:`.versions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError

from emulators.azure.arm import cloud, identities, routes, storage
from emulators.azure.arm.admin import ArmConfig, FailNext, ResetRequest
from emulators.azure.arm.errors import ArmError
from emulators.azure.arm.lifecycle import StoppedClusterGuard
from emulators.azure.arm.service import ArmService
from emulators.azure.keys import object_id_for_client

if TYPE_CHECKING:
    from emulators.azure.app import EmulatorContext

__all__ = ["StoppedClusterGuard", "create_admin_router", "create_router", "service_for"]

# One service per context, shared by the two routers. Keyed by id() because the context is an
# unhashable dataclass; the entry keeps the context alive, so the id cannot be reused.
_services: dict[int, tuple[EmulatorContext, ArmService]] = {}


def service_for(ctx: EmulatorContext) -> ArmService:
    """The ARM service of ``ctx`` (made on first use)."""
    entry = _services.get(id(ctx))
    if entry is None or entry[0] is not ctx:
        entry = (ctx, ArmService(ctx))
        _services[id(ctx)] = entry
    return entry[1]


def create_router(ctx: EmulatorContext) -> APIRouter:
    """The Azure-facing routes of this surface (cloud metadata, tenants, subscriptions, AKS)."""
    svc = service_for(ctx)
    router = APIRouter()
    router.include_router(cloud.create_router(svc))
    router.include_router(routes.create_router(svc))
    return router


def create_admin_router(ctx: EmulatorContext) -> APIRouter:
    """Test-control routes under ``/_emulator/arm`` (never subject to injected faults)."""
    svc = service_for(ctx)
    router = APIRouter(prefix="/_emulator/arm", tags=["emulator-arm"])

    @router.get("/config")
    async def get_config() -> ArmConfig:
        return svc.admin.config

    @router.put("/config")
    async def put_config(fields: dict[str, Any]) -> ArmConfig:
        try:
            return svc.admin.update_config(fields)
        except ValidationError as exc:
            raise HTTPException(400, exc.errors(include_url=False, include_context=False)) from None

    @router.get("/fail-next")
    async def get_rules() -> dict[str, Any]:
        return {"rules": [rule.model_dump() for rule in svc.admin.rules()]}

    @router.post("/fail-next")
    async def fail_next(rule: FailNext) -> dict[str, Any]:
        return {"rules": [r.model_dump() for r in svc.admin.add_rule(rule)]}

    @router.get("/requests")
    async def requests() -> dict[str, Any]:
        return svc.admin.counters.snapshot()

    @router.put("/subscriptions/{subscription}")
    async def register_subscription(subscription: str, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            tenant, name = cloud.register_body(fields)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return svc.directory.register(subscription, tenant, name)

    @router.put("/role-assignments/{name}")
    async def put_role_assignment(name: str, fields: dict[str, Any]) -> dict[str, Any]:
        scope, role = fields.get("scope"), fields.get("role")
        principal = fields.get("principalId")
        if principal is None and isinstance(fields.get("clientId"), str):
            principal = object_id_for_client(fields["clientId"])
        if not (isinstance(scope, str) and scope.startswith("/subscriptions/")):
            raise HTTPException(400, "scope must be an ARM id under /subscriptions/")
        if not (isinstance(role, str) and isinstance(principal, str) and principal):
            raise HTTPException(400, "role and principalId (or clientId) are required strings")
        try:
            return svc.roles.put(scope, name, principal, role, str(fields.get("principalType", "ServicePrincipal")))
        except ArmError as exc:
            raise HTTPException(exc.status, exc.message) from None

    @router.get("/role-assignments")
    async def list_role_assignments(principalId: str | None = None) -> dict[str, Any]:  # noqa: N803 (ARM casing)
        return {"value": svc.roles.listed("/", principalId)}

    @router.delete("/role-assignments/{name}")
    async def delete_role_assignment(name: str) -> dict[str, Any]:
        for found in svc.roles.listed("/"):
            if found["name"].lower() == name.lower():
                svc.roles.delete(found["properties"]["scope"], found["name"])
                return found
        raise HTTPException(404, f"no role assignment {name!r}")

    @router.post("/reset")
    async def reset(body: ResetRequest | None = None) -> dict[str, Any]:
        svc.admin.reset()
        wiped: list[str] = []
        if body is not None and body.resources:
            wiped = svc.docs.wipe()
            svc.directory.wipe()
            svc.roles.wipe()
            storage.wipe(svc)
            identities.wipe(svc)
            for key in wiped:
                svc.ops.forget_cluster(key)
        return {"config": svc.admin.config.model_dump(), "clusters_deleted": wiped}

    return router
