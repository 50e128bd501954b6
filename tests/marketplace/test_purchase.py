"""The landing page's flow: resolve a purchase token, activate as a signed-in Entra user."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.state import AppState
from rayplane.common.principal import Role
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import Buyer
from tests.support.factories import Factory

BASE = "/v1/marketplace"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def purchase(market: Marketplace, buyer: Buyer, plan: str = "team", **extra: Any) -> tuple[str, str]:
    body = {"planId": plan, "purchaser": buyer.party, "name": "Contoso ML", **extra}
    bought = market.admin("POST", "/purchases", body, 201)
    return bought["subscription"]["id"], bought["token"]


@pytest.fixture
async def client_at(state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    """The API, seen from a client address of its own (rate limits are per address)."""
    address = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    app = create_app(
        state.settings,
        state=dataclasses.replace(
            state, settings=state.settings.model_copy(update={"marketplace_resolve_rate_per_minute": 3})
        ),
    )
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_resolve_shows_the_purchase_and_no_secret(
    client: httpx.AsyncClient, market: Marketplace, buyer: Buyer
) -> None:
    sub_id, token = purchase(market, buyer)
    r = await client.post(f"{BASE}/resolve", json={"token": token})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == {
        "subscription_id": sub_id,
        "subscription_name": "Contoso ML",
        "offer_id": "rayplane",
        "plan_id": "team",
        "plan": body["plan"],
        "quantity": None,
        "status": "PendingFulfillmentStart",
        "purchaser_email": buyer.email,
        "purchaser_tenant_id": buyer.tid,
        "activated": False,
    }
    assert body["plan"]["quotas"]["max_clusters"] == 10
    assert token not in r.text
    assert "secret" not in r.text.lower()


@pytest.mark.parametrize("payload", [{"token": "bm90LWEtdG9rZW4="}, {"token": ""}, {}])
async def test_resolve_refuses_bad_tokens_on_the_field(
    client: httpx.AsyncClient, market: Marketplace, payload: dict[str, str]
) -> None:
    r = await client.post(f"{BASE}/resolve", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body.token"


async def test_resolve_is_rate_limited_per_address(client_at: httpx.AsyncClient, market: Marketplace) -> None:
    answers = [(await client_at.post(f"{BASE}/resolve", json={"token": "x"})) for _ in range(4)]
    assert [a.status_code for a in answers] == [422, 422, 422, 429]
    assert "client address" in answers[-1].json()["detail"]
    assert int(answers[-1].headers["retry-after"]) >= 1


async def test_unconfigured_or_refused_publisher_credentials_are_503(state: AppState, market: Marketplace) -> None:
    wrong = state.settings.model_copy(update={"marketplace_client_secret": SecretStr("wrong")})
    app = create_app(wrong, state=dataclasses.replace(state, settings=wrong))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(f"{BASE}/resolve", json={"token": "x"})
    assert r.status_code == 503, r.text
    assert "Marketplace" in r.json()["detail"]


async def test_activate_creates_the_tenant_with_the_buyer_as_owner(
    client: httpx.AsyncClient, market: Marketplace, buyer: Buyer
) -> None:
    sub_id, token = purchase(market, buyer)
    user = buyer.token()
    r = await client.post(f"{BASE}/activate", headers=bearer(user), json={"token": token})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["created"] is True
    assert body["tenant"]["entra_tenant_id"] == buyer.tid
    assert body["tenant"]["display_name"] == "Contoso ML"
    assert body["tenant"]["name"].startswith("contoso-ml")
    assert (body["subscription"]["id"], body["subscription"]["status"]) == (sub_id, "Subscribed")
    assert body["subscription"]["purchaser_email"] == buyer.email
    assert market.admin("GET", f"/subscriptions/{sub_id}")["subscription"]["saasSubscriptionStatus"] == "Subscribed"

    members = (await client.get("/v1/members", headers=bearer(user))).json()["items"]
    assert [(m["oid"], m["role"]) for m in members] == [(buyer.oid, "owner")]
    audit = (await client.get("/v1/audit-log", headers=bearer(user))).json()["items"]
    assert [(a["action"], a["target_id"], a["result"]) for a in audit] == [("marketplace.activate", sub_id, "success")]
    plan = (await client.get(f"{BASE}/subscription", headers=bearer(user))).json()
    assert plan["plan"]["id"] == "team"

    # Repeating (another click, or by subscription id) is harmless and answers the same tenant.
    for again in ({"token": token}, {"subscription_id": sub_id}):
        r2 = await client.post(f"{BASE}/activate", headers=bearer(user), json=again)
        assert r2.status_code == 200, r2.text
        assert (r2.json()["tenant"]["id"], r2.json()["created"]) == (body["tenant"]["id"], False)
    resolved = await client.post(f"{BASE}/resolve", json={"token": token})
    assert resolved.json()["activated"] is True


async def test_activate_links_the_tenant_bound_to_the_users_tid(
    client: httpx.AsyncClient, market: Marketplace, buyer: Buyer, factory: Factory
) -> None:
    tenant = await factory.tenant(tid=buyer.tid)
    admin = await factory.member(tenant, role=Role.ADMIN)
    sub_id, token = purchase(market, buyer)
    r = await client.post(f"{BASE}/activate", headers=bearer(buyer.token(oid=admin.oid)), json={"token": token})
    assert r.status_code == 200, r.text
    assert (r.json()["tenant"]["id"], r.json()["created"]) == (tenant.id, False)
    members = (await client.get("/v1/members", headers=bearer(buyer.token()))).json()["items"]
    assert {(m["oid"], m["role"]) for m in members} == {(admin.oid, "admin"), (buyer.oid, "owner")}

    # A second subscription for the same organisation is a conflict, and changes nothing.
    other, other_token = purchase(market, buyer, plan="starter")
    r2 = await client.post(f"{BASE}/activate", headers=bearer(buyer.token()), json={"token": other_token})
    assert r2.status_code == 409, r2.text
    assert sub_id in r2.json()["detail"]
    assert market.admin("GET", f"/subscriptions/{other}")["subscription"]["saasSubscriptionStatus"] == (
        "PendingFulfillmentStart"
    )


@pytest.mark.parametrize(
    ("who", "status", "fragment"),
    [
        ("api_key", 403, "Entra ID user, not an API key"),
        ("none", 401, "Authorization"),
        ("stranger_org", 403, "organisation that bought"),
        ("colleague", 403, "only the purchaser"),
        ("wrong_audience", 401, "audience"),
    ],
)
async def test_activate_refuses_anyone_but_the_buyer(
    client: httpx.AsyncClient, market: Marketplace, buyer: Buyer, factory: Factory, who: str, status: int, fragment: str
) -> None:
    sub_id, token = purchase(market, buyer)
    headers = {
        "api_key": (await factory.actor()).headers,
        "none": {},
        "stranger_org": bearer(Buyer(buyer.emulator).token()),
        "colleague": bearer(buyer.token(oid=str(uuid.uuid4()))),
        "wrong_audience": bearer(buyer.token(aud="api://someone-else")),
    }[who]
    r = await client.post(f"{BASE}/activate", headers=headers, json={"token": token})
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]
    status_now = market.admin("GET", f"/subscriptions/{sub_id}")["subscription"]["saasSubscriptionStatus"]
    assert status_now == "PendingFulfillmentStart"


async def test_activate_validates_its_body(client: httpx.AsyncClient, buyer: Buyer) -> None:
    for payload in ({}, {"token": "a", "subscription_id": str(uuid.uuid4())}, {"subscription_id": "nope"}):
        r = await client.post(f"{BASE}/activate", headers=bearer(buyer.token()), json=payload)
        assert r.status_code == 422, r.text
