"""Entra ID v2 endpoints of the Azure emulator, laid out as ``login.microsoftonline.com`` does.

Azure surface (``{tenant}`` is a GUID or ``common``/``organizations``/``consumers``):

* ``GET  /{tenant}/v2.0/.well-known/openid-configuration`` -- OpenID metadata.
* ``GET  /{tenant}/discovery/v2.0/keys`` -- JWKS of every published signing key.
* ``POST /{tenant}/oauth2/v2.0/token`` -- grants ``client_credentials`` (client secret or
  client assertion, see :mod:`emulators.azure.entra_auth`),
  ``urn:ietf:params:oauth:grant-type:device_code`` and ``refresh_token``. Errors carry
  Entra's JSON shape with an AADSTS code.
* ``POST /{tenant}/oauth2/v2.0/devicecode`` -- starts a device-code flow.
* ``GET|POST /{tenant}/oauth2/v2.0/authorize`` -- the interactive sign-in (account, consent,
  redirect with a code; see :mod:`emulators.azure.entra_signin`), whose codes the token
  endpoint's ``authorization_code`` grant redeems once, with PKCE.
* ``GET  /{tenant}/discovery/instance`` -- AAD instance discovery (api-version 1.1), as MSAL
  asks it of an authority host it does not know: the OpenID configuration URL of the tenant
  named in the ``authorization_endpoint`` parameter, and this host as its only alias. MSAL asks
  ``login.microsoftonline.com`` unless the client names this endpoint
  (``instance_discovery=<url>``) or turns discovery off, which the Azure CLI does with
  ``core.instance_discovery=false`` (``AZURE_CORE_INSTANCE_DISCOVERY``).

Test-only surface under ``/_emulator/entra`` (not Azure): mint tokens, list/rotate/retire
keys, read and change what the token endpoint accepts (``strict`` among it), approve or deny
device codes, add test users who can sign in (``PUT|GET|DELETE /_emulator/entra/users/{tenant}/{oid}``,
``GET /_emulator/entra/users/{tenant}``), and register applications: ``PUT|GET|DELETE /_emulator/entra/applications/
{tenant}/{client_id}`` and ``GET /_emulator/entra/applications/{tenant}`` (see
:mod:`emulators.azure.entra_apps`).

Modules: this one (metadata, JWKS, routes), :mod:`emulators.azure.entra_auth` (client
authentication, error bodies, config), :mod:`emulators.azure.entra_grants` (grants).
"""

from __future__ import annotations

import html
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from emulators.azure.entra_apps import Application, RegisteredApp
from emulators.azure.entra_auth import ConfigUpdate, EntraConfig, EntraError
from emulators.azure.entra_grants import HOME_TENANT, OIDC_SCOPES, TENANT_ALIASES, DeviceApproval, TokenService
from emulators.azure.entra_signin import AuthorizeRefused, StoredUser, TestUser, choose_page, consent_page, page
from emulators.azure.keys import DEFAULT_AUDIENCE, DEFAULT_CLIENT_ID, TOKEN_LIFETIME_SECONDS, KeyStore, issuer_for

_CLAIMS_SUPPORTED = [
    *("sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username"),
    *("name", "tid", "ver", "at_hash", "c_hash", "email"),
]


class MintRequest(BaseModel):
    """Body of ``POST /_emulator/entra/tokens``; see :meth:`KeyStore.mint`."""

    model_config = ConfigDict(extra="forbid")

    tenant: str = HOME_TENANT
    claims: dict[str, Any] = Field(default_factory=dict)
    client_id: str = DEFAULT_CLIENT_ID
    audience: str = DEFAULT_AUDIENCE
    lifetime_seconds: int = TOKEN_LIFETIME_SECONDS
    alg: str = "RS256"
    kid: str | None = None
    untrusted: bool = False


