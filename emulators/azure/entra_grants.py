"""Grants of the emulated Entra token endpoint (``/{tenant}/oauth2/v2.0/token``).

* ``client_credentials``: one ``<resource>/.default`` scope; an app-only token with
  ``aud`` = resource (see :func:`emulators.azure.keys.app_token_claims`); only for a tenant
  GUID, not an alias.
* ``urn:ietf:params:oauth:grant-type:device_code``: codes from the devicecode endpoint live
  in memory, pending until approved or denied through the test API.
* ``authorization_code``: codes from the authorize page (:mod:`emulators.azure.entra_signin`),
  redeemed once, with PKCE, the redirect URI and the client checked; the id token echoes the
  request's ``nonce``.
* ``refresh_token``: refresh tokens are JWTs signed by the emulator's keys, so they survive
  restarts while their key stays published.

Failures raise :class:`emulators.azure.entra_auth.EntraError`.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field

from emulators.azure.entra_auth import ClientAuthenticator, EntraError, missing_parameter
from emulators.azure.entra_signin import SignIn, user_claims
from emulators.azure.keys import ENTRA_NAMESPACE, TOKEN_LIFETIME_SECONDS, KeyStore, app_token_claims, b64url, issuer_for

TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})
#: ``tid`` of users who sign in through a tenant alias without naming a tenant of their own.
HOME_TENANT = str(uuid.uuid5(ENTRA_NAMESPACE, "home-tenant"))
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRAPH_AUDIENCE = "00000003-0000-0000-c000-000000000000"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
EXPIRES_IN = TOKEN_LIFETIME_SECONDS - 1
REFRESH_LIFETIME_SECONDS = 90 * 24 * 3600
DEVICE_CODE_LIFETIME_SECONDS = 900
_REFRESH_TYP = "emulator-refresh"
_INVALID_GRANT = (400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")


class DeviceApproval(BaseModel):
    """Body of ``POST /_emulator/entra/devicecode/approve``: the user's claims, or a denial."""

    model_config = ConfigDict(extra="forbid")

    user_code: str
    claims: dict[str, Any] = Field(default_factory=dict)
    deny: bool = False


@dataclass
class _DeviceCode:
    client_id: str
    tenant: str
    scopes: list[str]
    user_code: str
    expires_at: float
    status: str = "pending"
    user: dict[str, Any] = field(default_factory=dict)


def _user_audience(scopes: list[str]) -> tuple[str, str]:
    """(aud, scp) of a delegated token for ``scopes``; one resource per request, as in Entra."""
    audiences: set[str] = set()
    names: list[str] = []
    for scope in scopes:
        if scope in OIDC_SCOPES:
            continue
        resource, _, name = scope.rpartition("/") if "/" in scope else (GRAPH_AUDIENCE, "", scope)
        if name == ".default":
            name = "user_impersonation"
        if resource.rstrip("/") == "https://graph.microsoft.com":
            resource = GRAPH_AUDIENCE
        audiences.add(resource)
        names.append(name)
    if len(audiences) > 1:
        message = "The scope parameter is not valid because it contains more than one resource."
        raise EntraError(400, "invalid_scope", 28000, message)
    if not audiences:
        return GRAPH_AUDIENCE, "openid profile email"
    return audiences.pop(), " ".join(names)


