"""Access tokens for the Marketplace SaaS Fulfillment and Metering APIs.

Client credentials of Rayplane's publisher app in the publisher's Entra tenant, for the
Marketplace API's resource id. MSAL keeps the token in its in-memory cache and hands the
same one back until it is close to expiry, so callers simply ask before every request.
"""

from __future__ import annotations

import threading
from typing import Any

import msal  # type: ignore[import-untyped, unused-ignore]
import requests

from rayplane.settings import Settings

MARKETPLACE_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
MARKETPLACE_SCOPE = f"{MARKETPLACE_RESOURCE}/.default"


class MarketplaceTokenError(RuntimeError):
    """Entra refused the publisher app's credentials; the message carries Entra's error."""


class _PinnedSession(requests.Session):
    """A requests session that always verifies TLS with one CA bundle.

    requests lets ``REQUESTS_CA_BUNDLE`` (set on many systems) override a session's own
    ``verify``, so MSAL's ``verify=`` alone would trust the system bundle instead of ours;
    passing ``verify`` on every request is what takes precedence.
    """

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.ca_bundle
        return super().request(*args, **kwargs)


class MarketplaceToken:
    """Thread-safe source of bearer tokens for the Marketplace APIs."""

    def __init__(self, settings: Settings) -> None:
        client_id = settings.marketplace_client_id or settings.azure_client_id
        secret = settings.marketplace_client_secret or settings.azure_client_secret
        tenant = settings.marketplace_publisher_tenant_id
        if not client_id or secret is None or not tenant:
            raise MarketplaceTokenError(
                "set RAYPLANE_MARKETPLACE_PUBLISHER_TENANT_ID and the publisher app's client id and secret"
            )
        kwargs: dict[str, Any] = {}
        if settings.entra_authority != "https://login.microsoftonline.com":
            kwargs["instance_discovery"] = False
        if settings.ca_bundle:
            kwargs["http_client"] = _PinnedSession(str(settings.ca_bundle))
        self._app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=secret.get_secret_value(),
            authority=f"{settings.entra_authority.rstrip('/')}/{tenant}",
            **kwargs,
        )
        self._lock = threading.Lock()

    def get(self) -> str:
        """A valid access token (from MSAL's cache while it has more than a few minutes left)."""
        with self._lock:
            result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[MARKETPLACE_SCOPE])
        token = result.get("access_token")
        if not token:
            raise MarketplaceTokenError(f"{result.get('error')}: {result.get('error_description', '')[:300]}")
        return str(token)