class EntraService:
    """State and behaviour behind the Entra routes for one origin and data dir."""

    def __init__(self, origin: str, data_dir: Path) -> None:
        self.origin = origin.rstrip("/")
        self.keys = KeyStore(data_dir)
        self.tokens = TokenService(self.origin, data_dir, self.keys)
        self.auth = self.tokens.auth

    @staticmethod
    def check_tenant(tenant: str) -> str:
        """``tenant`` lower-cased if it is a GUID or an alias, else Entra's invalid_tenant."""
        lowered = tenant.lower()
        if lowered in TENANT_ALIASES:
            return lowered
        try:
            return str(uuid.UUID(lowered))
        except ValueError:
            message = f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."
            raise EntraError(400, "invalid_tenant", 90002, message) from None

    def metadata(self, tenant: str) -> dict[str, Any]:
        """OpenID configuration of ``tenant`` (aliases publish the ``{tenantid}`` issuer)."""
        base = f"{self.origin}/{tenant}"
        alias = tenant in TENANT_ALIASES
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": sorted(OIDC_SCOPES),
            "issuer": issuer_for(self.origin, "{tenantid}" if alias else tenant),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.origin}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": _CLAIMS_SUPPORTED,
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": None if alias else "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def jwks(self, tenant: str) -> dict[str, Any]:
        """The JWKS, each key naming the issuer it signs for."""
        alias = tenant in TENANT_ALIASES
        return self.keys.jwks(issuer_for(self.origin, "{tenantid}" if alias else tenant))


# -- HTTP ------------------------------------------------------------------------------
async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


def _correlation(request: Request) -> str:
    return request.headers.get("client-request-id") or str(uuid.uuid4())


