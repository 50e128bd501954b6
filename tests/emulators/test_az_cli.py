"""The real Azure CLI (azure-cli from PyPI, ``make az``) against the emulator, as a user would
drive AKS: register the emulator as a cloud, sign in as a service principal, then create, change,
stop, start and upgrade a cluster and its node pools, and read its nodes with ``kubectl`` through
the kubeconfig ``az aks get-credentials`` writes.

Each test has its own ``AZURE_CONFIG_DIR`` (see :mod:`tests.support.azcli`), tenant, subscription
and resource group, so nothing here touches ``~/.azure`` or other tests' resources. Each ``az``
call costs about a second, so scenarios are grouped.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.azure.arm.lifecycle import KUBERNETES_VERSIONS
from emulators.azure.server import EmulatorProcess
from tests.support import azcli
from tests.support.azcli import CLOUD, AzCli, until

#: Operations end by the first status poll. Retry-After stays 1: with 0 the SDK's poller falls back
#: to its own interval (30 s for AKS).
FAST = {"operation_seconds": 0.0, "retry_after": 1}
NEW_IMAGE = "AKSUbuntu-2204gen2containerd-202608.04.0"


@pytest.fixture
def fast(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The session's emulator with quick operations; its ARM config is reset afterwards."""
    emulator.request_json("PUT", "/_emulator/arm/config", FAST)
    yield emulator
    emulator.request_json("POST", "/_emulator/arm/reset", {"resources": False})


@pytest.fixture
def signed_in(fast: EmulatorProcess, tmp_path: Path) -> tuple[AzCli, str]:
    """An ``az`` with the emulator registered as the active cloud (endpoint discovery on) and
    signed in as a service principal of a new tenant that owns one registered subscription;
    (the CLI, that subscription)."""
    assert fast.ca_path is not None
    cli = AzCli(tmp_path / "azure", fast.ca_path)
    cli.run("cloud", "register", "--name", CLOUD, "--endpoint-resource-manager", fast.origin)
    cli.run("cloud", "set", "--name", CLOUD)
    tenant, subscription = str(uuid.uuid4()), str(uuid.uuid4())
    fast.request_json(
        "PUT", f"/_emulator/arm/subscriptions/{subscription}", {"tenantId": tenant, "displayName": "az tests"}
    )
    client_id = str(uuid.uuid4())
    accounts = cli.json("login", "--service-principal", "-u", client_id, "-p", "emulator-secret", "--tenant", tenant)
    assert [(a["id"], a["tenantId"], a["user"]) for a in accounts] == [
        (subscription, tenant, {"name": client_id, "type": "servicePrincipal"})
    ]
    return cli, subscription


def test_a_missing_az_fails_the_test_with_the_way_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azcli, "AZ_VENV", tmp_path / "no-venv")
    with pytest.raises(pytest.fail.Exception, match="make az"):
        AzCli(tmp_path / "azure", tmp_path / "ca.pem")


def test_cloud_register_discovers_endpoints_and_login_lists_subscriptions(
    fast: EmulatorProcess, tmp_path: Path
) -> None:
    assert fast.ca_path is not None
    cli = AzCli(tmp_path / "azure", fast.ca_path)
    cli.run("cloud", "register", "--name", CLOUD, "--endpoint-resource-manager", fast.origin)
    cloud = cli.json("cloud", "show", "--name", CLOUD)
    endpoints = cloud["endpoints"]
    assert endpoints["activeDirectory"] == fast.origin
    assert endpoints["resourceManager"] == fast.origin
    assert endpoints["activeDirectoryResourceId"] == "https://management.core.windows.net/"
    assert endpoints["microsoftGraphResourceId"] == "https://graph.microsoft.com/"
    cli.run("cloud", "set", "--name", CLOUD)
    # A tenant with no registered subscription sees the emulator's default one.
    tenant = str(uuid.uuid4())
    accounts = cli.json("login", "--service-principal", "-u", str(uuid.uuid4()), "-p", "emulator-secret", "-t", tenant)
    assert len(accounts) == 1
    assert accounts[0]["tenantId"] == tenant
    assert accounts[0]["cloudName"] == CLOUD
    account = cli.json("account", "show")
    assert account["id"] == accounts[0]["id"]
    assert account["environmentName"] == CLOUD
    # A wrong secret is Entra's refusal, not a crash.
    assert "AADSTS" in cli.fails("login", "--service-principal", "-u", str(uuid.uuid4()), "-p", "nope", "-t", tenant)


def _nodes(kubeconfig: Path, context: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--context", context, "get", "nodes", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl get nodes failed: {done.stderr}")
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


def _pool_names(nodes: list[dict[str, Any]]) -> list[str]:
    return sorted({n["metadata"]["labels"].get("agentpool", "") for n in nodes})


