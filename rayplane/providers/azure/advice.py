"""What to tell a user when Azure refuses Rayplane: from Entra's AADSTS codes and ARM's
``AuthorizationFailed``, the step that fixes it and who must take it.

Entra: the token endpoint's error codes (https://learn.microsoft.com/entra/identity-platform/reference-error-codes)
arrive inside azure-identity's ``ClientAuthenticationError`` message as ``AADSTSnnnn: ...``;
:func:`entra_refusal` keeps the code (``AADSTS7000215``) and adds the advice for the cloud's
auth mode. Some are the customer's to fix (consent, tenant id), some the operator's (the
app's secret, certificate or federated credential).

ARM: a 403 ``AuthorizationFailed`` names the client, its object id, the action and the scope
(https://learn.microsoft.com/azure/role-based-access-control/troubleshooting);
:func:`authorization_advice` turns it into the role assignment that fixes it: Contributor on
the cloud's resource group (what Rayplane needs to create and scale AKS clusters and pools,
https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/general#contributor),
with the ``az role assignment create`` command for that principal and scope.
"""

from __future__ import annotations

import re
from typing import Any

_AADSTS = re.compile(r"AADSTS(\d+)")
_REFUSAL = re.compile(
    r"client '(?P<client>[^']*)' with object id '(?P<oid>[^']*)' does not have authorization to perform action "
    r"'(?P<action>[^']*)' over scope '(?P<scope>[^']*)'",
)
_FEDERATED_CODES = frozenset({70021, 700211, 700212, 700213, 7002138})


def entra_code(text: str) -> int | None:
    """The first AADSTS code in ``text``, or None."""
    found = _AADSTS.search(text)
    return int(found.group(1)) if found else None


def _consent(config: dict[str, Any]) -> str:
    mode = config.get("auth_mode", "app_consent")
    if mode == "app_consent":
        return "an admin of the tenant must grant consent through the cloud's admin_consent_url"
    if mode == "federated":
        return "check the federated identity credential on Rayplane's app"
    return "check the Lighthouse delegation of the resource group to Rayplane's tenant"


def entra_advice(code: int | None, config: dict[str, Any]) -> str:
    """The next step for Entra's refusal ``code`` of a token for a cloud with ``config``."""
    tenant = config.get("tenant_id")
    if code == 700016:
        if config.get("auth_mode", "app_consent") == "lighthouse":
            return "Rayplane's app (RAYPLANE_AZURE_CLIENT_ID) is not registered in Rayplane's home tenant"
        return f"Rayplane's app is not in tenant {tenant}: {_consent(config)}, or check the cloud's tenant_id"
    if code == 7000215:
        return (
            "the operator must set RAYPLANE_AZURE_CLIENT_SECRET to one of the app's client secret values "
            "(the value, not the secret's id)"
        )
    if code == 7000222:
        return (
            "the app's client secret has expired: the operator must add a new secret to the app registration and "
            "set RAYPLANE_AZURE_CLIENT_SECRET, or use a certificate (RAYPLANE_AZURE_CLIENT_CERTIFICATE_PATH)"
        )
    if code in (700027, 50013):
        return (
            "the operator must upload the certificate of RAYPLANE_AZURE_CLIENT_CERTIFICATE_PATH to the app "
            "registration (Certificates & secrets)"
        )
    if code in _FEDERATED_CODES:
        return (
            "check the federated identity credential on Rayplane's app: its issuer, subject and audience must match "
            "the token in RAYPLANE_AZURE_FEDERATED_TOKEN_FILE exactly (case-sensitive)"
        )
    if code in (90002, 900023):
        return f"tenant {tenant} was not found: check the cloud's tenant_id"
    return _consent(config)


def entra_refusal(text: str, config: dict[str, Any]) -> tuple[str, str]:
    """(code, reason) for a token refusal whose message is ``text``: ``AADSTSnnnn`` (or
    ``AuthenticationFailed`` without one), and the advice followed by Entra's own first line."""
    code = entra_code(text)
    first = text.strip().splitlines()[0] if text.strip() else ""
    # azure-identity prefixes "<Credential>.get_token failed: Authentication failed:"; Entra's part follows.
    found = _AADSTS.search(first)
    said = first[found.start() :] if found else first
    label = f"AADSTS{code}" if code is not None else "AuthenticationFailed"
    reason = f"Entra ID gave no token for tenant {config.get('tenant_id')}: {entra_advice(code, config)}"
    return label, fit(reason, said)


def authorization_advice(message: str, resource_group_scope: str | None = None) -> str:
    """The role assignment that fixes an ``AuthorizationFailed`` whose Azure message is ``message``.

    ``resource_group_scope`` (``/subscriptions/{s}/resourceGroups/{rg}``) is where to assign;
    without it the scope is taken from the message, cut at the resource group.
    """
    found = _REFUSAL.search(message)
    if found is None:
        return "grant Rayplane's app the Contributor role on the cloud's resource group"
    scope = resource_group_scope or _resource_group_of(found.group("scope"))
    return (
        f"the app {found.group('client')} may not perform {found.group('action')}: assign it the Contributor role "
        f"on {scope} (az role assignment create --assignee {found.group('oid')} --role Contributor --scope {scope})"
    )


def _resource_group_of(scope: str) -> str:
    parts = scope.strip("/").split("/")
    return "/" + "/".join(parts[:4]) if len(parts) >= 4 and parts[2].lower() == "resourcegroups" else scope


def fit(advice: str, detail: str, limit: int = 470) -> str:
    """``advice`` followed by as much of Azure's ``detail`` as fits in ``limit`` characters, so
    truncation by a short status column (500 characters, the code and ": " included) cuts what
    Azure said, never what to do."""
    room = limit - len(advice) - len(" (Azure: )")
    if not detail or room < 20:
        return advice[:limit]
    short = detail if len(detail) <= room else detail[: room - 3] + "..."
    return f"{advice} (Azure: {short})"
