"""What a cloud with durable logs needs, checked when the cloud is registered (part of
:func:`.access.check_access`), so a tenant learns it then rather than from every cluster failing:

* **an OIDC issuer and workload identity on the AKS cluster** (the token exchange's issuer, and
  the webhook that gives pods the token). Existing mode: the named cluster's
  ``oidcIssuerProfile.issuerURL`` and ``securityProfile.workloadIdentity.enabled``. Managed mode:
  Rayplane creates the cluster with both on, so only a cluster of that name already there is read.
* **the right to create role assignments** (``Microsoft.Authorization/roleAssignments/write``,
  which Contributor lacks) where the shippers' role goes: ARM's ``Microsoft.Authorization/
  permissions`` list of the caller (Permissions - List For Resource Group, api-version
  2022-04-01) on the resource group, or on the tenant-named account. Effective permission is
  the union over the entries of each entry's actions minus its notActions (Azure RBAC's rule).
* **a tenant-named account exists** (``log_storage_account_id``).

Each failure is an :class:`~rayplane.providers.base.AccessCheck` ERROR whose reason says both
ways out: the fix on Azure's side, or ``"durable_logs": false``. The cluster-time
TerminalErrors of :mod:`.observability` and :mod:`.logsink` stay as the backstop (a role
removed after registration). Races: the answer is as of the check; nothing is cached.
"""

from __future__ import annotations

import re
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient

from rayplane.logs import get_logger
from rayplane.providers.azure.logsink import Storage, parse_account_id
from rayplane.providers.azure.observability import enabled
from rayplane.providers.azure.workload import AUTHZ_VERSION
from rayplane.providers.base import AccessCheck
from rayplane.settings import Settings

log = get_logger("rayplane.providers.azure.logaccess")

WRITE_ROLE_ASSIGNMENTS = "Microsoft.Authorization/roleAssignments/write"
OFF = 'or register the cloud with "durable_logs": false (no log shipping)'


def _matches(pattern: str, action: str) -> bool:
    parts = (re.escape(p) for p in pattern.split("*"))
    return re.fullmatch(".*".join(parts), action, re.IGNORECASE) is not None


def may(permissions: list[dict[str, Any]], action: str) -> bool:
    """Whether ARM's permission entries grant ``action``: some entry's actions match it and that
    entry's notActions do not."""
    return any(
        any(_matches(a, action) for a in entry.get("actions") or [])
        and not any(_matches(n, action) for n in entry.get("notActions") or [])
        for entry in permissions
    )


def _issuer_error(cluster: dict[str, Any] | None, rg: str, name: str) -> AccessCheck | None:
    """The AKS cluster's OIDC issuer (the token exchange's issuer) and workload identity (the
    webhook that projects the token into the pods) must both be on."""
    if cluster is None:
        return None
    props = cluster.get("properties") or {}
    oidc = props.get("oidcIssuerProfile") or {}
    fix = f"run `az aks update -g {rg} -n {name} --enable-oidc-issuer --enable-workload-identity`, {OFF}"
    if not (oidc.get("issuerURL") or oidc.get("issuer_url")):
        reason = f"AKS cluster {name} has no OIDC issuer, so Ray pods cannot use workload identity to ship logs: {fix}"
        return AccessCheck("ERROR", reason, "OidcIssuerDisabled", [])
    if not ((props.get("securityProfile") or {}).get("workloadIdentity") or {}).get("enabled"):
        reason = f"AKS cluster {name} has workload identity off, so no token reaches the Ray pods' log shippers: {fix}"
        return AccessCheck("ERROR", reason, "WorkloadIdentityDisabled", [])
    return None


def _permissions(
    authz: AuthorizationManagementClient, rg: str, account: tuple[str, str] | None
) -> list[dict[str, Any]]:
    if account is None:
        pages = authz.permissions.list_for_resource_group(rg)
    else:
        pages = authz.permissions.list_for_resource(account[0], "Microsoft.Storage", "", "storageAccounts", account[1])
    return [{"actions": list(p.actions or []), "notActions": list(p.not_actions or [])} for p in pages]


def check_durable_logs(
    settings: Settings, config: dict[str, Any], credential: TokenCredential, cluster: dict[str, Any] | None
) -> AccessCheck | None:
    """None when the cloud's durable logs can work (or are off), else the ERROR to record.
    ``cluster`` is the AKS cluster as read by the caller (None: not there yet, managed mode).
    Azure errors other than the answers checked here are left to the caller's handling."""
    if not enabled(config):
        return None
    rg, name = config["resource_group"], config["aks_cluster_name"]
    issuer = _issuer_error(cluster, rg, name)
    if issuer is not None:
        return issuer
    ca = str(settings.ca_bundle) if settings.ca_bundle else None
    named = config.get("log_storage_account_id")
    account: tuple[str, str] | None = None
    if named:
        _, account_rg, account_name = parse_account_id(str(named))
        account = (account_rg, account_name)
        storage = Storage(credential, config["subscription_id"], arm_url=settings.azure_arm_url, ca_bundle=ca)
        if storage.find(account_rg, config["region"], str(named)) is None:
            reason = (
                f"storage account {account_name} (log_storage_account_id) was not found in resource group "
                f"{account_rg}: check the id, or give Rayplane's app a role that can read it, {OFF}"
            )
            return AccessCheck("ERROR", reason, "LogStorageAccountNotFound", [])
    kwargs: dict[str, Any] = {"base_url": settings.azure_arm_url, "retry_backoff_factor": 0.2}
    if ca:
        kwargs["connection_verify"] = ca
    authz = AuthorizationManagementClient(credential, config["subscription_id"], api_version=AUTHZ_VERSION, **kwargs)
    try:
        permissions = _permissions(authz, rg, account)
    except HttpResponseError as exc:
        # Not knowing is not a refusal: the cluster-time error still names the fix.
        log.warning("permissions_unread", status=exc.status_code, error=str(exc)[:300])
        return None
    if may(permissions, WRITE_ROLE_ASSIGNMENTS):
        return None
    scope = f"resource group {rg}" if account is None else f"storage account {account[1]}"
    reason = (
        f"Rayplane's app may not create role assignments on {scope} ({WRITE_ROLE_ASSIGNMENTS}), which each "
        'cluster\'s log shipper needs: assign it "Role Based Access Control Administrator" (or "User Access '
        f'Administrator") there, {OFF}'
    )
    return AccessCheck("ERROR", reason, "RoleAssignmentsNotPermitted", [])
