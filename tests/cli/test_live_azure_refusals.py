"""``rayplane clouds add azure`` / ``clouds validate`` through the CLI against the emulator's real
refusals: a principal without a role on the resource group is told Azure's code and the role
assignment that fixes it; once assigned, ``clouds validate --wait`` is READY."""

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

    emulator.assign_role(group, "Contributor", client_id=stack.env["RAYPLANE_AZURE_CLIENT_ID"])
    again = cli("clouds", "validate", "cli-roles", "--wait")
    assert again.returncode == 0, explain(again)
    assert "cloud cli-roles is READY" in again.stderr
    assert cli("clouds", "delete", "cli-roles", "--yes").returncode == 0
