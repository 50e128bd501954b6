"""An Azure cloud's access check against the emulator (real azure-identity and
azure-mgmt-containerservice over HTTPS): READY, or ERROR with the code and what to do."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from emulators.azure.server import EmulatorProcess
from rayplane.clouds.access import check_access
from rayplane.providers.azure.aks import Aks
from rayplane.providers.azure.credentials import credential_for
from rayplane.settings import Settings

APP_ID = str(uuid.uuid4())


@pytest.fixture
def azure_settings(settings: Settings, emulator: EmulatorProcess) -> Settings:
    return settings.model_copy(
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
    step = aks.put_cluster("ml", "theirs", body, None)
    deadline = time.monotonic() + 30
    while not step.done:  # one status look per call: the way the reconciler resumes an LRO
        assert step.token is not None
        assert time.monotonic() < deadline, "the AKS create did not finish"
        time.sleep(0.2)
        step = aks.put_cluster("ml", "theirs", {}, step.token)
    assert check_access(azure_settings, cfg).status == "READY"


def test_a_refused_secret_is_an_error_that_says_what_to_do(azure_settings: Settings) -> None:
    bad = azure_settings.model_copy(update={"azure_client_secret": SecretStr("not-the-secret")})
    result = check_access(bad, config())
    assert (result.status, result.code) == ("ERROR", "AuthenticationFailed")
    assert "admin_consent_url" in (result.reason or "")


def test_a_deployment_without_credentials_says_which_setting_is_missing(azure_settings: Settings) -> None:
    unset = azure_settings.model_copy(update={"azure_client_secret": None})
    result = check_access(unset, config())
    assert (result.status, result.code) == ("ERROR", "RayplaneNotConfigured")
    assert "RAYPLANE_AZURE_CLIENT_SECRET" in (result.reason or "")
