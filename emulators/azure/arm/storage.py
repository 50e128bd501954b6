"""ARM's ``Microsoft.Storage`` resource provider, the parts a log sink needs: storage accounts,
blob containers and the lifecycle (management) policy.

* ``PUT|GET|DELETE .../providers/Microsoft.Storage/storageAccounts/{account}``: names of 3-24
  lowercase letters and digits (400 ``AccountNameInvalid``), unique across Azure (409
  ``StorageAccountAlreadyTaken`` when another subscription or resource group holds it);
  ``sku.name``, ``kind`` and ``location`` required. A create answers 200 with the account
  ``Succeeded`` at once (Azure may answer 202 first; the SDK's poller accepts both).
* ``PUT|GET|DELETE .../storageAccounts/{account}/blobServices/default/containers/{name}``:
  3-63 lowercase letters, digits and single hyphens (400 ``ContainerOperationFailure``).
* ``PUT|GET|DELETE .../storageAccounts/{account}/managementPolicies/default``: lifecycle rules of
  type ``Lifecycle``; a delete action needs a positive day count (400 ``InvalidManagementPolicyRules``).

Shapes from the Storage Resource Provider REST reference (api-version 2023-05-01 and later);
any well-formed api-version is accepted. The account's ``primaryEndpoints.blob`` is
``https://{account}.blob.core.windows.net/`` unless :attr:`ArmConfig.blob_endpoint` names
another (``{account}`` substituted): tests point it at Azurite so that blobs written through
the account can be read back. The endpoint is the setting's at the time of each answer (a GET
of an account made earlier reports the endpoint configured now), so a test may map accounts
only once the code that must see Azure's own endpoint is done with them. Accounts are
documents of kind ``arm.storage`` keyed by their lower-cased name, containers and policies of
``arm.storage.child`` keyed by their lower-cased id.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse, Response

from emulators.azure.arm.errors import ArmError
from emulators.azure.arm.resources import as_object, new_etag

if TYPE_CHECKING:
    from emulators.azure.arm.service import ArmService, Call

KIND = "arm.storage"
CHILD_KIND = "arm.storage.child"
ACCOUNT_TYPE = "Microsoft.Storage/storageAccounts"
CONTAINER_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers"
POLICY_TYPE = "Microsoft.Storage/storageAccounts/managementPolicies"
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_SKUS = frozenset(
    {"Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Premium_LRS", "Premium_ZRS", "Standard_GZRS"}
)
_KINDS = frozenset({"Storage", "StorageV2", "BlobStorage", "FileStorage", "BlockBlobStorage"})
_TLS = frozenset({"TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3"})
_BLOB_TYPES = frozenset({"blockBlob", "appendBlob"})


def account_id(sub: str, rg: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{ACCOUNT_TYPE}/{name}"


def _account_key(call: Call) -> str:
    return call.params["account"].lower()


def _owned(svc: ArmService, call: Call) -> dict[str, Any]:
    """The stored account the path names, 404 ``ResourceNotFound`` unless it is in this group."""
    doc = svc.ctx.store.get(KIND, _account_key(call))
    wanted = account_id(call.params["sub"], call.params["rg"], call.params["account"]).lower()
    if doc is None or doc["id"].lower() != wanted:
        message = (
            f"The Resource '{ACCOUNT_TYPE}/{call.params['account']}' under resource group "
            f"'{call.params['rg']}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        )
        raise ArmError(404, "ResourceNotFound", message)
    return doc


def _blob_endpoint(svc: ArmService, name: str) -> str:
    template = svc.admin.config.blob_endpoint or "https://{account}.blob.core.windows.net/"
    return template.replace("{account}", name)


async def put_account(svc: ArmService, call: Call) -> Response:
    name = call.params["account"]
    if not _ACCOUNT_NAME.match(name):
        message = (
            f"{name} is not a valid storage account name. Storage account name must be between 3 and 24 "
            "characters in length and use numbers and lower-case letters only."
        )
        raise ArmError(400, "AccountNameInvalid", message, target="accountName")
    sent = call.json_object()
    sku, kind, location = as_object(sent.get("sku")).get("name"), sent.get("kind"), sent.get("location")
    if sku not in _SKUS:
        raise ArmError(
            400, "InvalidValuesForRequestParameters", f"Values for request parameters are invalid: sku.name ({sku})."
        )
    if kind not in _KINDS:
        raise ArmError(
            400, "InvalidValuesForRequestParameters", f"Values for request parameters are invalid: kind ({kind})."
        )
    if not isinstance(location, str) or not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    props = {k: copy.deepcopy(v) for k, v in as_object(sent.get("properties")).items()}
    tls = props.setdefault("minimumTlsVersion", "TLS1_0")
    if tls not in _TLS:
        raise ArmError(
            400,
            "InvalidValuesForRequestParameters",
            f"Values for request parameters are invalid: minimumTlsVersion ({tls}).",
        )
    wanted = account_id(call.params["sub"], call.params["rg"], name)
    found = svc.ctx.store.get(KIND, name.lower())
    if found is not None and found["id"].lower() != wanted.lower():
        if found["id"].lower().startswith(f"/subscriptions/{call.params['sub'].lower()}/"):
            message = (
                f"The storage account named {name} already exists under the subscription in another resource group."
            )
            raise ArmError(409, "StorageAccountInAnotherResourceGroup", message)
        raise ArmError(409, "StorageAccountAlreadyTaken", f"The storage account named {name} is already taken.")
    props.setdefault("supportsHttpsTrafficOnly", True)
    props.setdefault("allowBlobPublicAccess", False)
    props.setdefault("accessTier", "Hot")
    props["provisioningState"] = "Succeeded"
    props["primaryEndpoints"] = {"blob": _blob_endpoint(svc, name), "dfs": f"https://{name}.dfs.core.windows.net/"}
    props["primaryLocation"] = location
    props["statusOfPrimary"] = "available"
    props["creationTime"] = (found or {}).get("properties", {}).get("creationTime") or "2026-01-01T00:00:00Z"
    body: dict[str, Any] = {
        "id": wanted,
        "name": name,
        "type": ACCOUNT_TYPE,
        "location": location,
        "kind": kind,
        "sku": {"name": sku, "tier": "Premium" if str(sku).startswith("Premium") else "Standard"},
        "tags": copy.deepcopy(as_object(sent.get("tags"))),
        "properties": props,
    }
    svc.ctx.store.put(KIND, name.lower(), body)
    return JSONResponse(body, status_code=200)


async def get_account(svc: ArmService, call: Call) -> Response:
    doc = copy.deepcopy(_owned(svc, call))
    doc["properties"]["primaryEndpoints"]["blob"] = _blob_endpoint(svc, doc["name"])
    return JSONResponse(doc)


async def delete_account(svc: ArmService, call: Call) -> Response:
    doc = svc.ctx.store.get(KIND, _account_key(call))
    wanted = account_id(call.params["sub"], call.params["rg"], call.params["account"]).lower()
    if doc is None or doc["id"].lower() != wanted:
        return Response(status_code=204)
    svc.ctx.store.delete(KIND, _account_key(call))
    for key, _ in list(svc.ctx.store.scan(CHILD_KIND, wanted + "/")):
        svc.ctx.store.delete(CHILD_KIND, key)
    return Response(status_code=200)


def _child_id(call: Call, doc: dict[str, Any], tail: str) -> str:
    return f"{doc['id']}/{tail}"


async def put_container(svc: ArmService, call: Call) -> Response:
    doc = _owned(svc, call)
    name = call.params["container"]
    if not _CONTAINER_NAME.match(name):
        message = (
            "The specified resource name contains invalid characters. Container names must be 3-63 lowercase "
            "letters, digits or single hyphens, starting and ending with a letter or digit."
        )
        raise ArmError(400, "ContainerOperationFailure", message, target="containerName")
    props = as_object(call.json_object().get("properties"))
    access = props.get("publicAccess") or "None"
    if access != "None" and doc["properties"].get("allowBlobPublicAccess") is False:
        message = "Public access is not permitted on this storage account."
        raise ArmError(409, "PublicAccessNotPermitted", message)
    rid = _child_id(call, doc, f"blobServices/default/containers/{name}")
    existed = svc.ctx.store.get(CHILD_KIND, rid.lower()) is not None
    body = {
        "id": rid,
        "name": name,
        "type": CONTAINER_TYPE,
        "etag": f'"{new_etag()}"',
        "properties": {
            **copy.deepcopy(props),
            "publicAccess": access,
            "deleted": False,
            "hasImmutabilityPolicy": False,
        },
    }
    svc.ctx.store.put(CHILD_KIND, rid.lower(), body)
    return JSONResponse(body, status_code=200 if existed else 201)


async def get_container(svc: ArmService, call: Call) -> Response:
    doc = _owned(svc, call)
    found = svc.ctx.store.get(
        CHILD_KIND, _child_id(call, doc, f"blobServices/default/containers/{call.params['container']}").lower()
    )
    if found is None:
        raise ArmError(404, "ContainerNotFound", "The specified container does not exist.")
    return JSONResponse(found)


async def delete_container(svc: ArmService, call: Call) -> Response:
    doc = _owned(svc, call)
    key = _child_id(call, doc, f"blobServices/default/containers/{call.params['container']}").lower()
    return Response(status_code=200 if svc.ctx.store.delete(CHILD_KIND, key) else 204)


def _check_rules(policy: dict[str, Any]) -> None:
    rules = policy.get("rules")
    if not isinstance(rules, list) or not rules:
        raise ArmError(400, "InvalidManagementPolicyRules", "ManagementPolicy rules cannot be empty.")
    names: set[str] = set()
    for rule in rules:
        rule = as_object(rule)
        name = rule.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise ArmError(400, "InvalidManagementPolicyRules", f"Rule name '{name}' is missing or repeated.")
        names.add(name)
        if rule.get("type") != "Lifecycle":
            raise ArmError(400, "InvalidManagementPolicyRules", f"Rule '{name}': type must be 'Lifecycle'.")
        definition = as_object(rule.get("definition"))
        blob_types = as_object(definition.get("filters")).get("blobTypes")
        if not isinstance(blob_types, list) or not blob_types or not set(blob_types) <= _BLOB_TYPES:
            message = f"Rule '{name}': filters.blobTypes must list blockBlob and/or appendBlob."
            raise ArmError(400, "InvalidManagementPolicyRules", message)
        actions = as_object(definition.get("actions"))
        if not actions:
            raise ArmError(400, "InvalidManagementPolicyRules", f"Rule '{name}' has no actions.")
        delete = as_object(as_object(actions.get("baseBlob")).get("delete"))
        for key, value in delete.items():
            if key.startswith("daysAfter") and (not isinstance(value, (int, float)) or value < 0):
                message = f"Rule '{name}': {key} must be a non-negative number of days."
                raise ArmError(400, "InvalidManagementPolicyRules", message)


async def put_policy(svc: ArmService, call: Call) -> Response:
    doc = _owned(svc, call)
    props = as_object(call.json_object().get("properties"))
    policy = as_object(props.get("policy"))
    _check_rules(policy)
    rid = _child_id(call, doc, "managementPolicies/default")
    body = {
        "id": rid,
        "name": "DefaultManagementPolicy",
        "type": POLICY_TYPE,
        "properties": {"policy": copy.deepcopy(policy), "lastModifiedTime": "2026-01-01T00:00:00Z"},
    }
    svc.ctx.store.put(CHILD_KIND, rid.lower(), body)
    return JSONResponse(body)


async def get_policy(svc: ArmService, call: Call) -> Response:
    doc = _owned(svc, call)
    found = svc.ctx.store.get(CHILD_KIND, _child_id(call, doc, "managementPolicies/default").lower())
    if found is None:
        raise ArmError(404, "ManagementPolicyNotFound", "No ManagementPolicy found for account " + doc["name"])
    return JSONResponse(found)


async def delete_policy(svc: ArmService, call: Call) -> Response:
    doc = _owned(svc, call)
    svc.ctx.store.delete(CHILD_KIND, _child_id(call, doc, "managementPolicies/default").lower())
    return Response(status_code=200)


def wipe(svc: ArmService) -> None:
    for kind in (KIND, CHILD_KIND):
        for key, _ in list(svc.ctx.store.scan(kind)):
            svc.ctx.store.delete(kind, key)
