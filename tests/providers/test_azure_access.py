"""An Azure cloud's access check against the emulator (real azure-identity and
azure-mgmt-containerservice over HTTPS): READY, or ERROR with the code and what to do."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.models import StorageAccountCreateParameters
from pydantic import SecretStr

from emulators.azure.server import EmulatorProcess
from rayplane.providers.azure.access import check_access
from rayplane.providers.azure.aks import Aks
from rayplane.providers.azure.credentials import credential_for
from rayplane.settings import Settings
from tests.emulators.test_entra import _self_signed

APP_ID = str(uuid.uuid4())


@pytest.fixture
def azure_settings(azure_settings: Settings, emulator: EmulatorProcess) -> Settings:
    """The suite's emulator-backed settings plus Rayplane's Azure app, with ARM at the emulator."""
    return azure_settings.model_copy(
        update={
            "azure_client_id": APP_ID,
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


def test_managed_mode_with_access_is_ready(azure_settings: Settings) -> None:
    result = check_access(azure_settings, config())
    assert (result.status, result.code) == ("READY", None)
    assert result.ray_versions


def test_existing_mode_needs_the_cluster(azure_settings: Settings) -> None:
    cfg = config(aks_mode="existing", aks_cluster_name="theirs")
    missing = check_access(azure_settings, cfg)
    assert (missing.status, missing.code) == ("ERROR", "ResourceNotFound")
    assert "aks_cluster_name" in (missing.reason or "")
    aks = Aks(
        credential_for(azure_settings, cfg),
        cfg["subscription_id"],
        arm_url=azure_settings.azure_arm_url,
        ca_bundle=str(azure_settings.ca_bundle),
    )
    body = {
        "location": "eastus2",
        "properties": {
            "dnsPrefix": "theirs",
            "agentPoolProfiles": [{"name": "system", "mode": "System", "count": 1, "vmSize": "Standard_D4s_v5"}],
        },
    }
    _made(aks, "theirs", body)
    # Found, but made without an OIDC issuer: durable logs could not work, and the check says so.
    no_issuer = check_access(azure_settings, cfg)
    assert (no_issuer.status, no_issuer.code) == ("ERROR", "OidcIssuerDisabled")
    assert "--enable-oidc-issuer" in (no_issuer.reason or "")
    assert '"durable_logs": false' in (no_issuer.reason or "")
    assert check_access(azure_settings, {**cfg, "durable_logs": False}).status == "READY"


def _made(aks: Aks, name: str, body: dict[str, Any]) -> None:
    step = aks.put_cluster("ml", name, body, None)
    deadline = time.monotonic() + 30
    while not step.done:  # one status look per call: the way the reconciler resumes an LRO
        assert step.token is not None
        assert time.monotonic() < deadline, "the AKS create did not finish"
        time.sleep(0.2)
        step = aks.put_cluster("ml", name, {}, step.token)


def test_an_existing_cluster_needs_an_oidc_issuer_and_workload_identity(azure_settings: Settings) -> None:
    cfg = config(aks_mode="existing", aks_cluster_name="withissuer")
    aks = Aks(
        credential_for(azure_settings, cfg),
        cfg["subscription_id"],
        arm_url=azure_settings.azure_arm_url,
        ca_bundle=str(azure_settings.ca_bundle),
    )
    pool = {"name": "system", "mode": "System", "count": 1, "vmSize": "Standard_D4s_v5"}
    properties = {"dnsPrefix": "w", "agentPoolProfiles": [pool], "oidcIssuerProfile": {"enabled": True}}
    _made(aks, "withissuer", {"location": "eastus2", "properties": properties})
    # An issuer but no workload identity webhook: the pods would get no token.
    webhookless = check_access(azure_settings, cfg)
    assert (webhookless.status, webhookless.code) == ("ERROR", "WorkloadIdentityDisabled")
    assert "--enable-workload-identity" in (webhookless.reason or "")
    properties["securityProfile"] = {"workloadIdentity": {"enabled": True}}
    _made(aks, "withissuer", {"location": "eastus2", "properties": properties})
    result = check_access(azure_settings, cfg)
    assert (result.status, result.code) == ("READY", None)


def test_without_the_right_to_assign_roles_durable_logs_are_an_error(
    azure_settings: Settings, emulator: EmulatorProcess
) -> None:
    cfg = config()
    group = f"/subscriptions/{cfg['subscription_id']}/resourceGroups/ml"
    current = emulator.request_json("GET", "/_emulator/arm/config")["enforce_roles_subscriptions"]
    emulator.request_json(
        "PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": [*current, cfg["subscription_id"]]}
    )
    try:
        emulator.assign_role(group, "Contributor", client_id=APP_ID)
        refused = check_access(azure_settings, cfg)
        assert (refused.status, refused.code) == ("ERROR", "RoleAssignmentsNotPermitted")
        assert "Microsoft.Authorization/roleAssignments/write" in (refused.reason or "")
        assert '"durable_logs": false' in (refused.reason or "")
        # Either way out works: logs off, or the role that may assign roles.
        assert check_access(azure_settings, {**cfg, "durable_logs": False}).status == "READY"
        emulator.assign_role(group, "User Access Administrator", client_id=APP_ID)
        assert check_access(azure_settings, cfg).status == "READY"
    finally:
        emulator.request_json("PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": current})


def test_a_refused_secret_is_an_error_that_says_what_to_do(azure_settings: Settings) -> None:
    bad = azure_settings.model_copy(update={"azure_client_secret": SecretStr("not-the-secret")})
    result = check_access(bad, config())
    assert (result.status, result.code) == ("ERROR", "AADSTS7000215")
    assert "RAYPLANE_AZURE_CLIENT_SECRET" in (result.reason or "")


def test_a_deployment_without_credentials_says_which_setting_is_missing(azure_settings: Settings) -> None:
    unset = azure_settings.model_copy(update={"azure_client_secret": None})
    result = check_access(unset, config())
    assert (result.status, result.code) == ("ERROR", "RayplaneNotConfigured")
    assert "RAYPLANE_AZURE_CLIENT_SECRET" in (result.reason or "")


def test_certificate_credentials(azure_settings: Settings, emulator: EmulatorProcess, tmp_path: Path) -> None:
    key_pem, cert_pem = _self_signed("rayplane-app")
    _, other_pem = _self_signed("not-rayplane")
    pem = tmp_path / "app.pem"
    pem.write_bytes(key_pem + cert_pem)
    with_cert = azure_settings.model_copy(update={"azure_client_secret": None, "azure_client_certificate_path": pem})
    try:
        emulator.configure_entra(client_certificates={APP_ID: [cert_pem.decode()]})
        assert check_access(with_cert, config()).status == "READY"
        emulator.configure_entra(client_certificates={APP_ID: [other_pem.decode()]})
        refused = check_access(with_cert, config())
        assert (refused.status, refused.code) == ("ERROR", "AADSTS700027")
        assert "RAYPLANE_AZURE_CLIENT_CERTIFICATE_PATH" in (refused.reason or "")
    finally:
        emulator.configure_entra(client_certificates={})


def test_federated_mode_needs_no_secret(azure_settings: Settings, emulator: EmulatorProcess, tmp_path: Path) -> None:
    issuer, subject = "https://oidc.rayplane.example/issuer", "system:serviceaccount:rayplane:worker"
    cfg = config(auth_mode="federated")
    token_file = tmp_path / "token"
    token_file.write_text(
        emulator.mint_token(cfg["tenant_id"], {"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange"})
    )
    federated = azure_settings.model_copy(
        update={"azure_client_secret": None, "azure_federated_token_file": token_file}
    )
    refused = check_access(federated, cfg)  # no federated credential registered on the app yet
    assert (refused.status, refused.code) == ("ERROR", "AADSTS70021")
    assert "federated identity credential" in (refused.reason or "")
    try:
        emulator.configure_entra(federated_credentials=[{"client_id": APP_ID, "issuer": issuer, "subject": subject}])
        assert check_access(federated, cfg).status == "READY"
    finally:
        emulator.configure_entra(federated_credentials=[])


def test_lighthouse_tokens_come_from_rayplanes_own_tenant(azure_settings: Settings) -> None:
    cfg = config(auth_mode="lighthouse")
    missing = check_access(azure_settings, cfg)
    assert (missing.status, missing.code) == ("ERROR", "RayplaneNotConfigured")
    home = azure_settings.model_copy(update={"azure_home_tenant_id": str(uuid.uuid4())})
    assert check_access(home, cfg).status == "READY"


def test_a_tenant_named_log_account_must_exist_and_allow_role_assignments(
    azure_settings: Settings, emulator: EmulatorProcess
) -> None:
    cfg = config()
    account_id = (
        f"/subscriptions/{cfg['subscription_id']}/resourceGroups/shared/providers/Microsoft.Storage/"
        f"storageAccounts/tl{uuid.uuid4().hex[:12]}"
    )
    named = {**cfg, "log_storage_account_id": account_id}
    missing = check_access(azure_settings, named)
    assert (missing.status, missing.code) == ("ERROR", "LogStorageAccountNotFound")
    assert '"durable_logs": false' in (missing.reason or "")

    storage = StorageManagementClient(
        credential_for(azure_settings, cfg),
        cfg["subscription_id"],
        base_url=azure_settings.azure_arm_url,
        connection_verify=str(azure_settings.ca_bundle),
    )
    body = {"location": "eastus2", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}
    storage.storage_accounts.begin_create(
        "shared", account_id.rsplit("/", 1)[-1], StorageAccountCreateParameters(body)
    ).result()
    group = f"/subscriptions/{cfg['subscription_id']}/resourceGroups/ml"
    current = emulator.request_json("GET", "/_emulator/arm/config")["enforce_roles_subscriptions"]
    emulator.request_json(
        "PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": [*current, cfg["subscription_id"]]}
    )
    try:
        # Where the shippers' role goes is the tenant's account: the right is needed there, not on the group.
        emulator.assign_role(group, "User Access Administrator", client_id=APP_ID)
        emulator.assign_role(account_id, "Reader", client_id=APP_ID)
        refused = check_access(azure_settings, named)
        assert (refused.status, refused.code) == ("ERROR", "RoleAssignmentsNotPermitted")
        assert "storage account" in (refused.reason or "")
        emulator.assign_role(account_id, "User Access Administrator", client_id=APP_ID)
        assert check_access(azure_settings, named).status == "READY"
    finally:
        emulator.request_json("PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": current})
