"""Azure RBAC in the emulated ARM: with roles enforced for a subscription, every request is
authorized against the caller's role assignments (built-in roles, inherited down the scopes) and
refused with Azure's 403 ``AuthorizationFailed``; assignments are managed through the test API
and through ARM's own ``Microsoft.Authorization`` routes."""

# ruff: noqa: F811 - the shared fixtures are imported and then named as parameters

from __future__ import annotations

import urllib.error
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerservice import ContainerServiceClient

from emulators.azure.arm.roles import BUILT_IN_ROLES, find_role, grants, request_action
from emulators.azure.keys import object_id_for_client
from emulators.azure.server import EmulatorProcess
from tests.emulators.arm_support import (  # noqa: F401 - fixtures, used by name
    ARM_SCOPE,
    CLIENT_ID,
    RG,
    aks,
    cluster_model,
    configure,
    credential,
    emu,
    error_code,
    http,
    sub,
)

OID = object_id_for_client(CLIENT_ID)
AUTHZ = "2022-04-01"


def _refused(exc: pytest.ExceptionInfo[HttpResponseError], action: str, scope: str) -> None:
    assert exc.value.status_code == 403
    assert error_code(exc.value) == "AuthorizationFailed"
    assert exc.value.error is not None
    assert exc.value.error.message == (
        f"The client '{CLIENT_ID}' with object id '{OID}' does not have authorization to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please "
        "refresh your credentials."
    )


def _headers(emu: EmulatorProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential(emu).get_token(ARM_SCOPE).token}"}


def test_built_in_roles_carry_azures_ids_and_actions() -> None:
    ids = {role.name: guid for guid, role in BUILT_IN_ROLES.items()}
    assert ids["Owner"] == "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    assert ids["Contributor"] == "b24988ac-6180-42a0-ab88-20f7382dd24c"
    assert ids["Reader"] == "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert ids["Azure Kubernetes Service Cluster User Role"] == "4abbcc35-e782-43d8-92c5-2d3f1bd2253f"
    contributor, reader = find_role("contributor"), find_role("/providers/x/roleDefinitions/" + ids["Reader"])
    assert contributor is not None
    assert reader is not None
    write = request_action("Microsoft.ContainerService/managedClusters", "PUT", "/x")
    assert grants(contributor, write)
    assert not grants(reader, write)
    assert not grants(contributor, "Microsoft.Authorization/roleAssignments/write")
    assert grants(reader, "Microsoft.Resources/subscriptions/resourceGroups/read")


def test_off_by_default(emu: EmulatorProcess, aks: ContainerServiceClient) -> None:
    assert configure(emu)["enforce_roles"] is False
    assert list(aks.managed_clusters.list_by_resource_group(RG)) == []


def test_enforced_subscription_refuses_until_a_role_is_assigned(
    emu: EmulatorProcess, aks: ContainerServiceClient, sub: str
) -> None:
    configure(emu, enforce_roles_subscriptions=[sub])
    group = f"/subscriptions/{sub}/resourceGroups/{RG}"
    clusters = f"{group}/providers/Microsoft.ContainerService/managedClusters"
    with pytest.raises(HttpResponseError) as refused:
        list(aks.managed_clusters.list_by_resource_group(RG))
    _refused(refused, "Microsoft.ContainerService/managedClusters/read", clusters)

    # Reader at the resource group: reads pass, a create is refused with the write action.
    emu.assign_role(group, "Reader", client_id=CLIENT_ID)
    assert list(aks.managed_clusters.list_by_resource_group(RG)) == []
    with pytest.raises(HttpResponseError) as write:
        aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
    _refused(write, "Microsoft.ContainerService/managedClusters/write", f"{clusters}/c1")
    # A role in another resource group does not reach this one.
    emu.assign_role(f"/subscriptions/{sub}/resourceGroups/other", "Contributor", client_id=CLIENT_ID)
    with pytest.raises(HttpResponseError):
        aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()

    # AKS Contributor at the subscription (inherited by the group): the create and its polling pass;
    # the user kubeconfig needs the Cluster User Role.
    emu.assign_role(f"/subscriptions/{sub}", "Azure Kubernetes Service Contributor Role", client_id=CLIENT_ID)
    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
    with pytest.raises(HttpResponseError) as creds:
        aks.managed_clusters.list_cluster_user_credentials(RG, "c1")
    _refused(creds, "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action", f"{clusters}/c1")
    emu.assign_role(f"{clusters}/c1", "4abbcc35-e782-43d8-92c5-2d3f1bd2253f", client_id=CLIENT_ID)
    assert aks.managed_clusters.list_cluster_user_credentials(RG, "c1").kubeconfigs
    with pytest.raises(HttpResponseError) as admin:
        aks.managed_clusters.list_cluster_admin_credentials(RG, "c1")
    _refused(admin, "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action", f"{clusters}/c1")


