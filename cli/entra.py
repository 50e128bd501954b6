"""Entra ID sign-in for the CLI: the device-code flow through an MSAL public client.

MSAL's token cache (access and refresh tokens) is kept next to the config file in
``msal-cache.json``, mode 0600, so later commands get fresh tokens silently until the
refresh token lapses; then they ask for ``rayplane login --device-code`` again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cli.config import ConfigError, config_path, write_private

DEFAULT_AUTHORITY = "https://login.microsoftonline.com/organizations"
#: Hosts that MSAL may validate through Microsoft's instance discovery.
MICROSOFT_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


class EntraLoginError(ConfigError):
    """The sign-in did not produce a token (declined, expired, misconfigured): exit code 2."""


def cache_path() -> Path:
    return config_path().parent / "msal-cache.json"


def _load_cache() -> Any:
    import msal

    cache = msal.SerializableTokenCache()
    path = cache_path()
    if path.exists():
        cache.deserialize(path.read_text(encoding="utf-8"))
    return cache


def _save_cache(cache: Any) -> None:
    if cache.has_state_changed:
        write_private(cache_path(), cache.serialize())


def public_app(client_id: str, authority: str, cache: Any) -> Any:
    """An MSAL public client; instance discovery only for Microsoft's own hosts."""
    import msal

    known = (urlparse(authority).hostname or "") in MICROSOFT_HOSTS
    return msal.PublicClientApplication(
        client_id, authority=authority, token_cache=cache, instance_discovery=None if known else False
    )


def device_code_login(
    client_id: str, authority: str, scope: str, show: Callable[[str], None]
) -> tuple[str, dict[str, Any]]:
    """Run the device-code flow; ``show`` gets the "open this page, enter this code" text.

    Returns the access token and the profile fields that let later commands refresh it.
    """
    cache = _load_cache()
    app = public_app(client_id, authority, cache)
    flow = app.initiate_device_flow(scopes=[scope])
    if "user_code" not in flow:
        raise EntraLoginError(_describe(flow, "could not start the device-code flow"))
    show(str(flow["message"]))
    result = app.acquire_token_by_device_flow(flow)
    if "access_token" not in result:
        raise EntraLoginError(_describe(result, "sign-in failed"))
    _save_cache(cache)
    claims = result.get("id_token_claims") or {}
    account = claims.get("preferred_username") or claims.get("upn") or claims.get("oid")
    fields = {"auth": "entra", "authority": authority, "client_id": client_id, "scope": scope, "account": account}
    return str(result["access_token"]), fields


def token_provider(profile: dict[str, Any], profile_name: str) -> Callable[[], str]:
    """A callable giving a valid access token for an ``auth: entra`` profile (cached per process)."""
    token: list[str] = []

    def get() -> str:
        if token:
            return token[0]
        cache = _load_cache()
        app = public_app(str(profile["client_id"]), str(profile["authority"]), cache)
        accounts = app.get_accounts(username=profile.get("account")) or app.get_accounts()
        result = app.acquire_token_silent([str(profile["scope"])], account=accounts[0]) if accounts else None
        _save_cache(cache)
        if not result or "access_token" not in result:
            raise EntraLoginError(
                f"the sign-in of profile {profile_name!r} has expired: run `rayplane login --device-code`"
            )
        token.append(str(result["access_token"]))
        return token[0]

    return get


def forget(profile: dict[str, Any]) -> None:
    """Remove the profile's account (and its tokens) from the MSAL cache."""
    if not cache_path().exists() or profile.get("auth") != "entra":
        return
    cache = _load_cache()
    app = public_app(str(profile["client_id"]), str(profile["authority"]), cache)
    for account in app.get_accounts(username=profile.get("account")):
        app.remove_account(account)
    _save_cache(cache)


def _describe(result: dict[str, Any], fallback: str) -> str:
    error = result.get("error_description") or result.get("error") or fallback
    return " ".join(str(error).split())


def settings_from_env(
    authority: str | None, client_id: str | None, scope: str | None
) -> tuple[str, str | None, str | None]:
    """Options, else ``RAYPLANE_LOGIN_AUTHORITY``/``_CLIENT_ID``/``_SCOPE``, else defaults."""
    return (
        authority or os.environ.get("RAYPLANE_LOGIN_AUTHORITY") or DEFAULT_AUTHORITY,
        client_id or os.environ.get("RAYPLANE_LOGIN_CLIENT_ID"),
        scope or os.environ.get("RAYPLANE_LOGIN_SCOPE"),
    )