class TokenService:
    """The token and devicecode endpoints of every tenant at ``origin``."""

    def __init__(self, origin: str, data_dir: Path, keys: KeyStore) -> None:
        self.origin = origin.rstrip("/")
        self.keys = keys
        self.auth = ClientAuthenticator(data_dir, keys)
        self._device_codes: dict[str, _DeviceCode] = {}
        self.signin = SignIn(data_dir)

    def token(self, tenant: str, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token endpoint's success body for ``form``, or raise :class:`EntraError`."""
        grant = form.get("grant_type")
        if not grant:
            raise missing_parameter("grant_type")
        if grant == "client_credentials":
            return self._client_credentials(tenant, form, authorization)
        if grant in (DEVICE_CODE_GRANT, "device_code"):
            return self._device_code_grant(tenant, form, authorization)
        if grant == "refresh_token":
            return self._refresh_grant(tenant, form, authorization)
        if grant == "authorization_code":
            return self._auth_code_grant(tenant, form, authorization)
        raise EntraError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")

    def _client_credentials(self, tenant: str, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        client = self.auth.authenticate(tenant, form, authorization, required=True)
        assert client is not None
        if tenant in TENANT_ALIASES:
            message = (
                "No tenant-identifying information found in either the request or implied by any provided credentials."
            )
            raise EntraError(400, "invalid_request", 50059, message)
        scopes = form.get("scope", "").split()
        if not scopes:
            raise missing_parameter("scope")
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            message = (
                f"The provided value for scope {' '.join(scopes)} is not valid. Client credential"
                " flows must have a scope value with /.default suffixed to the resource identifier."
            )
            raise EntraError(400, "invalid_scope", 1002012, message)
        client_id, acr = client
        claims = app_token_claims(
            origin=self.origin,
            tenant=tenant,
            client_id=client_id,
            audience=scopes[0].removesuffix("/.default"),
            client_auth=acr,
        )
        return {
            "token_type": "Bearer",
            "expires_in": EXPIRES_IN,
            "ext_expires_in": EXPIRES_IN,
            "access_token": self.keys.sign(claims),
        }

    def start_device_flow(self, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
        """Body of the devicecode endpoint; the code waits for ``approve_device_code``."""
        client_id, scope = form.get("client_id"), form.get("scope")
        if not client_id:
            raise missing_parameter("client_id")
        if not scope:
            raise missing_parameter("scope")
        self.auth.registered(tenant, client_id)  # a strict tenant refuses an unknown public client too
        _user_audience(scope.split())
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        device_code = b64url(os.urandom(48))
        self._device_codes[device_code] = _DeviceCode(
            client_id, tenant, scope.split(), user_code, time.time() + DEVICE_CODE_LIFETIME_SECONDS
        )
        uri = f"{self.origin}/_emulator/entra/devicelogin"
        return {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": uri,
            "expires_in": DEVICE_CODE_LIFETIME_SECONDS,
            "interval": self.auth.config.device_code_interval,
            "message": (
                f"To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."
            ),
        }

    def approve_device_code(self, approval: DeviceApproval) -> None:
        """Sign the user in (or decline) for the pending code ``approval.user_code``."""
        for code in self._device_codes.values():
            if code.user_code == approval.user_code and code.status == "pending":
                code.status = "declined" if approval.deny else "approved"
                code.user = dict(approval.claims)
                return
        raise KeyError(approval.user_code)

    def _device_code_grant(self, tenant: str, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        client = self.auth.authenticate(tenant, form, authorization, required=False)
        device_code = form.get("device_code")
        if not device_code:
            raise missing_parameter("device_code")
        code = self._device_codes.get(device_code)
        client_id = client[0] if client else form.get("client_id")
        if code is None or code.client_id != client_id:
            raise EntraError(*_INVALID_GRANT)
        if time.time() > code.expires_at:
            del self._device_codes[device_code]
            message = "The provided 'device_code' is not valid. This device code has expired."
            raise EntraError(400, "expired_token", 70020, message)
        if code.status == "pending":
            message = "OAuth 2.0 device flow error. Authorization is pending. Continue polling."
            raise EntraError(400, "authorization_pending", 70016, message)
        del self._device_codes[device_code]
        if code.status == "declined":
            raise EntraError(400, "authorization_declined", 70000, "The user declined the authorization request.")
        home = code.tenant if code.tenant not in TENANT_ALIASES else HOME_TENANT
        user = {"tid": home, **code.user}
        return self._user_tokens(code.client_id, code.scopes, user, form.get("client_info") == "1")

    def _auth_code_grant(self, tenant: str, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        client = self.auth.authenticate(tenant, form, authorization, required=False)
        client_id = client[0] if client else form.get("client_id")
        if not client_id:
            raise missing_parameter("client_id")
        code = self.signin.redeem(tenant, dict(form), client_id)
        scopes = form.get("scope", "").split() or list(code.request.scopes)
        if "openid" not in scopes:
            scopes.append("openid")
        user = user_claims(code.user)
        return self._user_tokens(client_id, scopes, user, form.get("client_info") == "1", nonce=code.request.nonce)

    def _refresh_grant(self, tenant: str, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        client = self.auth.authenticate(tenant, form, authorization, required=False)
        client_id = client[0] if client else form.get("client_id")
        refresh = form.get("refresh_token")
        if not refresh:
            raise missing_parameter("refresh_token")
        if not client_id:
            raise missing_parameter("client_id")
        try:
            claims = self.keys.verify(refresh, audience=client_id)
        except jwt.PyJWTError:
            claims = {}
        user = claims.get("user")
        if claims.get("typ") != _REFRESH_TYP or not isinstance(user, dict):
            raise EntraError(*_INVALID_GRANT)
        if tenant not in TENANT_ALIASES and tenant != user.get("tid"):
            raise EntraError(400, "invalid_grant", 50020, "The refresh token was issued to a different tenant.")
        scopes = form.get("scope", "").split() or str(claims.get("scp", "")).split()
        return self._user_tokens(client_id, scopes, user, form.get("client_info") == "1")

    def _user_tokens(
        self, client_id: str, scopes: list[str], user: dict[str, Any], client_info: bool, nonce: str | None = None
    ) -> dict[str, Any]:
        """Access (+ id with ``openid``, + refresh with ``offline_access``) tokens for ``user``."""
        audience, scp = _user_audience(scopes)
        user.setdefault("oid", str(uuid.uuid5(ENTRA_NAMESPACE, "user:default")))
        user.setdefault("name", "Emulator User")
        user.setdefault("preferred_username", "user@emulator.invalid")
        tid, oid = str(user["tid"]), str(user["oid"])
        now = int(time.time())
        issuer = issuer_for(self.origin, tid)
        common = {"iss": issuer, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME_SECONDS, "tid": tid}
        pairwise = str(uuid.uuid5(ENTRA_NAMESPACE, f"pairwise:{client_id}:{oid}"))
        access = {
            **common,
            "aud": audience,
            "aio": b64url(os.urandom(24)),
            "azp": client_id,
            "azpacr": "0",
            "rh": "0.emulator.",
            "scp": scp,
            "sub": pairwise,
            "uti": b64url(os.urandom(16)),
            "ver": "2.0",
            **user,
        }
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s != "offline_access"),
            "expires_in": EXPIRES_IN,
            "ext_expires_in": EXPIRES_IN,
            "access_token": self.keys.sign(access),
        }
        if "openid" in scopes:
            id_claims: dict[str, Any] = {
                k: user[k] for k in ("name", "oid", "preferred_username", "email") if k in user
            }
            if nonce is not None:
                id_claims["nonce"] = nonce
            body["id_token"] = self.keys.sign({**common, **id_claims, "aud": client_id, "sub": pairwise, "ver": "2.0"})
        if "offline_access" in scopes:
            body["refresh_token"] = self.keys.sign(
                {
                    "typ": _REFRESH_TYP,
                    "iss": issuer,
                    "aud": client_id,
                    "iat": now,
                    "exp": now + REFRESH_LIFETIME_SECONDS,
                    "jti": str(uuid.uuid4()),
                    "scp": " ".join(scopes),
                    "user": user,
                }
            )
        if client_info:
            body["client_info"] = b64url(json.dumps({"uid": oid, "utid": tid}).encode())
        return body
