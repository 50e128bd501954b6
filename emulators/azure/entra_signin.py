"""Interactive sign-in of the emulated Entra: test users, the authorize page, auth codes.

Azure surface:

* ``GET /{tenant}/oauth2/v2.0/authorize`` (``response_type=code``, ``client_id``,
  ``redirect_uri``, ``scope``, ``state``, ``nonce``, ``code_challenge`` +
  ``code_challenge_method=S256``): a plain HTML page listing the test users that may sign in
  there (the tenant's own; every tenant's for ``common``/``organizations``), each a button.
  ``POST`` of the chosen user shows the consent step (the scopes asked for, Accept and
  Cancel); ``POST`` of Accept redirects (303) to ``redirect_uri`` with ``code`` and ``state``,
  Cancel with ``error=access_denied`` (AADSTS65004), as Entra does. The answer is always in the
  query (``response_mode=query``, MSAL's default for this flow); unlike Entra, ``form_post`` and
  ``fragment`` are not offered, and ``prompt``/``login_hint`` are ignored. Bad requests that cannot be
  redirected safely (unknown client, a redirect URI the app does not list) get an error page,
  never a redirect.
* The token endpoint's ``authorization_code`` grant (:meth:`SignIn.redeem`): each code is
  redeemed at most once (the first attempt consumes it, whatever its outcome) within
  ``CODE_LIFETIME_SECONDS``, by the client it was issued to, with the same ``redirect_uri``,
  and, when the request carried a ``code_challenge``, a ``code_verifier`` whose S256 digest
  matches it (``plain`` is refused at the authorize step: Entra accepts it, Rayplane never
  needs it). Refusals carry Entra's ``invalid_grant`` codes.

Test-only surface: ``PUT|GET|DELETE /_emulator/entra/users/{tenant}/{oid}`` and
``GET /_emulator/entra/users/{tenant}`` (see :class:`TestUser`). Users live in
``DATA_DIR/entra/users.json``; pending sign-ins and codes live in memory (a restart forgets
them, as a code's ten minutes would).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from emulators.azure.entra_auth import EntraError, missing_parameter
from emulators.azure.keys import atomic_write, b64url

CODE_LIFETIME_SECONDS = 600
PENDING_LIFETIME_SECONDS = 900
ALIASES_LISTING_ALL = frozenset({"common", "organizations"})


class TestUser(BaseModel):
    """Body of ``PUT /_emulator/entra/users/{tenant}/{oid}``: a user who may sign in."""

    __test__ = False  # not a pytest class, whatever its name
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="Emulator User", min_length=1, max_length=200)
    preferred_username: str = Field(default="user@emulator.invalid", min_length=1, max_length=200)
    email: str | None = None


class StoredUser(TestUser):
    tenant: str
    oid: str


class UserDirectory:
    """Test users per tenant, persisted in ``DATA_DIR/entra/users.json``."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "entra" / "users.json"
        raw = json.loads(self._path.read_text()) if self._path.exists() else {}
        self._users = {key: StoredUser.model_validate(value) for key, value in raw.items()}

    def _save(self) -> None:
        atomic_write(self._path, json.dumps({k: u.model_dump() for k, u in self._users.items()}, indent=2).encode())

    def put(self, tenant: str, oid: str, user: TestUser) -> StoredUser:
        stored = StoredUser(**user.model_dump(), tenant=tenant.lower(), oid=oid.lower())
        self._users[f"{stored.tenant}/{stored.oid}"] = stored
        self._save()
        return stored

    def get(self, tenant: str, oid: str) -> StoredUser | None:
        return self._users.get(f"{tenant.lower()}/{oid.lower()}")

    def delete(self, tenant: str, oid: str) -> bool:
        found = self._users.pop(f"{tenant.lower()}/{oid.lower()}", None) is not None
        if found:
            self._save()
        return found

    def listed_at(self, tenant: str) -> list[StoredUser]:
        """Who may sign in at ``tenant``: its users, or everyone's at a multi-tenant alias."""
        users = [u for u in self._users.values() if tenant in ALIASES_LISTING_ALL or u.tenant == tenant]
        return sorted(users, key=lambda u: (u.tenant, u.preferred_username))


