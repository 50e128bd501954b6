"""``rayplane clouds add azure`` / ``clouds validate`` through the CLI against the emulator's real
refusals: a principal without a role on the resource group is told Azure's code and the role
assignment that fixes it; with Contributor only, durable logs are refused (the right to assign
roles is missing) unless the cloud is added with ``--no-durable-logs``; with that right too,
``clouds validate --wait`` is READY."""

from __future__ import annotations

import uuid

import pytest

from emulators.azure.server import EmulatorProcess
from tests.cli.support import Cli, assert_clean_failure, explain
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_clouds_add_azure_without_a_role_says_which_to_assign(
    cli: Cli, stack: Stack, emulator: EmulatorProcess
) -> None:
    subscription = str(uuid.uuid4())
    current = emulator.request_json("GET", "/_emulator/arm/config")["enforce_roles_subscriptions"]
    emulator.request_json("PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": [*current, subscription]})
    argv = ["clouds", "add", "azure", "--subscription", subscription, "--region", "eastus2"]
    argv += ["--tenant", str(uuid.uuid4()), "--resource-group", "rg-roles", "--name", "cli-roles", "--wait"]
    result = cli(*argv)
    assert_clean_failure(result)
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]
    group = f"/subscriptions/{subscription}/resourceGroups/rg-roles"
    assert error.startswith("error: cloud cli-roles cannot be used: AuthorizationFailed: "), error
    assert f"--role Contributor --scope {group}" in error
    assert error.endswith("When that is fixed: rayplane clouds validate cli-roles --wait")

    app = stack.env["RAYPLANE_AZURE_CLIENT_ID"]
    emulator.assign_role(group, "Contributor", client_id=app)
    # Contributor reaches AKS, but durable logs need the right to assign roles: said now.
    again = cli("clouds", "validate", "cli-roles", "--wait")
    assert again.returncode == 1, explain(again)
    error = again.stderr.splitlines()[-1]
    assert error.startswith("error: cloud cli-roles cannot be used: RoleAssignmentsNotPermitted: "), error
    assert '"durable_logs": false' in error

    # Either way out: a cloud without durable logs is READY with Contributor alone ...
    argv = ["clouds", "add", "azure", "--subscription", subscription, "--region", "eastus2", "--tenant"]
    argv += [str(uuid.uuid4()), "--resource-group", "rg-roles", "--name", "cli-nologs", "--no-durable-logs", "--wait"]
    plain = cli(*argv)
    assert plain.returncode == 0, explain(plain)
    assert "cloud cli-nologs is READY" in plain.stderr
    assert any(line.split()[:3] == ["Durable", "logs", "off"] for line in plain.stdout.splitlines()), plain.stdout

    # ... and with the role that may assign roles, the first one is READY too.
    emulator.assign_role(group, "User Access Administrator", client_id=app)
    again = cli("clouds", "validate", "cli-roles", "--wait")
    assert again.returncode == 0, explain(again)
    assert "cloud cli-roles is READY" in again.stderr
    for cloud in ("cli-roles", "cli-nologs"):
        assert cli("clouds", "delete", cloud, "--yes").returncode == 0