def test_aks_cluster_and_node_pools_through_az(
    signed_in: tuple[AzCli, str], fast: EmulatorProcess, tmp_path: Path
) -> None:
    cli, subscription = signed_in
    rg = f"rg-{uuid.uuid4().hex[:8]}"
    assert cli.json("group", "create", "--name", rg, "--location", "eastus")["name"] == rg
    g = ["--resource-group", rg]
    created = cli.json(
        "aks", "create", *g, "--name", "c1", "--node-count", "1", "--node-vm-size", "Standard_D2s_v5", "--no-ssh-key"
    )
    assert created["provisioningState"] == "Succeeded"
    assert created["powerState"] == {"code": "Running"}
    # Managed identity clusters carry what `az aks update` reads (AKS sets both).
    assert created["servicePrincipalProfile"]["clientId"] == "msi"
    assert created["identityProfile"]["kubeletidentity"]["resourceId"].endswith("/userAssignedIdentities/c1-agentpool")
    assert [c["name"] for c in cli.json("aks", "list", *g)] == ["c1"]
    assert subscription in cli.json("aks", "show", *g, "--name", "c1")["id"]

    updated = cli.json("aks", "update", *g, "--name", "c1", "--tags", "team=ray")
    assert updated["tags"] == {"team": "ray"}

    spot = cli.json(
        "aks", "nodepool", "add", *g, "--cluster-name", "c1", "--name", "spot", "--priority", "Spot",
        "--node-vm-size", "Standard_D4s_v5", "--node-count", "1",
    )  # fmt: skip
    assert (spot["scaleSetPriority"], spot["scaleSetEvictionPolicy"], spot["spotMaxPrice"]) == ("Spot", "Delete", -1)
    gpu = cli.json(
        "aks", "nodepool", "add", *g, "--cluster-name", "c1", "--name", "gpu",
        "--node-vm-size", "Standard_NC4as_T4_v3", "--node-count", "1",
    )  # fmt: skip
    assert gpu["provisioningState"] == "Succeeded"
    pools = {p["name"]: p for p in cli.json("aks", "nodepool", "list", *g, "--cluster-name", "c1")}
    assert sorted(pools) == ["gpu", "nodepool1", "spot"]
    p = ["--cluster-name", "c1", "--name", "gpu"]
    assert cli.json("aks", "nodepool", "update", *g, *p, "--labels", "team=ml")["nodeLabels"] == {"team": "ml"}
    assert cli.json("aks", "nodepool", "scale", *g, *p, "--node-count", "2")["count"] == 2
    assert cli.json("aks", "nodepool", "show", *g, *p)["count"] == 2

    # get-credentials (user and --admin) and kubectl reads through them.
    kubeconfig = tmp_path / "kubeconfig"
    cli.run("aks", "get-credentials", *g, "--name", "c1", "--file", str(kubeconfig))
    cli.run("aks", "get-credentials", *g, "--name", "c1", "--admin", "--file", str(kubeconfig))
    contexts = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "config", "get-contexts", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(contexts) == ["c1", "c1-admin"]
    for context in contexts:

        def four_nodes(context: str = context) -> bool:
            nodes = _nodes(kubeconfig, context)
            return len(nodes) == 4 and _pool_names(nodes) == ["gpu", "nodepool1", "spot"]

        until(four_nodes, what=f"four nodes through {context}")

    # Versions and upgrades.
    versions = cli.json("aks", "get-versions", "--location", "eastus")
    assert sorted(v["version"] for v in versions["values"]) == sorted(KUBERNETES_VERSIONS)
    upgrades = cli.json("aks", "get-upgrades", *g, "--name", "c1")
    assert upgrades["controlPlaneProfile"]["kubernetesVersion"] == created["kubernetesVersion"]
    assert [u["kubernetesVersion"] for u in upgrades["controlPlaneProfile"]["upgrades"]] == ["1.34.0", "1.34.1"]
    fast.request_json("PUT", "/_emulator/arm/config", {"latest_node_image_version": NEW_IMAGE})
    pool_upgrades = cli.json("aks", "nodepool", "get-upgrades", *g, "--cluster-name", "c1", "--nodepool-name", "gpu")
    assert pool_upgrades["latestNodeImageVersion"] == NEW_IMAGE
    assert gpu["nodeImageVersion"] != NEW_IMAGE
    cli.run("aks", "nodepool", "upgrade", *g, *p, "--node-image-only", "--yes")
    assert cli.json("aks", "nodepool", "show", *g, *p)["nodeImageVersion"] == NEW_IMAGE
    upgraded = cli.json("aks", "upgrade", *g, "--name", "c1", "--kubernetes-version", "1.34.1", "--yes")
    assert upgraded["currentKubernetesVersion"] == "1.34.1"
    assert {pool["currentOrchestratorVersion"] for pool in upgraded["agentPoolProfiles"]} == {"1.34.1"}
    assert cli.json("aks", "get-upgrades", *g, "--name", "c1")["controlPlaneProfile"]["upgrades"] in (None, [])

    # Stop: nodes deallocated, the API server unreachable; start brings both back.
    cli.run("aks", "stop", *g, "--name", "c1")
    stopped = cli.json("aks", "show", *g, "--name", "c1")
    assert stopped["powerState"] == {"code": "Stopped"}
    assert {pool["powerState"]["code"] for pool in stopped["agentPoolProfiles"]} == {"Stopped"}
    with pytest.raises(AssertionError, match=r"unable to handle the request|ServiceUnavailable"):
        _nodes(kubeconfig, "c1")
    assert "stopped" in cli.fails("aks", "nodepool", "scale", *g, *p, "--node-count", "1")
    cli.run("aks", "start", *g, "--name", "c1")
    assert cli.json("aks", "show", *g, "--name", "c1")["powerState"] == {"code": "Running"}
    until(lambda: len(_nodes(kubeconfig, "c1")) == 4, what="the nodes after start")

    cli.run("aks", "nodepool", "delete", *g, "--cluster-name", "c1", "--name", "spot")
    names = [pool["name"] for pool in cli.json("aks", "nodepool", "list", *g, "--cluster-name", "c1")]
    assert sorted(names) == ["gpu", "nodepool1"]
    cli.run("aks", "delete", *g, "--name", "c1", "--yes")
    assert cli.json("aks", "list", *g) == []