@dataclass(frozen=True)
class AuthRequest:
    """A validated authorize request, waiting for the user's choice and consent."""

    tenant: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    response_mode: str
    expires_at: float


@dataclass(frozen=True)
class AuthCode:
    request: AuthRequest
    user: StoredUser
    expires_at: float


def s256(verifier: str) -> str:
    """RFC 7636's S256 transform: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class AuthorizeRefused(Exception):
    """An authorize request answered with an error page (it must not be redirected)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.code, self.message = code, message


class SignIn:
    """The authorize endpoint's state: users, pending requests and issued codes."""

    def __init__(self, data_dir: Path) -> None:
        self.users = UserDirectory(data_dir)
        self._pending: dict[str, AuthRequest] = {}
        self._codes: dict[str, AuthCode] = {}

    # -- authorize ----------------------------------------------------------------------
    def start(self, tenant: str, params: dict[str, str], redirect_uris: list[str] | None) -> str:
        """Validate an authorize request; the id of the pending sign-in (for the page's forms).

        ``redirect_uris`` are the registered app's (None: any https or loopback http URI).
        """
        client_id = params.get("client_id", "")
        if not client_id:
            raise AuthorizeRefused(900144, "The request body must contain the following parameter: 'client_id'.")
        redirect_uri = params.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if not parts.netloc or not (parts.scheme == "https" or loopback) or parts.fragment:
            raise AuthorizeRefused(50011, f"The redirect URI '{redirect_uri}' is not a valid reply address.")
        if redirect_uris is not None and redirect_uri not in redirect_uris:
            message = (
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
                f"configured for the application '{client_id}'."
            )
            raise AuthorizeRefused(50011, message)
        if params.get("response_type") != "code":
            raise AuthorizeRefused(900144, "Only response_type=code is supported by the emulator's authorize endpoint.")
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if challenge is not None and method != "S256":
            raise AuthorizeRefused(501491, "Invalid code_challenge_method: the emulator accepts S256 only (RFC 7636).")
        scopes = tuple(params.get("scope", "").split())
        if "openid" not in scopes:
            raise AuthorizeRefused(900144, "The request must contain the scope 'openid'.")
        request = AuthRequest(
            tenant=tenant,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            state=params.get("state"),
            nonce=params.get("nonce"),
            code_challenge=challenge,
            response_mode=params.get("response_mode", "query"),
            expires_at=time.time() + PENDING_LIFETIME_SECONDS,
        )
        self._expire()
        pending = b64url(os.urandom(24))
        self._pending[pending] = request
        return pending

    def pending(self, pending_id: str) -> AuthRequest:
        request = self._pending.get(pending_id)
        if request is None or request.expires_at < time.time():
            raise AuthorizeRefused(50058, "The sign-in session expired or is unknown. Start the sign-in again.")
        return request

    def user_for(self, request: AuthRequest, user_key: str) -> StoredUser:
        tenant, _, oid = user_key.partition("/")
        user = self.users.get(tenant, oid)
        if user is None or user not in self.users.listed_at(request.tenant):
            raise AuthorizeRefused(50034, "The user account does not exist in this directory.")
        return user

    def finish(self, pending_id: str, user_key: str, accepted: bool) -> str:
        """The URL to send the browser to: the redirect URI with a code, or with the refusal."""
        request = self.pending(pending_id)
        user = self.user_for(request, user_key)
        del self._pending[pending_id]
        query: dict[str, str]
        if accepted:
            code = b64url(os.urandom(32))
            self._codes[code] = AuthCode(request, user, time.time() + CODE_LIFETIME_SECONDS)
            query = {"code": code}
        else:
            query = {
                "error": "access_denied",
                "error_description": "AADSTS65004: User declined to consent to access the app.",
            }
        if request.state is not None:
            query["state"] = request.state
        sep = "&" if urlsplit(request.redirect_uri).query else "?"
        return f"{request.redirect_uri}{sep}{urlencode(query)}"

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, v in self._pending.items() if v.expires_at < now]:
            del self._pending[key]
        for key in [k for k, v in self._codes.items() if v.expires_at < now]:
            del self._codes[key]

    # -- token --------------------------------------------------------------------------
    def redeem(self, tenant: str, form: dict[str, str], client_id: str | None) -> AuthCode:
        """Consume the form's ``code`` and check it against the form; raise EntraError."""
        raw = form.get("code")
        if not raw:
            raise missing_parameter("code")
        code = self._codes.pop(raw, None)  # single use: consumed by the first attempt
        if code is None:
            message = "The provided authorization code or refresh token has expired or was already redeemed."
            raise EntraError(400, "invalid_grant", 54005, message)
        request = code.request
        if code.expires_at < time.time():
            raise EntraError(400, "invalid_grant", 70008, "The provided authorization code has expired.")
        if client_id != request.client_id:
            message = "The authorization code was issued to a different client."
            raise EntraError(400, "invalid_grant", 70000, message)
        if request.tenant != tenant and tenant not in ALIASES_LISTING_ALL and tenant != code.user.tenant:
            raise EntraError(400, "invalid_grant", 50020, "The authorization code was issued in another tenant.")
        if form.get("redirect_uri") != request.redirect_uri:
            message = "The reply URL in the request does not match the one the authorization code was issued for."
            raise EntraError(400, "invalid_grant", 500112, message)
        if request.code_challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                raise missing_parameter("code_verifier")
            if not hmac.compare_digest(s256(verifier), request.code_challenge):
                message = "The code_verifier does not match the code_challenge supplied in the authorization request."
                raise EntraError(400, "invalid_grant", 501481, message)
        return code


