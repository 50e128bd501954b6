"""Checking that Rayplane can reach a customer's Azure (sync; the Azure provider's
``check_access`` capability, run by the clouds' validation task).

The check gets a real token for the cloud's auth mode and reads the resource group's AKS
clusters (``managed`` mode: proves read access where Rayplane will create one) or the named
cluster (``existing`` mode). The answer is READY, or ERROR with Azure's code and what to do:
consent not granted, no role on the resource group, a wrong tenant or cluster name.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ClientAuthenticationError

from rayplane.providers.azure.aks import Aks
from rayplane.providers.azure.credentials import credential_for
from rayplane.providers.base import AccessCheck, ProviderError
from rayplane.settings import Settings

RAY_VERSIONS = ["2.52.0", "2.49.2", "2.47.1"]


def _consent_hint(config: dict[str, Any]) -> str:
    if config.get("auth_mode") == "app_consent":
        return "an admin of the tenant must grant consent through the cloud's admin_consent_url"
    if config.get("auth_mode") == "federated":
        return "check the federated identity credential on Rayplane's app"
    return "check the Lighthouse delegation of the resource group to Rayplane's tenant"


def check_access(settings: Settings, config: dict[str, Any]) -> AccessCheck:
    """Try the cloud's credentials against ARM; never raises for Azure-side problems."""
    try:
        aks = Aks(
            credential_for(settings, config),
            config["subscription_id"],
            arm_url=settings.azure_arm_url,
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        )
        rg, name = config["resource_group"], config["aks_cluster_name"]
        if config.get("aks_mode") == "existing":
            if aks.get_cluster(rg, name) is None:
                return AccessCheck(
                    "ERROR",
                    f"AKS cluster {name!r} was not found in resource group {rg!r}: check aks_cluster_name, "
                    "or use aks_mode 'managed' to let Rayplane create one",
                    "ResourceNotFound",
                    [],
                )
        else:
            aks.list_clusters(rg)
    except ClientAuthenticationError as exc:
        message = (exc.message or str(exc)).splitlines()[0][:300]
        return AccessCheck(
            "ERROR",
            f"Entra ID gave no token for tenant {config.get('tenant_id')}: {message}; {_consent_hint(config)}",
            "AuthenticationFailed",
            [],
        )
    except ProviderError as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientAuthenticationError):
            return AccessCheck(
                "ERROR",
                f"Entra ID gave no token for tenant {config.get('tenant_id')}; {_consent_hint(config)}",
                "AuthenticationFailed",
                [],
            )
        return AccessCheck("ERROR", exc.message[:500], exc.code, [])
    return AccessCheck("READY", None, None, list(RAY_VERSIONS))
