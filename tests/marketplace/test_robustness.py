"""What the documented Marketplace does that Rayplane must take in stride: offset-less times,
tolerant webhook bodies, Subscribe without the landing page, failures that end, answers of an
unexpected shape, and a deployment without the Marketplace configured."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.state import AppState
from emulators.azure.server import EmulatorProcess
from rayplane.identity.models import Member
from rayplane.logs import configure_logging
from rayplane.marketplace import processing, store
from rayplane.marketplace.client import FulfillmentClient, FulfillmentError
from rayplane.marketplace.models import WebhookEvent
from rayplane.marketplace.processing import EventProcessor
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import Buyer, LiveApi, cleanup
from tests.marketplace.test_processing import World, world  # noqa: F401 - the fixture is used here too
from tests.marketplace.test_webhook_auth import forge, stored


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []


# -- 13: offset-less timeStamp values are UTC ---------------------------------------------------


def test_an_offset_less_time_stamp_is_utc_and_the_operation_is_applied(world: World) -> None:  # noqa: F811
    assert world.deliver("Renew").status == "done"  # the subscription now has a last_event_at
    later = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    outcome = world.deliver("Suspend", timeStamp=later.strftime("%Y-%m-%dT%H:%M:%S"))
    assert outcome.status == "done", outcome
    sub, tenant, _ = world.read()
    assert sub.status == "Suspended"
    assert tenant.status == "suspended"
    assert sub.last_event_at == later


# -- 14: any failure is an attempt; the last one ends the event failed, with the alert ------


class BuggyClient(FulfillmentClient):
    """The real client whose operation reads fail the way a bug would (not a Marketplace error)."""

    def get_operation(self, subscription_id: str, operation_id: str) -> Any:
        raise RuntimeError("bug in /srv/rayplane/marketplace.py")


def test_an_unexpected_error_counts_as_an_attempt_and_ends_failed(
    world: World,  # noqa: F811
    settings: Settings,
    json_logs: io.StringIO,
) -> None:
    operation_id = world.act("Renew")
    world.receive(operation_id)
    buggy = BuggyClient(settings)
    try:
        processor = EventProcessor(world.sessions, buggy)
        outcomes = [processor.process(operation_id) for _ in range(processing.MAX_ATTEMPTS)]
    finally:
        buggy.close()
    assert [o.status for o in outcomes] == ["retry"] * (processing.MAX_ATTEMPTS - 1) + ["failed"]
    event = world.event(operation_id)
    assert event.status == "failed"
    assert event.attempts == processing.MAX_ATTEMPTS
    assert event.result is not None
    assert "unexpected error: RuntimeError" in event.result
    assert "/srv/rayplane" not in event.result
    alerts = [json.loads(x) for x in json_logs.getvalue().splitlines() if "marketplace_event_failed" in x]
    assert [a["level"] for a in alerts] == ["error"]


# -- 15: intake accepts any authenticated body naming an operation and a subscription -------


def test_the_webhook_tolerates_empty_unknown_and_malformed_fields(
    live_api: LiveApi, emulator: EmulatorProcess, committed_sessions: sessionmaker[Session]
) -> None:
    headers = {"Authorization": f"Bearer {forge(emulator)}"}
    subscription_id = str(uuid.uuid4())
    bodies: list[dict[str, Any]] = [
        {"action": "ChangeQuantity", "quantity": "", "planId": 7, "timeStamp": "2018-12-01T00:00:00", "x": [1]},
        {"action": "ChangePlan", "quantity": None, "timeStamp": "not a time", "subscription": "?"},
        {"purchaseToken": None, "status": ""},
        {"action": "Renew\u0000", "note": "a\u0000b"},
    ]
    ids = [str(uuid.uuid4()) for _ in bodies]
    try:
        for operation_id, body in zip(ids, bodies, strict=True):
            r = httpx.post(
                live_api.webhook_url,
                json={"id": operation_id, "subscriptionId": subscription_id, **body},
                headers=headers,
                timeout=10,
            )
            assert r.status_code == 200, (body, r.text)
            assert stored(committed_sessions, operation_id) == 1
        with committed_sessions() as session:
            first = store.load_event(session, ids[0])
            assert first is not None
            assert first.time_stamp == datetime(2018, 12, 1, tzinfo=UTC)
            assert first.action == "ChangeQuantity"
            assert first.payload["quantity"] == ""
    finally:
        cleanup(committed_sessions, tenants=[], subscriptions=[subscription_id])


# -- 16: list_operations never passes off a strange answer as "none" -------------------------


def test_list_operations_raises_on_an_answer_of_another_shape(settings: Settings) -> None:
    def odd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"value": []})

    client = FulfillmentClient(settings, transport=httpx.MockTransport(odd), retries=0)
    try:
        with pytest.raises(FulfillmentError) as caught:
            client.list_operations(str(uuid.uuid4()))
    finally:
        client.close()
    assert caught.value.code == "UnexpectedAnswer"


# -- 16: Subscribe (no landing page) creates or links the tenant -------------------------------


def _subscribe(market: Marketplace, sessions: sessionmaker[Session], processor: EventProcessor, buyer: Buyer) -> Any:
    sub_id = market.purchase(planId="team", purchaser=buyer.party, name="Contoso Direct")[0]
    direct = World(market, sessions, processor, sub_id, tenant_id="")
    outcome = direct.deliver("Subscribe")
    with sessions() as session:
        return outcome, store.load_subscription(session, sub_id)


def test_subscribe_creates_the_tenant_with_the_buyer_as_owner(
    market: Marketplace, worker_sessions: sessionmaker[Session], fulfillment: FulfillmentClient, buyer: Buyer
) -> None:
    processor = EventProcessor(worker_sessions, fulfillment)
    outcome, sub = _subscribe(market, worker_sessions, processor, buyer)
    assert outcome.status == "done", outcome
    assert "created tenant" in outcome.result
    assert sub is not None
    assert sub.status == "Subscribed"
    assert sub.plan_id == "team"
    with worker_sessions() as session:
        tenant = session.get(Tenant, sub.tenant_id)
        assert tenant is not None
        assert tenant.entra_tenant_id == buyer.tid
        assert tenant.status == "active"
        owners = session.execute(select(Member).where(Member.tenant_id == tenant.id)).scalars().all()
        assert [(m.oid, m.role) for m in owners] == [(buyer.oid, "owner")]


def test_subscribe_links_the_tenant_already_bound_to_the_buyers_entra_tenant(
    market: Marketplace, worker_sessions: sessionmaker[Session], fulfillment: FulfillmentClient, buyer: Buyer
) -> None:
    with worker_sessions.begin() as session:
        existing = Tenant(
            id="ten_" + uuid.uuid4().hex[:26],
            name="t-" + uuid.uuid4().hex[:12],
            display_name="Contoso",
            entra_tenant_id=buyer.tid,
            status="read_only",
        )
        session.add(existing)
    processor = EventProcessor(worker_sessions, fulfillment)
    outcome, sub = _subscribe(market, worker_sessions, processor, buyer)
    assert outcome.status == "done", outcome
    assert sub is not None
    assert sub.tenant_id == existing.id
    with worker_sessions() as session:
        tenant = session.get(Tenant, existing.id)
        assert tenant is not None
        assert tenant.status == "active"
        # The event is settled: a later delivery of it is skipped, not applied twice.
        event = session.execute(select(WebhookEvent).where(WebhookEvent.subscription_id == sub.id)).scalar_one()
        assert event.status == "done"


# -- 17: no Marketplace configured is said, not "try again" -----------------------------------


async def _resolve(state: AppState, settings: Settings) -> httpx.Response:
    app = create_app(settings, state=dataclasses.replace(state, settings=settings, marketplace=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        return await client.post("/v1/marketplace/resolve", json={"token": "from-the-landing-page"})


async def test_resolve_without_a_marketplace_says_it_is_not_configured(state: AppState, settings: Settings) -> None:
    unconfigured = settings.model_copy(
        update={"marketplace_client_id": None, "marketplace_publisher_tenant_id": None, "azure_client_id": None}
    )
    r = await _resolve(state, unconfigured)
    assert r.status_code == 503, r.text
    assert "Marketplace integration is not configured" in r.json()["detail"]
    assert "try again" not in r.text

    refused = settings.model_copy(update={"marketplace_client_secret": SecretStr("not-the-secret")})
    r = await _resolve(state, refused)
    assert r.status_code == 503, r.text
    assert "not configured correctly" in r.json()["detail"]
    assert "try again" not in r.text
