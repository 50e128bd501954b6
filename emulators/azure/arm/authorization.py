"""ARM's ``Microsoft.Authorization`` routes for role definitions and role assignments (the
REST API the Azure CLI's ``az role assignment create|list|delete`` and the portal use):

* ``GET {scope}/providers/Microsoft.Authorization/roleDefinitions[/{guid}]`` (``$filter=roleName
  eq '...'`` honoured; ``az role assignment create`` looks the role up at the assignment's scope);
* ``PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{name}`` with
  ``{"properties": {"roleDefinitionId", "principalId", "principalType"}}``;
* ``GET {scope}/providers/Microsoft.Authorization/roleAssignments`` (``$filter=principalId eq
  '...'`` honoured), listing assignments at, above and below the scope;
* ``GET {resource group or resource}/providers/Microsoft.Authorization/permissions`` (Permissions -
  List For Resource Group / List For Resource): the caller's ``actions`` / ``notActions``, one
  entry per role assigned to it at the scope or above. Where roles are not enforced every
  caller may do everything, so the answer is one entry with ``actions: ["*"]``.

Shapes from the Role Assignments and Role Definitions REST references (api-version 2022-04-01);
any well-formed api-version is accepted. When roles are enforced these requests are
authorized like any other (``Microsoft.Authorization/roleAssignments/write`` is Owner's, not
Contributor's). See :mod:`emulators.azure.arm.roles`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse, Response

from emulators.azure.arm.errors import ArmError
from emulators.azure.arm.roles import BUILT_IN_ROLES

if TYPE_CHECKING:
    from emulators.azure.arm.service import ArmService, Call

_FILTER = re.compile(r"^\s*(roleName|principalId)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def _filter(call: Call) -> tuple[str, str] | None:
    found = _FILTER.match(call.request.query_params.get("$filter", ""))
    return None if found is None else (found.group(1).lower(), found.group(2))


def _scope(call: Call) -> str:
    return f"/subscriptions/{call.params['sub']}{call.params.get('under') or ''}"


async def list_role_definitions(svc: ArmService, call: Call) -> Response:
    wanted = _filter(call)
    roles = [
        role.body(call.params["sub"])
        for role in BUILT_IN_ROLES.values()
        if wanted is None or wanted[0] != "rolename" or role.name.lower() == wanted[1].lower()
    ]
    return JSONResponse({"value": roles})


async def get_role_definition(svc: ArmService, call: Call) -> Response:
    role = BUILT_IN_ROLES.get(call.params["rd"].lower())
    if role is None:
        message = f"The role definition '{call.params['rd']}' could not be found."
        raise ArmError(404, "RoleDefinitionDoesNotExist", message)
    return JSONResponse(role.body(call.params["sub"]))


async def put_role_assignment(svc: ArmService, call: Call) -> Response:
    properties = call.json_object().get("properties")
    if not isinstance(properties, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must contain 'properties'.")
    role, principal = properties.get("roleDefinitionId"), properties.get("principalId")
    if not isinstance(role, str) or not isinstance(principal, str) or not principal:
        message = "The properties roleDefinitionId and principalId are required."
        raise ArmError(400, "InvalidRoleAssignmentRequest", message)
    existed = svc.roles.get(_scope(call), call.params["ra"]) is not None
    kind = str(properties.get("principalType") or "ServicePrincipal")
    body = svc.roles.put(_scope(call), call.params["ra"], principal, role, kind)
    return JSONResponse(body, status_code=200 if existed else 201)


async def get_role_assignment(svc: ArmService, call: Call) -> Response:
    found = svc.roles.get(_scope(call), call.params["ra"])
    if found is None:
        raise ArmError(404, "RoleAssignmentNotFound", "The role assignment was not found.")
    return JSONResponse(found)


async def delete_role_assignment(svc: ArmService, call: Call) -> Response:
    found = svc.roles.delete(_scope(call), call.params["ra"])
    return Response(status_code=204) if found is None else JSONResponse(found)


async def list_role_assignments(svc: ArmService, call: Call) -> Response:
    wanted = _filter(call)
    principal = wanted[1] if wanted is not None and wanted[0] == "principalid" else None
    return JSONResponse({"value": svc.roles.listed(_scope(call), principal)})


async def list_permissions(svc: ArmService, call: Call) -> Response:
    if not svc.admin.config.enforces_roles(call.params["sub"]):
        everything = {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}
        return JSONResponse({"value": [everything]})
    return JSONResponse({"value": svc.roles.permissions(str(call.claims.get("oid", "")), _scope(call))})
