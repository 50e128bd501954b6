"""ARM's ``Microsoft.ManagedIdentity`` resource provider: user-assigned identities and their
federated identity credentials (workload identity).

* ``PUT|GET|DELETE .../providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}``: 3-128
  letters, digits, hyphens and underscores, first a letter or digit (400 ``InvalidResourceName``);
  ``location`` required. The identity gets ``tenantId`` (the caller's), ``principalId`` and
  ``clientId``, stable for its id so a re-created identity keeps them here (Azure gives new ones).
* ``PUT|GET|DELETE .../userAssignedIdentities/{name}/federatedIdentityCredentials/{fic}`` with
  ``properties.issuer`` (an https URL), ``properties.subject`` and ``properties.audiences``
  (exactly one); at most 20 per identity (400 ``FederatedIdentityCredentialLimitExceeded``);
  one (issuer, subject) pair per identity (409 ``FederatedIdentityCredentialAlreadyExists``).
  Deleting the identity deletes its credentials.

Shapes from the Managed Service Identity REST reference (api-version 2023-01-31); any
well-formed api-version is accepted. Documents of kind ``arm.identity`` keyed by lower-cased id.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse, Response

from emulators.azure.arm.errors import ArmError
from emulators.azure.arm.resources import as_object, stable_guid

if TYPE_CHECKING:
    from emulators.azure.arm.service import ArmService, Call

KIND = "arm.identity"
IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
FIC_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
MAX_CREDENTIALS = 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")


def identity_id(call: Call) -> str:
    return (
        f"/subscriptions/{call.params['sub']}/resourceGroups/{call.params['rg']}/providers/"
        f"{IDENTITY_TYPE}/{call.params['identity']}"
    )


def _missing(call: Call) -> ArmError:
    message = (
        f"The Resource '{IDENTITY_TYPE}/{call.params['identity']}' under resource group '{call.params['rg']}' "
        "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    )
    return ArmError(404, "ResourceNotFound", message)


def _identity(svc: ArmService, call: Call) -> dict[str, Any]:
    found = svc.ctx.store.get(KIND, identity_id(call).lower())
    if found is None:
        raise _missing(call)
    return found


async def put_identity(svc: ArmService, call: Call) -> Response:
    name = call.params["identity"]
    if not _NAME.match(name):
        message = f"Resource name '{name}' is invalid: 3-128 letters, digits, hyphens or underscores."
        raise ArmError(400, "InvalidResourceName", message)
    sent = call.json_object()
    if not isinstance(sent.get("location"), str) or not sent["location"]:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    rid = identity_id(call)
    existed = svc.ctx.store.get(KIND, rid.lower()) is not None
    body = {
        "id": rid,
        "name": name,
        "type": IDENTITY_TYPE,
        "location": sent["location"],
        "tags": copy.deepcopy(as_object(sent.get("tags"))),
        "properties": {
            "tenantId": str(call.claims.get("tid", "")),
            "principalId": stable_guid(rid, "principal"),
            "clientId": stable_guid(rid, "client"),
        },
    }
    svc.ctx.store.put(KIND, rid.lower(), body)
    return JSONResponse(body, status_code=200 if existed else 201)


async def get_identity(svc: ArmService, call: Call) -> Response:
    return JSONResponse(_identity(svc, call))


async def delete_identity(svc: ArmService, call: Call) -> Response:
    rid = identity_id(call).lower()
    if not svc.ctx.store.delete(KIND, rid):
        return Response(status_code=204)
    for key, _ in list(svc.ctx.store.scan(KIND, rid + "/")):
        svc.ctx.store.delete(KIND, key)
    return Response(status_code=200)


def _credentials(svc: ArmService, rid: str) -> list[tuple[str, dict[str, Any]]]:
    return list(svc.ctx.store.scan(KIND, rid.lower() + "/federatedidentitycredentials/"))


async def put_credential(svc: ArmService, call: Call) -> Response:
    parent = _identity(svc, call)
    props = as_object(call.json_object().get("properties"))
    issuer, subject, audiences = props.get("issuer"), props.get("subject"), props.get("audiences")
    if not isinstance(issuer, str) or not issuer.startswith("https://"):
        raise ArmError(400, "BadRequest", "Issuer must be a valid URL using the https scheme.")
    if not isinstance(subject, str) or not subject or len(subject) > 600:
        raise ArmError(400, "BadRequest", "Subject is required and must be at most 600 characters.")
    if not isinstance(audiences, list) or len(audiences) != 1 or not isinstance(audiences[0], str):
        raise ArmError(400, "BadRequest", "Audiences must contain exactly one value.")
    rid = f"{parent['id']}/federatedIdentityCredentials/{call.params['fic']}"
    others = [doc for key, doc in _credentials(svc, parent["id"]) if key != rid.lower()]
    if any(doc["properties"]["issuer"] == issuer and doc["properties"]["subject"] == subject for doc in others):
        message = "A federated identity credential with this issuer and subject already exists on the identity."
        raise ArmError(409, "FederatedIdentityCredentialAlreadyExists", message)
    existed = len(others) < len(_credentials(svc, parent["id"]))
    if not existed and len(others) >= MAX_CREDENTIALS:
        message = f"The identity already has the maximum of {MAX_CREDENTIALS} federated identity credentials."
        raise ArmError(400, "FederatedIdentityCredentialLimitExceeded", message)
    body = {
        "id": rid,
        "name": call.params["fic"],
        "type": FIC_TYPE,
        "properties": {"issuer": issuer, "subject": subject, "audiences": list(audiences)},
    }
    svc.ctx.store.put(KIND, rid.lower(), body)
    return JSONResponse(body, status_code=200 if existed else 201)


async def get_credential(svc: ArmService, call: Call) -> Response:
    parent = _identity(svc, call)
    found = svc.ctx.store.get(KIND, f"{parent['id']}/federatedIdentityCredentials/{call.params['fic']}".lower())
    if found is None:
        raise ArmError(404, "NotFound", f"Federated identity credential '{call.params['fic']}' was not found.")
    return JSONResponse(found)


async def delete_credential(svc: ArmService, call: Call) -> Response:
    parent = _identity(svc, call)
    key = f"{parent['id']}/federatedIdentityCredentials/{call.params['fic']}".lower()
    return Response(status_code=200 if svc.ctx.store.delete(KIND, key) else 204)


async def list_credentials(svc: ArmService, call: Call) -> Response:
    parent = _identity(svc, call)
    return JSONResponse({"value": [doc for _, doc in _credentials(svc, parent["id"])]})


def wipe(svc: ArmService) -> None:
    for key, _ in list(svc.ctx.store.scan(KIND)):
        svc.ctx.store.delete(KIND, key)
