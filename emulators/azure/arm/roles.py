"""Azure RBAC in the emulated ARM: built-in role definitions, role assignments, and the check
every ARM request passes when roles are enforced.

Follows Azure's RBAC model (https://learn.microsoft.com/azure/role-based-access-control/overview
and .../role-definitions): a role definition lists ``actions`` and ``notActions`` (``*``
wildcards, case-insensitive); an assignment gives a principal (the token's ``oid``) one role at
a scope (``/subscriptions/{s}``, a resource group, or a resource) and is inherited by every
scope below it. A request is allowed when some assignment of the caller at the request's scope
or above grants the action and its role's ``notActions`` do not take it away.

Role definitions are the built-in ones Rayplane's docs and advice name, with the GUIDs of
Azure's built-in roles reference (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles,
the General and Containers pages). Their ``actions`` are those published lists, limited to
the resource providers this emulator serves.

Refusal (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting): 403
``AuthorizationFailed``, "The client '<appid>' with object id '<oid>' does not have
authorization to perform action '<action>' over scope '<scope>' or the scope is invalid. If
access was recently granted, please refresh your credentials."

Assignments are documents of kind ``arm.roleassignment`` keyed by their lower-cased id, so they
survive a restart; whether they are enforced is :attr:`ArmConfig.enforce_roles` (global) or
:attr:`ArmConfig.enforce_roles_subscriptions`, both off by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from emulators.azure.arm.errors import ArmError
from emulators.azure.store import DocumentStore

KIND = "arm.roleassignment"
_PROVIDER = "/providers/Microsoft.Authorization"


@dataclass(frozen=True)
class RoleDefinition:
    """A built-in role: its GUID, name, description, actions and notActions."""

    guid: str
    name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    def body(self, subscription: str | None) -> dict[str, Any]:
        """Its ARM JSON (``Microsoft.Authorization/roleDefinitions``) as seen from ``subscription``."""
        return {
            "id": definition_id(self.guid, subscription),
            "name": self.guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.name,
                "type": "BuiltInRole",
                "description": self.description,
                "assignableScopes": ["/"],
                "permissions": [
                    {
                        "actions": list(self.actions),
                        "notActions": list(self.not_actions),
                        "dataActions": [],
                        "notDataActions": [],
                    }
                ],
            },
        }


BUILT_IN_ROLES: dict[str, RoleDefinition] = {
    role.guid: role
    for role in (
        RoleDefinition(
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            "Owner",
            "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
            ("*",),
        ),
        RoleDefinition(
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "Contributor",
            "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, "
            "manage assignments in Azure Blueprints, or share image galleries.",
            ("*",),
            (
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
            ),
        ),
        RoleDefinition(
            "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
            "User Access Administrator",
            "Lets you manage user access to Azure resources.",
            ("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
        ),
        RoleDefinition(
            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            "Reader",
            "View all resources, but does not allow you to make any changes.",
            ("*/read",),
        ),
        RoleDefinition(
            "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
            "Storage Blob Data Contributor",
            "Allows for read, write and delete access to Azure Storage blob containers and data",
            (
                "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ),
        ),
        RoleDefinition(
            "ed7f3fbd-7b88-4dd4-9017-9adb7ce333f8",
            "Azure Kubernetes Service Contributor Role",
            "Grants access to read and write Azure Kubernetes Service clusters",
            (
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.ContainerService/managedClusters/read",
                "Microsoft.ContainerService/managedClusters/write",
            ),
        ),
        RoleDefinition(
            "4abbcc35-e782-43d8-92c5-2d3f1bd2253f",
            "Azure Kubernetes Service Cluster User Role",
            "List cluster user credential action.",
            (
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
                "Microsoft.ContainerService/managedClusters/read",
            ),
        ),
        RoleDefinition(
            "0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8",
            "Azure Kubernetes Service Cluster Admin Role",
            "List cluster admin credential action.",
            (
                "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
                "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
                "Microsoft.ContainerService/managedClusters/read",
                "Microsoft.ContainerService/managedClusters/runcommand/action",
            ),
        ),
    )
}


def definition_id(guid: str, subscription: str | None) -> str:
    """``/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}`` (tenant-level without one)."""
    prefix = f"/subscriptions/{subscription}" if subscription else ""
    return f"{prefix}{_PROVIDER}/roleDefinitions/{guid}"


def find_role(reference: str) -> RoleDefinition | None:
    """The built-in role named by GUID, definition id, or role name (case-insensitive)."""
    lowered = reference.strip().rstrip("/").lower()
    guid = lowered.rsplit("/", 1)[-1]
    if guid in BUILT_IN_ROLES:
        return BUILT_IN_ROLES[guid]
    return next((r for r in BUILT_IN_ROLES.values() if r.name.lower() == lowered), None)


def _pattern(action: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in action.split("*")) + "$", re.IGNORECASE)


def grants(role: RoleDefinition, action: str) -> bool:
    """Whether ``role`` permits ``action`` (an action pattern matches and no notAction does)."""
    allowed = any(_pattern(a).match(action) for a in role.actions)
    return allowed and not any(_pattern(a).match(action) for a in role.not_actions)


def subscription_of(scope: str) -> str | None:
    """The subscription id in a scope, or None (tenant scope ``/``)."""
    parts = scope.strip("/").split("/")
    return parts[1] if len(parts) >= 2 and parts[0].lower() == "subscriptions" else None


def within(scope: str, ancestor: str) -> bool:
    """Whether ``scope`` is ``ancestor`` or below it (ARM ids compare case-insensitively)."""
    scope, ancestor = scope.rstrip("/").lower(), ancestor.rstrip("/").lower()
    return scope == ancestor or scope.startswith(ancestor + "/") or ancestor == ""


def assignment_id(scope: str, name: str) -> str:
    return f"{scope.rstrip('/')}{_PROVIDER}/roleAssignments/{name}"


class RoleAssignments:
    """Role assignments in the document store, and the authorization check."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def put(self, scope: str, name: str, principal_id: str, role_reference: str, principal_type: str) -> dict[str, Any]:
        """Create or replace an assignment; its ARM body. 400 ``RoleDefinitionDoesNotExist`` for an
        unknown role, 409 ``RoleAssignmentExists`` when another assignment gives the same."""
        role = find_role(role_reference)
        if role is None:
            message = f"The specified role definition with ID '{role_reference.rsplit('/', 1)[-1]}' does not exist."
            raise ArmError(400, "RoleDefinitionDoesNotExist", message)
        key = assignment_id(scope, name).lower()
        for other_key, other in self.store.scan(KIND):
            same = (other["principalId"].lower(), other["role"], other["scope"].lower())
            if other_key != key and same == (principal_id.lower(), role.guid, scope.rstrip("/").lower()):
                raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        doc = {
            "name": name,
            "scope": scope.rstrip("/"),
            "principalId": principal_id,
            "principalType": principal_type,
            "role": role.guid,
        }
        self.store.put(KIND, key, doc)
        return render(doc)

    def get(self, scope: str, name: str) -> dict[str, Any] | None:
        doc = self.store.get(KIND, assignment_id(scope, name).lower())
        return None if doc is None else render(doc)

    def delete(self, scope: str, name: str) -> dict[str, Any] | None:
        """Remove; the removed assignment's body, or None."""
        found = self.get(scope, name)
        if found is not None:
            self.store.delete(KIND, assignment_id(scope, name).lower())
        return found

    def listed(self, scope: str = "/", principal_id: str | None = None) -> list[dict[str, Any]]:
        """Assignments at, above or below ``scope`` (as ARM lists them), optionally of one principal."""
        found = []
        for _, doc in self.store.scan(KIND):
            if not (within(scope, doc["scope"]) or within(doc["scope"], scope)):
                continue
            if principal_id is not None and doc["principalId"].lower() != principal_id.lower():
                continue
            found.append(render(doc))
        return found

    def allowed(self, principal_id: str, action: str, scope: str) -> bool:
        """Whether ``principal_id`` may perform ``action`` on ``scope``."""
        for _, doc in self.store.scan(KIND):
            if doc["principalId"].lower() != principal_id.lower() or not within(scope, doc["scope"]):
                continue
            role = BUILT_IN_ROLES.get(doc["role"])
            if role is not None and grants(role, action):
                return True
        return False

    def permissions(self, principal_id: str, scope: str) -> list[dict[str, list[str]]]:
        """What ``Microsoft.Authorization/permissions`` lists for the principal at ``scope``: one
        entry (actions, notActions, ...) per role assigned to it at that scope or above."""
        found = []
        for _, doc in self.store.scan(KIND):
            role = BUILT_IN_ROLES.get(doc["role"])
            if role is None or doc["principalId"].lower() != principal_id.lower() or not within(scope, doc["scope"]):
                continue
            found.append(role.body(None)["properties"]["permissions"][0])
        return found

    def visible(self, principal_id: str, subscription: str) -> bool:
        """Whether the principal has any assignment in ``subscription`` (at it, above or below):
        what makes a subscription listed by ``GET /subscriptions`` and readable, as in Azure,
        where a role on one resource group is enough to see its subscription."""
        return bool(self.listed(f"/subscriptions/{subscription}", principal_id))

    def authorize(self, claims: dict[str, Any], action: str, scope: str) -> None:
        """Raise Azure's 403 ``AuthorizationFailed`` unless the caller may perform ``action``."""
        oid = str(claims.get("oid", ""))
        if self.allowed(oid, action, scope):
            return
        if action.lower() == "microsoft.resources/subscriptions/read" and self.visible(oid, scope.rsplit("/", 1)[-1]):
            return
        client = claims.get("appid") or claims.get("azp") or claims.get("upn") or oid
        message = (
            f"The client '{client}' with object id '{oid}' does not have authorization to perform action "
            f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
            "refresh your credentials."
        )
        raise ArmError(403, "AuthorizationFailed", message)

    def wipe(self) -> None:
        for key, _ in list(self.store.scan(KIND)):
            self.store.delete(KIND, key)


