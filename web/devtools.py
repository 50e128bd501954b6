"""Dev mode only: "Simulate a purchase", the whole Marketplace flow without Azure.

``POST /dev/simulate-purchase`` (CSRF-checked) asks the Azure emulator's Marketplace (its
test-control API, beside the Fulfillment API that ``RAYPLANE_MARKETPLACE_API_URL`` names) for a
new purchase by a new buyer: a user added to the emulator's Entra in an organisation of its
own, so the purchase can be activated by signing in as them. The browser's session is signed
out and given the purchase token, then sent to the landing page, as Azure would send it there
(without the token in any URL). Answers 404 outside dev mode or when the Marketplace is
Microsoft's.
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import RedirectResponse, Response

from api.deps import app_state
from rayplane.settings import Settings
from web.forms import checked_form, simulation_enabled
from web.landing import PATH, TOKEN_KEY
from web.sessions import SessionStore

router = APIRouter(include_in_schema=False)


def _client(settings: Settings, base: str) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(settings.ca_bundle)) if settings.ca_bundle else True
    )
    return httpx.AsyncClient(base_url=base.rstrip("/"), verify=verify, timeout=15)


async def new_purchase(settings: Settings) -> dict[str, Any]:
    """A new buyer in the emulator's Entra and their purchase; the emulator's answer."""
    tid, oid = str(uuid.uuid4()), str(uuid.uuid4())
    label = secrets.token_hex(2)
    email = f"buyer-{label}@{tid[:8]}.example"
    async with _client(settings, settings.entra_authority) as entra:
        body = {"name": f"Demo Buyer {label}", "preferred_username": email, "email": email}
        (await entra.put(f"/_emulator/entra/users/{tid}/{oid}", json=body)).raise_for_status()
    async with _client(settings, settings.marketplace_api_url) as market:
        party = {"emailId": email, "objectId": oid, "tenantId": tid}
        order = {"planId": "starter", "quantity": 1, "name": f"Demo purchase {label}", "purchaser": party}
        answer = await market.post("/_emulator/marketplace/purchases", json=order)
        answer.raise_for_status()
        bought: dict[str, Any] = answer.json()
        return bought


@router.post("/dev/simulate-purchase", name="web.simulate_purchase")
async def simulate_purchase(request: Request) -> Response:
    settings = app_state(request).settings
    if not simulation_enabled(settings):
        raise HTTPException(404)
    store = SessionStore.of(request)
    session = await store.load(request)
    await checked_form(request, session)
    bought = await new_purchase(settings)
    session.clear()  # the buyer signs in next, not whoever clicked
    session.data[TOKEN_KEY] = bought["token"]
    response = RedirectResponse(PATH, status_code=303)
    await store.save(session, response)
    return response
