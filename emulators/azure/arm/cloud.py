"""What ARM answers besides the container service: cloud metadata, subscriptions, tenants and
resource groups, enough for the Azure CLI to register the emulator as a cloud and sign in.

* ``GET /metadata/endpoints?api-version=...`` (no token, as on ``management.azure.com``): the
  cloud's endpoints. From api-version 2022-09-01 on the answer is one object for the cloud
  being asked; older versions answer a list of clouds (here the one). ``loginEndpoint`` is the
  emulated Entra authority (this origin), ``resourceManager`` and ``portal`` this origin, and
  the token audiences the ones ARM accepts, ``https://management.core.windows.net/`` first
  (what ``az`` asks tokens for). The field names follow Azure's published document; the
  Azure CLI reads it in ``az cloud register`` (``azure.cli.core.cloud._arm_to_cli_mapper``).
* ``GET /tenants``: the caller's tenant (its token's ``tid``).
* ``GET /subscriptions`` and ``GET /subscriptions/{s}``: the subscriptions of the caller's
  tenant (where roles are enforced, only those it has a role in, see :mod:`.roles`),
  registered with ``PUT /_emulator/arm/subscriptions/{s}`` (``{"tenantId", "displayName"}``);
  a tenant with none registered sees one default subscription whose id is derived from the
  tenant id (:func:`default_subscription`), so ``az login`` works on a fresh
  emulator. Clusters may live in any subscription id, as before.
* ``PUT|GET /subscriptions/{s}/resourcegroups/{rg}`` and ``GET .../resourcegroups``: resource
  groups as documents (kind ``arm.rg``). Cluster writes do not require the group to exist
  (Rayplane's tests never create one); ``az aks create`` reads the group for its location.

Shapes from Azure's Subscriptions and Resource Groups REST references (api-versions
2022-12-01 and 2024-11-01, which the CLI sends); any well-formed api-version is accepted here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from emulators.azure.arm import gate
from emulators.azure.arm.errors import ArmError
from emulators.azure.arm.resources import as_object, stable_guid
from emulators.azure.store import DocumentStore

if TYPE_CHECKING:
    from emulators.azure.arm.service import ArmService, Call

SUBSCRIPTION = "arm.subscription"
RESOURCE_GROUP = "arm.rg"
#: api-versions of ``/metadata/endpoints`` from which the answer is one object, not a list.
_SINGLE_CLOUD_FROM = "2022-09-01"
CLOUD_NAME = "RayplaneEmulator"
ARM_AUDIENCES = ["https://management.core.windows.net/", "https://management.azure.com/"]


def default_subscription(tenant: str) -> str:
    """The id of the subscription a tenant with none registered sees."""
    return stable_guid("default-subscription", tenant)


def metadata(origin: str) -> dict[str, Any]:
    """This cloud's endpoints document (one cloud)."""
    return {
        "name": CLOUD_NAME,
        "portal": origin,
        "authentication": {
            "loginEndpoint": origin,
            "audiences": ARM_AUDIENCES,
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "resourceManager": f"{origin}/",
        "graph": "https://graph.windows.net/",
        "graphAudience": "https://graph.windows.net/",
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "batch": "https://batch.core.windows.net/",
        "media": "https://rest.media.azure.net",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "gallery": "https://gallery.azure.com/",
        "suffixes": {
            "acrLoginServer": "azurecr.io",
            "keyVaultDns": "vault.azure.net",
            "storage": "core.windows.net",
            "sqlServerHostname": "database.windows.net",
            "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
        },
    }


def subscription_body(subscription: str, tenant: str, name: str) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{subscription}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": subscription,
        "tenantId": tenant,
        "displayName": name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


class Directory:
    """Subscriptions and resource groups in the document store."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def register(self, subscription: str, tenant: str, name: str) -> dict[str, Any]:
        """Record ``subscription`` as belonging to ``tenant``; its ARM body."""
        doc = {"subscriptionId": subscription, "tenantId": tenant.lower(), "displayName": name}
        self.store.put(SUBSCRIPTION, subscription.lower(), doc)
        return subscription_body(subscription, tenant.lower(), name)

    def subscriptions(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's subscriptions (the default one when none is registered)."""
        tenant = tenant.lower()
        found = [
            subscription_body(doc["subscriptionId"], doc["tenantId"], doc["displayName"])
            for _, doc in self.store.scan(SUBSCRIPTION)
            if doc["tenantId"] == tenant
        ]
        if not found and tenant:
            found = [subscription_body(default_subscription(tenant), tenant, "Rayplane emulator subscription")]
        return found

    def resource_group(self, subscription: str, name: str) -> dict[str, Any] | None:
        doc = self.store.get(RESOURCE_GROUP, _rg_key(subscription, name))
        return None if doc is None else dict(doc)

    def resource_groups(self, subscription: str) -> list[dict[str, Any]]:
        return [dict(doc) for _, doc in self.store.scan(RESOURCE_GROUP, f"/subscriptions/{subscription}/".lower())]

    def put_resource_group(self, subscription: str, name: str, sent: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or update a group; (its body, created?)."""
        existing = self.resource_group(subscription, name)
        location = sent.get("location")
        if not isinstance(location, str) or not location.strip():
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        if existing is not None and existing["location"].lower() != location.lower():
            message = (
                f"Invalid resource group location '{location}'. The Resource group already exists in location "
                f"'{existing['location']}'."
            )
            raise ArmError(409, "InvalidResourceGroupLocation", message)
        body: dict[str, Any] = {
            "id": f"/subscriptions/{subscription}/resourceGroups/{existing['name'] if existing else name}",
            "name": existing["name"] if existing else name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "properties": {"provisioningState": "Succeeded"},
        }
        if isinstance(sent.get("tags"), dict):
            body["tags"] = sent["tags"]
        self.store.put(RESOURCE_GROUP, _rg_key(subscription, name), body)
        return body, existing is None

    def wipe(self) -> None:
        for kind in (SUBSCRIPTION, RESOURCE_GROUP):
            for key, _ in list(self.store.scan(kind)):
                self.store.delete(kind, key)


def _rg_key(subscription: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourcegroups/{name}".lower()


def _rg_not_found(name: str) -> ArmError:
    return ArmError(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")


def _tenant(claims: dict[str, Any]) -> str:
    return str(claims.get("tid", "")).lower()


# -- handlers run by the dispatcher (emulators.azure.arm.routes) --------------------------
async def get_subscription(svc: ArmService, call: Call) -> Response:
    subscription = call.params["sub"]
    for body in svc.directory.subscriptions(_tenant(call.claims)):
        if body["subscriptionId"].lower() == subscription.lower():
            return JSONResponse(body)
    raise ArmError(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")


async def get_resource_group(svc: ArmService, call: Call) -> Response:
    group = svc.directory.resource_group(call.params["sub"], call.params["rg"])
    if group is None:
        raise _rg_not_found(call.params["rg"])
    return JSONResponse(group)


async def put_resource_group(svc: ArmService, call: Call) -> Response:
    group, created = svc.directory.put_resource_group(call.params["sub"], call.params["rg"], call.json_object())
    return JSONResponse(group, status_code=201 if created else 200)


async def list_resource_groups(svc: ArmService, call: Call) -> Response:
    return JSONResponse({"value": svc.directory.resource_groups(call.params["sub"])})


def create_router(svc: ArmService) -> APIRouter:
    """``/metadata/endpoints``, ``/tenants`` and ``/subscriptions`` (the collection)."""
    router = APIRouter(tags=["arm-cloud"])

    @router.get("/metadata/endpoints")
    async def endpoints(request: Request) -> Response:
        version = request.query_params.get("api-version")
        if not version:
            message = "The api-version query parameter (?api-version=) is required for all requests."
            return ArmError(400, "MissingApiVersionParameter", message).response()
        cloud = metadata(svc.origin)
        return JSONResponse(cloud if version >= _SINGLE_CLOUD_FROM else [cloud])

    def _caller_tenant(request: Request) -> str:
        svc.admin.counters.record(request.method, None, request.url.path.lower())
        return _tenant(gate.authenticate(request, svc.ctx.entra.keys, svc.origin))

    @router.get("/tenants")
    async def tenants(request: Request) -> Response:
        try:
            tenant = _caller_tenant(request)
        except ArmError as exc:
            return exc.response()
        domain = f"{tenant[:8]}.onmicrosoft.com"
        value = [
            {
                "id": f"/tenants/{tenant}",
                "tenantId": tenant,
                "tenantCategory": "Home",
                "countryCode": "US",
                "displayName": "Rayplane emulator tenant",
                "domains": [domain],
                "defaultDomain": domain,
                "tenantType": "AAD",
            }
        ]
        return JSONResponse({"value": value})

    @router.get("/subscriptions")
    async def subscriptions(request: Request) -> Response:
        try:
            svc.admin.counters.record(request.method, None, request.url.path.lower())
            claims = gate.authenticate(request, svc.ctx.entra.keys, svc.origin)
        except ArmError as exc:
            return exc.response()
        found = svc.directory.subscriptions(_tenant(claims))
        # Where roles are enforced a principal sees only the subscriptions it has a role in.
        oid = str(claims.get("oid", ""))
        found = [
            s
            for s in found
            if not svc.admin.config.enforces_roles(s["subscriptionId"]) or svc.roles.visible(oid, s["subscriptionId"])
        ]
        return JSONResponse({"value": found})

    return router


def register_body(fields: dict[str, Any]) -> tuple[str, str]:
    """(tenantId, displayName) of an admin registration body; 400-worthy ValueError otherwise."""
    body = as_object(fields)
    tenant, name = body.get("tenantId"), body.get("displayName", "Rayplane emulator subscription")
    if not isinstance(tenant, str) or not tenant or not isinstance(name, str):
        raise ValueError("tenantId (a string) is required; displayName must be a string")
    return tenant, name