def create_router(service: EntraService) -> APIRouter:
    """The Azure-facing Entra routes. Include it last: its paths start with ``/{tenant}``."""
    router = APIRouter(tags=["entra"])

    @router.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def openid_configuration(tenant: str, request: Request) -> JSONResponse:
        try:
            return JSONResponse(service.metadata(service.check_tenant(tenant)))
        except EntraError as exc:
            return exc.response(_correlation(request))

    @router.get("/{tenant}/discovery/instance")
    async def instance(tenant: str, request: Request) -> JSONResponse:
        # The tenant asked about is the one in the client's authorization_endpoint, as in Entra.
        asked = urlsplit(request.query_params.get("authorization_endpoint", "")).path.strip("/").split("/")[0]
        try:
            tenant = service.check_tenant(asked or tenant)
        except EntraError as exc:
            return exc.response(_correlation(request))
        host = request.url.netloc
        body = {
            "tenant_discovery_endpoint": f"{service.origin}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
        return JSONResponse(body)

    @router.get("/{tenant}/discovery/v2.0/keys")
    async def keys(tenant: str, request: Request) -> JSONResponse:
        try:
            return JSONResponse(service.jwks(service.check_tenant(tenant)))
        except EntraError as exc:
            return exc.response(_correlation(request))

    @router.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        try:
            tenant = service.check_tenant(tenant)
            body = service.tokens.token(tenant, await _form(request), request.headers.get("authorization"))
        except EntraError as exc:
            return exc.response(_correlation(request))
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def refused(status: int, code: int, message: str) -> HTMLResponse:
        body = f"<p>AADSTS{code}: {html.escape(message)}</p>"
        return HTMLResponse(page("Sign in failed", body), status_code=status)

    @router.get("/{tenant}/oauth2/v2.0/authorize")
    async def authorize(tenant: str, request: Request) -> Response:
        signin = service.tokens.signin
        try:
            tenant = service.check_tenant(tenant)
            params = dict(request.query_params)
            app = service.auth.registered(tenant, params["client_id"]) if params.get("client_id") else None
            pending = signin.start(tenant, params, app.redirect_uris if app else None)
        except EntraError as exc:
            return refused(exc.status, exc.code, exc.message)
        except AuthorizeRefused as exc:
            return refused(400, exc.code, exc.message)
        page_html = choose_page(request.url.path, pending, signin.pending(pending), signin.users.listed_at(tenant))
        return HTMLResponse(page_html)

    @router.post("/{tenant}/oauth2/v2.0/authorize")
    async def authorize_step(tenant: str, request: Request) -> Response:
        signin = service.tokens.signin
        form = await _form(request)
        pending, user_key = form.get("pending", ""), form.get("user", "")
        try:
            auth_request = signin.pending(pending)
            if form.get("step") == "account":
                user = signin.user_for(auth_request, user_key)
                return HTMLResponse(consent_page(request.url.path, pending, auth_request, user))
            target = signin.finish(pending, user_key, accepted=form.get("consent") == "accept")
        except AuthorizeRefused as exc:
            return refused(400, exc.code, exc.message)
        return RedirectResponse(target, status_code=303)

    @router.post("/{tenant}/oauth2/v2.0/devicecode")
    async def devicecode(tenant: str, request: Request) -> JSONResponse:
        try:
            return JSONResponse(service.tokens.start_device_flow(service.check_tenant(tenant), await _form(request)))
        except EntraError as exc:
            return exc.response(_correlation(request))

    return router


def create_admin_router(service: EntraService) -> APIRouter:
    """Test-only routes under ``/_emulator/entra`` (JSON in, JSON out; 400/404 on bad input)."""
    router = APIRouter(prefix="/_emulator/entra", tags=["emulator-entra"])

    @router.post("/tokens")
    async def mint(body: MintRequest) -> dict[str, str]:
        try:
            token = service.keys.mint(
                body.claims,
                origin=service.origin,
                tenant=body.tenant,
                client_id=body.client_id,
                audience=body.audience,
                lifetime_seconds=body.lifetime_seconds,
                kid=body.kid,
                alg=body.alg,
                untrusted=body.untrusted,
            )
        except KeyError:
            raise HTTPException(400, f"unknown kid {body.kid!r}") from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"access_token": token}

    @router.get("/keys")
    async def list_keys() -> dict[str, Any]:
        return {"current": service.keys.current_kid, "kids": service.keys.kids()}

    @router.post("/rotate")
    async def rotate() -> dict[str, Any]:
        kid = service.keys.rotate()
        return {"kid": kid, "kids": service.keys.kids()}

    @router.delete("/keys/{kid}")
    async def retire(kid: str) -> dict[str, Any]:
        try:
            service.keys.retire(kid)
        except KeyError:
            raise HTTPException(404, f"unknown kid {kid!r}") from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"current": service.keys.current_kid, "kids": service.keys.kids()}

    @router.get("/config")
    async def get_config() -> EntraConfig:
        return service.auth.config

    @router.post("/config")
    async def set_config(body: ConfigUpdate) -> EntraConfig:
        return service.auth.update(body)

    def _guid_tenant(tenant: str) -> str:
        try:
            checked = service.check_tenant(tenant)
        except EntraError as exc:
            raise HTTPException(400, exc.message) from None
        if checked in TENANT_ALIASES:
            raise HTTPException(400, "applications are registered in a tenant id, not an alias")
        return checked

    def _guid(value: str) -> str:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise HTTPException(400, f"{value!r} is not a GUID") from None

    @router.put("/applications/{tenant}/{client_id}")
    async def put_application(tenant: str, client_id: str, body: Application) -> RegisteredApp:
        return service.auth.apps.put(_guid_tenant(tenant), client_id, body)

    @router.get("/applications/{tenant}")
    async def list_applications(tenant: str) -> dict[str, Any]:
        apps = service.auth.apps.in_tenant(_guid_tenant(tenant))
        return {"value": [app.model_dump(mode="json") for app in apps]}

    @router.get("/applications/{tenant}/{client_id}")
    async def get_application(tenant: str, client_id: str) -> RegisteredApp:
        app = service.auth.apps.get(_guid_tenant(tenant), client_id)
        if app is None:
            raise HTTPException(404, f"no application {client_id!r} in tenant {tenant!r}")
        return app

    @router.delete("/applications/{tenant}/{client_id}")
    async def delete_application(tenant: str, client_id: str) -> dict[str, bool]:
        if not service.auth.apps.delete(_guid_tenant(tenant), client_id):
            raise HTTPException(404, f"no application {client_id!r} in tenant {tenant!r}")
        return {"deleted": True}

    @router.put("/users/{tenant}/{oid}")
    async def put_user(tenant: str, oid: str, body: TestUser) -> StoredUser:
        return service.tokens.signin.users.put(_guid_tenant(tenant), _guid(oid), body)

    @router.get("/users/{tenant}")
    async def list_users(tenant: str) -> dict[str, Any]:
        users = service.tokens.signin.users.listed_at(_guid_tenant(tenant))
        return {"value": [user.model_dump() for user in users]}

    @router.get("/users/{tenant}/{oid}")
    async def get_user(tenant: str, oid: str) -> StoredUser:
        user = service.tokens.signin.users.get(_guid_tenant(tenant), oid)
        if user is None:
            raise HTTPException(404, f"no user {oid!r} in tenant {tenant!r}")
        return user

    @router.delete("/users/{tenant}/{oid}")
    async def delete_user(tenant: str, oid: str) -> dict[str, bool]:
        if not service.tokens.signin.users.delete(_guid_tenant(tenant), oid):
            raise HTTPException(404, f"no user {oid!r} in tenant {tenant!r}")
        return {"deleted": True}

    @router.post("/devicecode/approve")
    async def approve(body: DeviceApproval) -> dict[str, str]:
        try:
            service.tokens.approve_device_code(body)
        except KeyError:
            raise HTTPException(404, f"no pending device code {body.user_code!r}") from None
        return {"status": "declined" if body.deny else "approved"}

    return router
