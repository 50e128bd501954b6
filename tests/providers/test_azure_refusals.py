"""Rayplane against Azure's real refusals (the emulator's registered apps and enforced roles, not
injected errors): the access check and the AKS calls report Entra's AADSTS code or ARM's
``AuthorizationFailed`` with the step that fixes it, and never retry them."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from pydantic import SecretStr

from emulators.azure.keys import object_id_for_client
from emulators.azure.server import EmulatorProcess
from rayplane.providers.azure.access import check_access
from rayplane.providers.azure.advice import authorization_advice, entra_refusal, fit
from rayplane.providers.azure.aks import Aks
from rayplane.providers.azure.credentials import credential_for
from rayplane.providers.base import TerminalError
from rayplane.settings import Settings


@pytest.fixture
def app_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def azure_settings(azure_settings: Settings, emulator: EmulatorProcess, app_id: str) -> Settings:
    return azure_settings.model_copy(
        update={
            "azure_client_id": app_id,
            "azure_client_secret": SecretStr("emulator-secret"),
            "azure_arm_url": emulator.origin,
        }
    )


def config(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "subscription_id": str(uuid.uuid4()),
        "resource_group": "ml",
        "region": "eastus2",
        "tenant_id": str(uuid.uuid4()),
        "auth_mode": "app_consent",
        "aks_mode": "managed",
        "aks_cluster_name": "rayplane",
    }
    base.update(over)
    return base


def enforce(emulator: EmulatorProcess, subscription: str) -> None:
    current = emulator.request_json("GET", "/_emulator/arm/config")["enforce_roles_subscriptions"]
    emulator.request_json("PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": [*current, subscription]})


def test_no_role_is_authorization_failed_with_the_role_and_scope_to_assign(
    azure_settings: Settings, emulator: EmulatorProcess, app_id: str
) -> None:
    cfg = config()
    enforce(emulator, cfg["subscription_id"])
    group = f"/subscriptions/{cfg['subscription_id']}/resourceGroups/ml"
    result = check_access(azure_settings, cfg)
    assert (result.status, result.code) == ("ERROR", "AuthorizationFailed")
    reason = result.reason or ""
    oid = object_id_for_client(app_id)
    assert f"assign it the Contributor role on {group}" in reason
    assert f"az role assignment create --assignee {oid} --role Contributor --scope {group}" in reason
    assert "Microsoft.ContainerService/managedClusters/read" in reason
    assert len(f"{result.code}: {reason}") <= 500  # the status column keeps the advice whole

    # Reader is enough for the check of a cloud without durable logs (with them, the right to
    # assign roles is needed too: test_azure_access), not for creating a cluster: that refusal is terminal.
    emulator.assign_role(group, "Reader", client_id=app_id)
    assert check_access(azure_settings, cfg).code == "RoleAssignmentsNotPermitted"
    assert check_access(azure_settings, {**cfg, "durable_logs": False}).status == "READY"
    aks = Aks(
        credential_for(azure_settings, cfg),
        cfg["subscription_id"],
        arm_url=azure_settings.azure_arm_url,
        ca_bundle=str(azure_settings.ca_bundle),
    )
    body = {
        "location": "eastus2",
        "properties": {
            "dnsPrefix": "rp",
            "agentPoolProfiles": [{"name": "system", "mode": "System", "count": 1, "vmSize": "Standard_D4s_v5"}],
        },
    }
    with pytest.raises(TerminalError) as refused:
        aks.put_cluster("ml", "rayplane", body, None)
    assert refused.value.code == "AuthorizationFailed"
    assert "managedClusters/write" in refused.value.message
    assert f"--role Contributor --scope {group}" in refused.value.message

    emulator.assign_role(group, "Contributor", client_id=app_id)
    assert aks.put_cluster("ml", "rayplane", body, None).token is not None


def test_a_wrong_secret_for_a_registered_app_is_aadsts7000215(
    azure_settings: Settings, emulator: EmulatorProcess, app_id: str
) -> None:
    cfg = config()
    emulator.register_application(cfg["tenant_id"], app_id, secrets=[{"value": "the-real-one"}])
    result = check_access(azure_settings, cfg)
    assert (result.status, result.code) == ("ERROR", "AADSTS7000215")
    assert "RAYPLANE_AZURE_CLIENT_SECRET" in (result.reason or "")
    assert "Invalid client secret provided" in (result.reason or "")
    right = azure_settings.model_copy(update={"azure_client_secret": SecretStr("the-real-one")})
    assert check_access(right, cfg).status == "READY"


def test_an_unconsented_app_is_aadsts700016_with_the_consent_advice(
    azure_settings: Settings, emulator: EmulatorProcess
) -> None:
    cfg = config()
    emulator.register_application(cfg["tenant_id"], str(uuid.uuid4()), secrets=[{"value": "x"}])  # another app
    result = check_access(azure_settings, cfg)
    assert (result.status, result.code) == ("ERROR", "AADSTS700016")
    assert "admin_consent_url" in (result.reason or "")
    assert cfg["tenant_id"] in (result.reason or "")


def test_an_expired_secret_is_aadsts7000222(azure_settings: Settings, emulator: EmulatorProcess, app_id: str) -> None:
    cfg = config()
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    emulator.register_application(
        cfg["tenant_id"], app_id, secrets=[{"value": "emulator-secret", "end_date_time": past}]
    )
    result = check_access(azure_settings, cfg)
    assert (result.status, result.code) == ("ERROR", "AADSTS7000222")
    assert "expired" in (result.reason or "")


def test_advice_helpers() -> None:
    message = (
        "The client 'a' with object id 'o' does not have authorization to perform action "
        "'Microsoft.ContainerService/managedClusters/agentPools/write' over scope "
        "'/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/agentPools/p' "
        "or the scope is invalid. If access was recently granted, please refresh your credentials."
    )
    assert "--scope /subscriptions/s/resourceGroups/rg)" in authorization_advice(message)
    assert "Contributor role on the cloud's resource group" in authorization_advice("something else")
    code, reason = entra_refusal("ClientSecretCredential.get_token failed: AADSTS90002: Tenant 'x' not found.", {})
    assert code == "AADSTS90002"
    assert "tenant_id" in reason
    assert entra_refusal("", {"auth_mode": "federated"})[0] == "AuthenticationFailed"
    assert fit("do this", "x" * 1000, 100).startswith("do this (Azure: xxx")
    assert len(fit("do this", "x" * 1000, 100)) <= 100


def test_arms_own_401_keeps_its_code_instead_of_claiming_no_token(
    azure_settings: Settings, emulator: EmulatorProcess
) -> None:
    """A token Entra did issue, refused by ARM (here: for another audience), is ARM's code, not
    "no Azure token"."""
    cfg = config()
    wrong = emulator.mint_token(cfg["tenant_id"], audience="api://not-arm")

    class Fixed:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(wrong, int(time.time()) + 3600)

    aks = Aks(
        Fixed(), cfg["subscription_id"], arm_url=azure_settings.azure_arm_url, ca_bundle=str(azure_settings.ca_bundle)
    )
    with pytest.raises(TerminalError) as refused:
        aks.list_clusters("ml")
    assert refused.value.code == "InvalidAuthenticationTokenAudience"
    assert "no Azure token" not in refused.value.message
