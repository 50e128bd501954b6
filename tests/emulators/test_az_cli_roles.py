"""The real Azure CLI against the emulator's Azure RBAC: with roles enforced for its subscription,
``az aks`` is refused with ARM's ``AuthorizationFailed`` until a role is assigned, and ``az role
assignment create/list/delete`` work through ARM's ``Microsoft.Authorization`` API."""

# ruff: noqa: F811 - the shared fixtures are imported and then named as parameters

from __future__ import annotations

import uuid

from emulators.azure.keys import object_id_for_client
from emulators.azure.server import EmulatorProcess
from tests.emulators.test_az_cli import fast, signed_in  # noqa: F401 - fixtures, used by name
from tests.support.azcli import AzCli


def test_roles_enforced_through_az(fast: EmulatorProcess, signed_in: tuple[AzCli, str]) -> None:
    cli, subscription = signed_in
    me = object_id_for_client(cli.json("account", "show")["user"]["name"])
    cli.run("group", "create", "-n", "rg1", "-l", "eastus")
    fast.request_json("PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": [subscription]})
    group = f"/subscriptions/{subscription}/resourceGroups/rg1"

    refused = cli.fails("aks", "list", "-g", "rg1")
    assert "AuthorizationFailed" in refused
    assert f"with object id '{me}' does not have authorization to perform action" in refused
    assert "Microsoft.ContainerService/managedClusters/read" in refused

    fast.assign_role(group, "Reader", principal_id=me)
    assert cli.json("aks", "list", "-g", "rg1") == []
    refused = cli.fails(
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        str(uuid.uuid4()),
        "--assignee-principal-type",
        "ServicePrincipal",
        "--role",
        "Reader",
        "--scope",
        group,
    )
    assert "Microsoft.Authorization/roleAssignments/write" in refused

    fast.assign_role(f"/subscriptions/{subscription}", "Owner", principal_id=me)
    other = str(uuid.uuid4())
    made = cli.json(
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        other,
        "--assignee-principal-type",
        "ServicePrincipal",
        "--role",
        "Azure Kubernetes Service Cluster User Role",
        "--scope",
        group,
    )
    assert made["principalId"] == other
    assert made["roleDefinitionId"].endswith("/4abbcc35-e782-43d8-92c5-2d3f1bd2253f")
    # --fill-principal-name false: names come from Microsoft Graph, which the emulator does not serve.
    listed = cli.json("role", "assignment", "list", "--scope", group, "--fill-principal-name", "false")
    assert other in {a["principalId"] for a in listed}
    cli.run("role", "assignment", "delete", "--ids", made["id"])
    listed = cli.json("role", "assignment", "list", "--scope", group, "--fill-principal-name", "false")
    assert other not in {a["principalId"] for a in listed}
