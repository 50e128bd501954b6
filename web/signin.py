"""Sign-in with Entra ID: MSAL's authorization-code flow with PKCE, server side.

- ``GET /auth/sign-in?next=/path``: MSAL's ``initiate_auth_code_flow`` makes the state, nonce
  and PKCE verifier; the flow is kept in the server-side session (never in the browser) and
  the browser goes to Entra's authorize page. ``next`` must be a local path
  (:func:`web.security.safe_next`), else the console.
- ``GET /auth/callback``: ``acquire_token_by_auth_code_flow`` checks the state against the
  kept flow, redeems the code once with the verifier, and checks the id token (issuer,
  audience, nonce, lifetime; it came straight from Entra's token endpoint over TLS, which
  OpenID Connect accepts in place of a signature check). The session is then *rotated* (new
  id, new CSRF token: a session id planted before sign-in is worthless) and holds the
  user's ``tid``, ``oid``, name, and the access token for Rayplane's API scope (kept
  server-side only; the landing page presents it to the Marketplace activation, which verifies
  it as the API does).
- ``POST /auth/sign-out`` (CSRF-checked): the session is deleted.

Roles are not kept in the session: every page reads the member row for (``tid``, ``oid``)
through :func:`rayplane.identity.auth.member_principal`, as the API's bearer sign-in does, so a
role change or a removal applies on the next page.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any
from urllib.parse import parse_qsl

import msal  # type: ignore[import-untyped, unused-ignore]
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from api.deps import app_state
from rayplane.marketplace.token import _PinnedSession
from rayplane.settings import Settings
from web.forms import simulation_enabled
from web.render import error_page, page
from web.security import check_csrf, safe_next
from web.sessions import SessionStore

router = APIRouter(include_in_schema=False)
MICROSOFT = "https://login.microsoftonline.com"
# The code comes back in the query, not by form_post (MSAL warns about it on every flow):
# Entra's form_post is a cross-site POST, on which the browser withholds the SameSite=Lax
# session cookie that holds the flow. The code is single-use and bound to the PKCE verifier
# kept server-side, and the callback redirects at once (Referrer-Policy: same-origin).
warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended", category=UserWarning)


def web_scope(settings: Settings) -> str:
    if settings.web_scope:
        return settings.web_scope
    if not settings.entra_audience:
        raise RuntimeError("set RAYPLANE_ENTRA_AUDIENCE (or RAYPLANE_WEB_SCOPE) for the console's sign-in")
    return settings.entra_audience[0].rstrip("/") + "/user_impersonation"


def build_msal(settings: Settings) -> Any:
    """The console's confidential client (multi-tenant authority by default)."""
    client_id = settings.web_client_id or settings.azure_client_id
    secret = settings.web_client_secret or settings.azure_client_secret
    if not client_id or secret is None:
        raise RuntimeError("set RAYPLANE_WEB_CLIENT_ID and RAYPLANE_WEB_CLIENT_SECRET for the console's sign-in")
    kwargs: dict[str, Any] = {}
    if settings.entra_authority.rstrip("/") != MICROSOFT:
        kwargs["instance_discovery"] = False
    if settings.ca_bundle:
        kwargs["http_client"] = _PinnedSession(str(settings.ca_bundle))
    authority = f"{settings.entra_authority.rstrip('/')}/{settings.web_authority_tenant}"
    return msal.ConfidentialClientApplication(
        client_id, client_credential=secret.get_secret_value(), authority=authority, **kwargs
    )


async def _msal(request: Request) -> Any:
    app = getattr(request.app.state, "web_msal", None)
    if app is None:
        # MSAL fetches the authority's metadata while it is built: not on the event loop.
        app = await asyncio.to_thread(build_msal, app_state(request).settings)
        request.app.state.web_msal = app
    return app


def callback_url(request: Request) -> str:
    public = app_state(request).settings.public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return f"{base}/auth/callback"


def sign_in_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/auth/sign-in?next={next_path}", status_code=303)


@router.get("/auth/sign-in", name="web.sign_in")
async def sign_in(request: Request, next: str | None = None) -> Response:
    store = SessionStore.of(request)
    session = await store.load(request)
    try:
        client = await _msal(request)
    except RuntimeError as exc:
        return error_page(request, 503, f"Sign-in is not configured on this server: {exc}.")
    scope = web_scope(app_state(request).settings)
    flow = await asyncio.to_thread(
        client.initiate_auth_code_flow, [scope], redirect_uri=callback_url(request), response_mode="query"
    )
    session.data["flow"] = flow
    session.data["next"] = safe_next(next)
    response = RedirectResponse(flow["auth_uri"], status_code=303)
    await store.save(session, response)
    return response


@router.get("/auth/callback", name="web.callback")
async def callback(request: Request) -> Response:
    store = SessionStore.of(request)
    session = await store.load(request)
    flow = session.data.pop("flow", None)
    if not isinstance(flow, dict):
        return error_page(request, 400, "This sign-in was not started here, or it expired. Sign in again.")
    reply = dict(request.query_params)
    if "error" in reply:
        detail = reply.get("error_description") or reply["error"]
        return error_page(request, 401, f"Entra ID did not sign you in: {detail}", title="Not signed in")
    client = await _msal(request)
    result: dict[str, Any] = await asyncio.to_thread(client.acquire_token_by_auth_code_flow, flow, reply)
    claims = result.get("id_token_claims")
    if "error" in result or not isinstance(claims, dict) or not claims.get("tid") or not claims.get("oid"):
        detail = str(result.get("error_description") or result.get("error") or "no id token")[:300]
        return error_page(request, 401, f"The sign-in could not be completed ({detail}).", title="Not signed in")
    next_path = safe_next(session.data.pop("next", None))
    session.rotate()  # against fixation: the signed-in session never has the id it had before
    session.data["user"] = {
        "tid": str(claims["tid"]).lower(),
        "oid": str(claims["oid"]),
        "name": str(claims.get("name") or claims.get("preferred_username") or "signed-in user")[:200],
        "username": str(claims.get("preferred_username") or "")[:200],
    }
    session.data["access_token"] = result.get("access_token")
    response = RedirectResponse(next_path, status_code=303)
    await store.save(session, response)
    return response


@router.get("/auth/signed-out", name="web.signed_out")
async def signed_out(request: Request) -> Response:
    store = SessionStore.of(request)
    session = await store.load(request)
    simulate = simulation_enabled(app_state(request).settings)
    response = page(request, "signed_out.html", csrf=session.csrf, simulate=simulate)
    await store.save(session, response)
    return response


@router.post("/auth/sign-out", name="web.sign_out")
async def sign_out(request: Request) -> Response:
    store = SessionStore.of(request)
    session = await store.load(request)
    fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    check_csrf(session.csrf, fields.get("csrf"))
    session.clear()
    # Not straight back to sign-in: a form's redirect chain may not leave this origin
    # (CSP form-action), and a signed-out user should see that they are.
    response = RedirectResponse("/auth/signed-out", status_code=303)
    await store.save(session, response)
    return response
