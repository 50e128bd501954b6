"""Webhook authentication against the live API: every failure is a 401 and stores nothing.

The emulator's webhook sender calls the API over HTTP with tokens signed by its Entra keys,
valid or broken on purpose; a few more forgeries are minted with the same keys in-process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from emulators.azure.keys import KeyStore
from emulators.azure.server import EmulatorProcess
from rayplane.marketplace.client import FulfillmentClient
from rayplane.marketplace.models import WebhookEvent
from rayplane.marketplace.token import MARKETPLACE_RESOURCE
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import PUBLISHER_APP, PUBLISHER_TENANT, LiveApi, cleanup, delivered

FAULTS = ["missing", "wrong_aud", "wrong_tid", "wrong_azp", "wrong_iss", "expired", "not_yet_valid", "bad_signature"]


def stored(sessions: sessionmaker[Session], operation_id: str) -> int:
    with sessions() as session:
        stmt = select(func.count()).select_from(WebhookEvent).where(WebhookEvent.operation_id == operation_id)
        return int(session.execute(stmt).scalar_one())


@pytest.fixture
def subscription(
    market: Marketplace, live_api: LiveApi, fulfillment: FulfillmentClient, committed_sessions: sessionmaker[Session]
) -> Iterator[str]:
    """An active subscription whose webhooks go to the live API (events cleaned up after)."""
    market.configure(webhook_url=live_api.webhook_url)
    sub_id = market.purchase(planId="starter")[0]
    fulfillment.activate(sub_id, "starter")
    yield sub_id
    cleanup(committed_sessions, tenants=[], subscriptions=[sub_id])


@pytest.mark.parametrize("fault", FAULTS)
def test_each_broken_token_is_refused_and_nothing_is_stored(
    market: Marketplace, subscription: str, committed_sessions: sessionmaker[Session], fault: str
) -> None:
    sent = market.webhook(subscription, "Renew", token=fault)
    operation_id = sent["operation"]["id"]
    assert delivered(market, operation_id) == [401]
    assert stored(committed_sessions, operation_id) == 0


def test_a_valid_token_is_accepted_once(
    market: Marketplace, subscription: str, committed_sessions: sessionmaker[Session]
) -> None:
    operation_id = market.webhook(subscription, "Renew", copies=3)["operation"]["id"]
    assert delivered(market, operation_id, copies=3) == [200, 200, 200]
    assert max(d["attempts"][0]["ms"] for d in market.deliveries(operationId=operation_id)) < 1000
    assert stored(committed_sessions, operation_id) == 1


def forge(emulator: EmulatorProcess, **options: Any) -> str:
    claims = options.pop("claims", {})
    return KeyStore(emulator.data_dir).mint(
        claims,
        origin=emulator.origin,
        tenant=PUBLISHER_TENANT,
        client_id=options.pop("client_id", MARKETPLACE_RESOURCE),
        audience=options.pop("audience", PUBLISHER_APP),
        **options,
    )


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda e: forge(e, alg="none"), "algorithm"),
        (lambda e: forge(e, alg="HS256"), "algorithm"),
        (lambda e: forge(e, claims={"azp": None, "appid": str(uuid.uuid4())}), "azp/appid"),
        (lambda e: forge(e, claims={"exp": int(time.time()) - 120, "iat": int(time.time()) - 3700}), "expired"),
        (lambda e: forge(e, audience="api://rayplane-test"), "audience"),
        (lambda e: "Basic " + forge(e), "Authorization"),
        (lambda e: "not-a-jwt", "JWT"),
    ],
)
def test_forged_tokens_minted_with_the_emulators_keys(
    live_api: LiveApi, emulator: EmulatorProcess, committed_sessions: sessionmaker[Session], token: Any, reason: str
) -> None:
    operation_id = str(uuid.uuid4())
    value: str = token(emulator)
    header = value if value.startswith("Basic ") else f"Bearer {value}"
    payload = {"id": operation_id, "subscriptionId": str(uuid.uuid4()), "action": "Renew"}
    r = httpx.post(live_api.webhook_url, json=payload, headers={"Authorization": header}, timeout=10)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert reason in r.json()["detail"]
    assert stored(committed_sessions, operation_id) == 0


def test_an_authenticated_but_malformed_body_is_422_and_stores_nothing(
    live_api: LiveApi, emulator: EmulatorProcess, committed_sessions: sessionmaker[Session]
) -> None:
    operation_id = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {forge(emulator)}"}
    r = httpx.post(live_api.webhook_url, json={"id": operation_id, "action": "Renew"}, headers=headers, timeout=10)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body.subscriptionId"
    assert stored(committed_sessions, operation_id) == 0
    # Unauthenticated, even a broken body is only ever a 401.
    garbage = httpx.post(live_api.webhook_url, content=b"{nope", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 401
