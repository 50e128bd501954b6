"""The Azure Marketplace landing page: ``/marketplace/landing?token=…``.

- The first request moves the purchase token from the URL into the server-side session and
  redirects to ``/marketplace/landing``: the token never stays in the address bar, the
  history or a Referer.
- The page resolves the token through the same core as ``POST /v1/marketplace/resolve``
  (:func:`rayplane.marketplace.purchase.resolve`) and shows the offer, plan, quantity and the
  buyer's organisation. A token the Marketplace does not recognise (forged, expired) gets a
  plain page saying so, with status 400.
- Not signed in: a "Sign in to activate" button (sign-in returns here). Signed in: an
  "Activate" form (CSRF-checked) that calls :func:`rayplane.marketplace.purchase.activate` with
  the session's access token, exactly as ``POST /v1/marketplace/activate`` does with a bearer
  token, then forgets the purchase token and lands in the console.
- Already activated: straight to the console (through sign-in when needed).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from api import ratelimit
from api.deps import Session, app_state
from api.routers.marketplace import audit_activation, fulfillment
from rayplane.common.errors import InvalidInput
from rayplane.marketplace import purchase
from web.forms import checked_form, simulation_enabled, visitor
from web.render import error_page, page
from web.sessions import SessionStore

router = APIRouter(include_in_schema=False)
TOKEN_KEY = "landing_token"  # noqa: S105 - the session key it is kept under, not a secret
PATH = "/marketplace/landing"


@router.get(PATH, name="web.landing")
async def landing(request: Request, db: Session, token: str | None = None) -> Response:
    who = await visitor(request, db)
    store, session = who.store, who.session
    if token is not None:
        session.data[TOKEN_KEY] = token[:4096]
        response: Response = RedirectResponse(PATH, status_code=303)
        await store.save(session, response)
        return response
    kept = session.data.get(TOKEN_KEY)
    if not isinstance(kept, str):
        if who.user is not None:
            return RedirectResponse("/console", status_code=303)
        detail = "This page is opened from the Azure portal after a purchase; no purchase was found in this visit."
        simulate = simulation_enabled(app_state(request).settings)
        response = error_page(request, 400, detail, title="No purchase to show", csrf=session.csrf, simulate=simulate)
        await store.save(session, response)
        return response
    # Each view asks the Marketplace: the same per-address limit as POST /v1/marketplace/resolve.
    state = app_state(request)
    address = request.client.host if request.client else "unknown"
    limit = state.settings.marketplace_resolve_rate_per_minute
    await ratelimit.hit(state.redis, f"marketplace:{address}", limit, scope="this client address")
    try:
        resolved = await purchase.resolve(db, await fulfillment(request), kept)
    except InvalidInput:
        session.data.pop(TOKEN_KEY, None)
        detail = (
            "The Azure Marketplace does not recognise this purchase link, or it has expired. "
            "Open Rayplane again from your subscription in the Azure portal."
        )
        response = error_page(request, 400, detail, title="This purchase link is not valid")
        await store.save(session, response)
        return response
    if resolved.activated:
        session.data.pop(TOKEN_KEY, None)
        target = "/console" if who.user is not None else "/auth/sign-in?next=/console"
        response = RedirectResponse(target, status_code=303)
    else:
        response = page(request, "landing.html", user=who.user, csrf=session.csrf, purchase=resolved)
    await store.save(session, response)
    return response


@router.post(PATH + "/activate", name="web.activate")
async def activate(request: Request, db: Session) -> Response:
    store = SessionStore.of(request)
    session = await store.load(request)
    await checked_form(request, session)
    token, access = session.data.get(TOKEN_KEY), session.data.get("access_token")
    if not isinstance(token, str):
        return RedirectResponse("/console", status_code=303)
    if session.user is None or not isinstance(access, str):
        return RedirectResponse(PATH, status_code=303)  # its "Sign in to activate" (a form may not leave)
    state = app_state(request)
    done = await purchase.activate(
        db,
        await fulfillment(request),
        state.entra,
        authorization=f"Bearer {access}",
        token=token,
        subscription_id=None,
    )
    audit_activation(request, done)  # as the API's activation is audited
    session.data.pop(TOKEN_KEY, None)
    response = RedirectResponse("/console", status_code=303)
    await store.save(session, response)
    return response