def render(doc: dict[str, Any]) -> dict[str, Any]:
    """An assignment document as ARM's ``Microsoft.Authorization/roleAssignments`` JSON."""
    return {
        "id": assignment_id(doc["scope"], doc["name"]),
        "name": doc["name"],
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": definition_id(doc["role"], subscription_of(doc["scope"])),
            "principalId": doc["principalId"],
            "principalType": doc["principalType"],
            "scope": doc["scope"],
        },
    }


_ACTION_TYPES = {"Microsoft.Resources/resourceGroups": "Microsoft.Resources/subscriptions/resourceGroups"}


def request_action(resource_type: str, method: str, path: str) -> str:
    """The Azure RBAC action an ARM request performs: ``<type>/read`` for GET, ``/write`` for
    PUT and PATCH, ``/delete`` for DELETE, and ``<type>/<last segment>/action`` for a POST
    (``.../managedClusters/listClusterUserCredential/action``, ``.../stop/action``)."""
    # ARM names resource groups' actions under subscriptions (Microsoft.Resources/subscriptions/resourceGroups/read).
    resource_type = _ACTION_TYPES.get(resource_type, resource_type)
    if method == "POST":
        return f"{resource_type}/{path.rstrip('/').rsplit('/', 1)[-1]}/action"
    verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, "read")
    return f"{resource_type}/{verb}"


def request_scope(path: str, method: str) -> str:
    """The scope a request is authorized at: its resource id (a POST action's resource, without
    the action segment)."""
    path = path.rstrip("/")
    return path.rsplit("/", 1)[0] if method == "POST" else path
