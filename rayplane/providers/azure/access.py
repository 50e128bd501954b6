"""Checking that Rayplane can reach a customer's Azure (sync; the Azure provider's
``check_access`` capability, run by the clouds' validation task).

The check gets a real token for the cloud's auth mode and reads the resource group's AKS
clusters (``managed`` mode: proves read access where Rayplane will create one) or the named
cluster (``existing`` mode). The answer is READY, or ERROR with Azure's code and what to do:
consent not granted, no role on the resource group, a wrong tenant or cluster name. A cloud
with durable logs on is also checked for what they need (:mod:`.logaccess`: the AKS cluster's
OIDC issuer, the right to create role assignments, a tenant-named account), so the tenant
learns it at registration instead of from each cluster failing.

A token refusal is reported with Entra's own code (``AADSTS7000215``...) and an ARM refusal
with ARM's (``AuthorizationFailed``), each with the advice of
:mod:`rayplane.providers.azure.advice` first, so the status column's limit never cuts it.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from rayplane.providers.azure.advice import authorization_advice, entra_refusal, fit
from rayplane.providers.azure.aks import Aks
from rayplane.providers.azure.credentials import credential_for
from rayplane.providers.azure.logaccess import check_durable_logs
from rayplane.providers.base import AccessCheck, ProviderError
from rayplane.settings import Settings

RAY_VERSIONS = ["2.52.0", "2.49.2", "2.47.1"]


def check_access(settings: Settings, config: dict[str, Any]) -> AccessCheck:
    """Try the cloud's credentials against ARM; never raises for Azure-side problems."""
    try:
        credential = credential_for(settings, config)
        aks = Aks(
            credential,
            config["subscription_id"],
            arm_url=settings.azure_arm_url,
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        )
        rg, name = config["resource_group"], config["aks_cluster_name"]
        if config.get("aks_mode") == "existing":
            cluster = aks.get_cluster(rg, name)
            if cluster is None:
                return AccessCheck(
                    "ERROR",
                    f"AKS cluster {name!r} was not found in resource group {rg!r}: check aks_cluster_name, "
                    "or use aks_mode 'managed' to let Rayplane create one",
                    "ResourceNotFound",
                    [],
                )
        else:
            # Managed: Rayplane makes the cluster (with an OIDC issuer); one already there is read as is.
            cluster = next((c for c in aks.list_clusters(rg) if str(c.get("name", "")).lower() == name.lower()), None)
        logs = check_durable_logs(settings, config, credential, cluster)
        if logs is not None:
            return logs
    except ClientAuthenticationError as exc:
        code, reason = entra_refusal(exc.message or str(exc), config)
        return AccessCheck("ERROR", reason, code, [])
    except ProviderError as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientAuthenticationError) and (exc.code or "").startswith(("AADSTS", "Authentication")):
            code, reason = entra_refusal(cause.message or str(cause), config)
            return AccessCheck("ERROR", reason, code, [])
        if isinstance(cause, HttpResponseError) and exc.code == "AuthorizationFailed":
            detail = (cause.error.message if cause.error is not None else None) or str(cause)
            group = f"/subscriptions/{config['subscription_id']}/resourceGroups/{config['resource_group']}"
            return AccessCheck("ERROR", fit(authorization_advice(detail, group), detail), exc.code, [])
        return AccessCheck("ERROR", exc.message[:480], exc.code, [])
    return AccessCheck("READY", None, None, list(RAY_VERSIONS))