# -- the pages ---------------------------------------------------------------------------
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"></head>
<body><main><h1>{title}</h1>{body}</main></body></html>
"""


def page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), body=body)


def choose_page(action: str, pending_id: str, request: AuthRequest, users: list[StoredUser]) -> str:
    """Step one: pick an account (one form per user, so each is a button)."""
    if not users:
        body = "<p>No test users can sign in here. Add one with PUT /_emulator/entra/users/{tenant}/{oid}.</p>"
        return page("Sign in", body)
    items = []
    for user in users:
        items.append(
            f'<li><form method="post" action="{html.escape(action)}">'
            f'<input type="hidden" name="pending" value="{html.escape(pending_id)}">'
            f'<input type="hidden" name="step" value="account">'
            f'<button type="submit" name="user" value="{html.escape(user.tenant)}/{html.escape(user.oid)}">'
            f"{html.escape(user.name)} ({html.escape(user.preferred_username)})</button></form></li>"
        )
    body = (
        f"<p>Pick an account to sign in to application {html.escape(request.client_id)}.</p>"
        f'<ul class="accounts">{"".join(items)}</ul>'
    )
    return page("Sign in", body)


def consent_page(action: str, pending_id: str, request: AuthRequest, user: StoredUser) -> str:
    """Step two: the permissions asked for, Accept or Cancel."""
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in request.scopes)
    hidden = (
        f'<input type="hidden" name="pending" value="{html.escape(pending_id)}">'
        f'<input type="hidden" name="user" value="{html.escape(user.tenant)}/{html.escape(user.oid)}">'
        '<input type="hidden" name="step" value="consent">'
    )
    body = (
        f"<p>Signed in as {html.escape(user.name)} ({html.escape(user.preferred_username)}).</p>"
        f"<p>Application {html.escape(request.client_id)} asks for these permissions:</p><ul>{scopes}</ul>"
        f'<form method="post" action="{html.escape(action)}">{hidden}'
        '<button type="submit" name="consent" value="accept">Accept</button> '
        '<button type="submit" name="consent" value="cancel">Cancel</button></form>'
    )
    return page("Permissions requested", body)


def user_claims(user: StoredUser) -> dict[str, Any]:
    """The claims the token endpoint puts in a signed-in user's tokens."""
    claims: dict[str, Any] = {
        "tid": user.tenant,
        "oid": user.oid,
        "name": user.name,
        "preferred_username": user.preferred_username,
    }
    if user.email:
        claims["email"] = user.email
    return claims
