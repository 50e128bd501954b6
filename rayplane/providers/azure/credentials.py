"""Tokens into a customer's Azure, for each way a customer can grant Rayplane access.

* ``app_consent``: the customer's admin consented to Rayplane's multi-tenant app and gave it
  a role on the resource group; tokens come from the customer's tenant with the app's
  certificate (preferred) or secret.
* ``federated``: no secret at all; a federated token (workload identity) is exchanged with
  ``ClientAssertionCredential``, also in the customer's tenant.
* ``lighthouse``: the customer delegated the resource group to Rayplane's tenant through
  Azure Lighthouse, so tokens come from Rayplane's home tenant.

Tokens live in azure-identity's in-memory cache only; nothing here is ever persisted.
Settings carry the authority and a CA bundle, so the emulator and Azure differ in nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.identity import CertificateCredential, ClientAssertionCredential, ClientSecretCredential

from rayplane.providers.base import TerminalError
from rayplane.settings import Settings

ARM_SCOPE = "https://management.azure.com/.default"
AUTH_MODES = ("app_consent", "federated", "lighthouse")


def _authority(settings: Settings) -> str:
    # azure-identity takes the authority as a host (optionally with a port), not a URL.
    parts = urlsplit(settings.entra_authority)
    return parts.netloc or settings.entra_authority


def _common(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"authority": _authority(settings)}
    if settings.entra_authority != "https://login.microsoftonline.com":
        # A non-Azure authority (the emulator) has no instance discovery endpoint.
        kwargs["disable_instance_discovery"] = True
    if settings.ca_bundle:
        kwargs["connection_verify"] = str(settings.ca_bundle)
    return kwargs


def credential_for(settings: Settings, config: dict[str, Any]) -> TokenCredential:
    """The credential for one cloud's ``config`` (``auth_mode``, ``tenant_id``).

    Raises ``TerminalError`` (code ``RayplaneNotConfigured``) when this deployment lacks what
    the mode needs: that is the operator's to fix, not the customer's.
    """
    mode = config.get("auth_mode", "app_consent")
    client_id = settings.azure_client_id
    if not client_id:
        raise TerminalError("RAYPLANE_AZURE_CLIENT_ID is not set on this deployment", code="RayplaneNotConfigured")
    tenant = config.get("tenant_id", "")
    if mode == "lighthouse":
        tenant = settings.azure_home_tenant_id or ""
        if not tenant:
            raise TerminalError("RAYPLANE_AZURE_HOME_TENANT_ID is needed for lighthouse", code="RayplaneNotConfigured")
    kwargs = _common(settings)
    if mode == "federated":
        token_file = settings.azure_federated_token_file
        if token_file is None:
            raise TerminalError(
                "RAYPLANE_AZURE_FEDERATED_TOKEN_FILE is needed for federated clouds", code="RayplaneNotConfigured"
            )

        def assertion(path: Path = token_file) -> str:
            # Re-read on every exchange: the projected token file is rotated underneath us.
            return path.read_text(encoding="utf-8").strip()

        return ClientAssertionCredential(tenant, client_id, assertion, **kwargs)
    if settings.azure_client_certificate_path is not None:
        return CertificateCredential(tenant, client_id, str(settings.azure_client_certificate_path), **kwargs)
    if settings.azure_client_secret is not None:
        return ClientSecretCredential(tenant, client_id, settings.azure_client_secret.get_secret_value(), **kwargs)
    raise TerminalError(
        "set RAYPLANE_AZURE_CLIENT_CERTIFICATE_PATH or RAYPLANE_AZURE_CLIENT_SECRET", code="RayplaneNotConfigured"
    )