def test_role_assignments_through_arms_authorization_api(emu: EmulatorProcess, sub: str) -> None:
    configure(emu, enforce_roles_subscriptions=[sub])
    group = f"/subscriptions/{sub}/resourceGroups/{RG}"
    assignments = f"{group}/providers/Microsoft.Authorization/roleAssignments"
    contributor = (
        f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"
    )
    body = {"properties": {"roleDefinitionId": contributor, "principalId": str(uuid.uuid4())}}
    with http(emu) as client:
        headers = _headers(emu)
        params = {"api-version": AUTHZ}
        listed = client.get(
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions",
            params={**params, "$filter": "roleName eq 'Reader'"},
            headers=headers,
        )
        assert listed.status_code == 403  # nothing assigned to the caller yet
        emu.assign_role(f"/subscriptions/{sub}", "Contributor", client_id=CLIENT_ID)
        listed = client.get(
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions",
            params={**params, "$filter": "roleName eq 'Reader'"},
            headers=headers,
        )
        assert [d["name"] for d in listed.json()["value"]] == ["acdd72a7-3385-48ef-bd42-f606fba81ae7"]
        # Contributor may not assign roles (its notActions), Owner may.
        r = client.put(f"{assignments}/{uuid.uuid4()}", params=params, json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "AuthorizationFailed")
        assert "Microsoft.Authorization/roleAssignments/write" in r.json()["error"]["message"]
        emu.assign_role(f"/subscriptions/{sub}", "Owner", client_id=CLIENT_ID)
        name = str(uuid.uuid4())
        r = client.put(f"{assignments}/{name}", params=params, json=body, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["properties"]["scope"] == group
        again = client.put(f"{assignments}/{uuid.uuid4()}", params=params, json=body, headers=headers)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "RoleAssignmentExists")
        mine = client.get(assignments, params={**params, "$filter": f"principalId eq '{OID}'"}, headers=headers).json()[
            "value"
        ]
        assert {a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1] for a in mine} == {
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        }
        assert client.delete(f"{assignments}/{name}", params=params, headers=headers).status_code == 200
        assert client.get(f"{assignments}/{name}", params=params, headers=headers).status_code == 404
        bad = client.put(
            f"{assignments}/{uuid.uuid4()}",
            params=params,
            json={"properties": {"roleDefinitionId": str(uuid.uuid4()), "principalId": OID}},
            headers=headers,
        )
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "RoleDefinitionDoesNotExist")


def test_admin_api_lists_and_deletes_assignments(emu: EmulatorProcess, sub: str) -> None:
    principal = str(uuid.uuid4())
    made = emu.assign_role(f"/subscriptions/{sub}", "Reader", principal_id=principal, name="a1")
    assert made["properties"]["principalId"] == principal
    listed = emu.request_json("GET", f"/_emulator/arm/role-assignments?principalId={principal}")["value"]
    assert [a["name"] for a in listed] == ["a1"]
    emu.request_json("DELETE", "/_emulator/arm/role-assignments/a1")
    assert emu.request_json("GET", f"/_emulator/arm/role-assignments?principalId={principal}")["value"] == []
    with pytest.raises(urllib.error.HTTPError, match="400"):
        emu.assign_role(f"/subscriptions/{sub}", "Janitor", principal_id=principal)


def test_enforced_subscriptions_are_listed_and_readable_with_any_role_in_them(emu: EmulatorProcess) -> None:
    tenant, seen, hidden = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    for subscription in (seen, hidden):
        emu.request_json("PUT", f"/_emulator/arm/subscriptions/{subscription}", {"tenantId": tenant})
    configure(emu, enforce_roles=True)
    token = emu.mint_token(tenant, {"oid": OID}, audience="https://management.azure.com")
    headers = {"Authorization": f"Bearer {token}"}
    emu.assign_role(f"/subscriptions/{seen}/resourceGroups/{RG}", "Reader", principal_id=OID)
    with http(emu) as client:
        listed = client.get("/subscriptions", params={"api-version": "2022-12-01"}, headers=headers).json()["value"]
        assert [s["subscriptionId"] for s in listed] == [seen]
        assert client.get(f"/subscriptions/{seen}", params={"api-version": "2022-12-01"}, headers=headers).is_success
        refused = client.get(f"/subscriptions/{hidden}", params={"api-version": "2022-12-01"}, headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "AuthorizationFailed")


def test_assignments_and_the_switch_survive_a_restart(fresh_emulator: EmulatorProcess) -> None:
    subscription = str(uuid.uuid4())
    configure(fresh_emulator, enforce_roles_subscriptions=[subscription])
    fresh_emulator.assign_role(f"/subscriptions/{subscription}", "Contributor", client_id=CLIENT_ID, name="kept")
    fresh_emulator.restart()
    assert configure(fresh_emulator)["enforce_roles_subscriptions"] == [subscription]
    listed = fresh_emulator.request_json("GET", f"/_emulator/arm/role-assignments?principalId={OID}")["value"]
    assert [a["name"] for a in listed] == ["kept"]
