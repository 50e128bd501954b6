"""Marketplace Metering API of the emulator: per-event statuses, the 25-event limit, reads."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from emulators.azure.server import EmulatorProcess
from tests.emulators.test_marketplace_support import Marketplace, publisher_token

TENANT = str(uuid.uuid4())
CLIENT_ID = str(uuid.uuid4())


@pytest.fixture(scope="module")
def token(emulator: EmulatorProcess) -> str:
    return publisher_token(emulator, TENANT, CLIENT_ID)


@pytest.fixture
def market(emulator: EmulatorProcess, token: str) -> Iterator[Marketplace]:
    client = Marketplace(emulator, token)
    client.admin("POST", "/reset")
    try:
        yield client
    finally:
        client.admin("POST", "/reset")  # the emulator is the session's: leave no state or settings behind
        client.close()


# Fixed once, so that a test running across the turn of an hour still means the same hours.
_THIS_HOUR = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _hour(hours_ago: int, minute: int = 0) -> str:
    """An instant ``hours_ago`` whole UTC hours back, as a publisher sends it (no offset: UTC)."""
    instant = _THIS_HOUR - dt.timedelta(hours=hours_ago) + dt.timedelta(minutes=minute)
    return instant.strftime("%Y-%m-%dT%H:%M:%S")


def _event(resource: str, dimension: str = "vcpu_hours", hours_ago: int = 1, **fields: Any) -> dict[str, Any]:
    event = {
        "resourceId": resource,
        "planId": "starter",
        "dimension": dimension,
        "quantity": 12.5,
        "effectiveStartTime": _hour(hours_ago),
    }
    return {**event, **fields}


def _batch(market: Marketplace, *events: dict[str, Any]) -> list[dict[str, Any]]:
    answer = market.api("POST", "/api/batchUsageEvent", json={"request": list(events)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["count"] == len(events)
    results: list[dict[str, Any]] = body["result"]
    return results


def test_accepted_then_duplicate_for_the_same_hour(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    (accepted,) = _batch(market, _event(subscription_id))
    assert accepted["status"] == "Accepted"
    assert uuid.UUID(accepted["usageEventId"])
    assert (accepted["resourceId"], accepted["quantity"], accepted["dimension"]) == (
        subscription_id,
        12.5,
        "vcpu_hours",
    )
    assert (accepted["planId"], accepted["effectiveStartTime"]) == ("starter", _hour(1))
    assert accepted["messageTime"].endswith("Z")
    assert "error" not in accepted

    # Later in the same hour, in a new call: a duplicate that names the event accepted first.
    (duplicate,) = _batch(market, _event(subscription_id, quantity=99, effectiveStartTime=_hour(1, minute=45)))
    assert duplicate["status"] == "Duplicate"
    assert "usageEventId" not in duplicate
    assert duplicate["error"]["code"] == "Conflict"
    original = duplicate["error"]["additionalInfo"]["acceptedMessage"]
    assert (original["usageEventId"], original["quantity"], original["status"]) == (
        accepted["usageEventId"],
        12.5,
        "Duplicate",
    )

    # Another dimension or hour of the same resource is its own event; a repeat within a batch is not.
    results = _batch(
        market,
        _event(subscription_id, "gpu_hours"),
        _event(subscription_id, hours_ago=2),
        _event(subscription_id, hours_ago=2, quantity=1),
    )
    assert [r["status"] for r in results] == ["Accepted", "Accepted", "Duplicate"]
    recorded = market.admin("GET", f"/usage?resourceId={subscription_id}")["value"]
    assert sorted((e["dimension"], e["quantity"]) for e in recorded) == [
        ("gpu_hours", 12.5),
        ("vcpu_hours", 12.5),
        ("vcpu_hours", 12.5),
    ]


def test_statuses_of_rejected_events(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    pending_id, _ = market.purchase()
    results = _batch(
        market,
        _event(str(uuid.uuid4())),
        _event(pending_id),
        _event(subscription_id, "tb_scanned"),
        _event(subscription_id, planId="team"),
        _event(subscription_id, quantity=0),
        _event(subscription_id, quantity="lots"),
        _event(subscription_id, effectiveStartTime="yesterday"),
        _event(subscription_id, hours_ago=-2),
        {"planId": "starter"},
        _event(subscription_id, hours_ago=25),
    )
    assert [r["status"] for r in results] == [
        "ResourceNotFound",
        "ResourceNotActive",
        "InvalidDimension",
        "InvalidDimension",
        "InvalidQuantity",
        "BadArgument",
        "BadArgument",
        "BadArgument",
        "BadArgument",
        "Expired",
    ]
    for result in results:
        assert result["messageTime"] == "0001-01-01T00:00:00"
        assert result["error"]["message"]
        assert "usageEventId" not in result
    assert market.admin("GET", "/usage")["value"] == []


def test_suspended_subscriptions_are_not_metered(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    market.webhook(subscription_id, "Suspend")
    assert [r["status"] for r in _batch(market, _event(subscription_id))] == ["ResourceNotActive"]


def test_clock_offset_expires_an_hour(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    event = _event(subscription_id, hours_ago=2)
    market.configure(now_offset_seconds=23 * 3600)  # 25 hours later, as the Marketplace sees it
    (expired,) = _batch(market, event)
    assert expired["status"] == "Expired"
    market.configure(now_offset_seconds=0)
    assert _batch(market, event)[0]["status"] == "Accepted"


@pytest.mark.parametrize("count", [0, 26])
def test_batch_size_is_1_to_25(market: Marketplace, count: int) -> None:
    subscription_id = market.subscribed()
    events = [
        _event(subscription_id, hours_ago=1 + i % 20, dimension=("vcpu_hours", "gpu_hours")[i // 20])
        for i in range(count)
    ]
    answer = market.api("POST", "/api/batchUsageEvent", json={"request": events})
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "BadArgument"
    assert body["details"][0]["target"] == "request"
    assert market.admin("GET", "/usage")["value"] == []


def test_a_full_batch_is_accepted(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    events = [
        _event(subscription_id, hours_ago=1 + i % 20, dimension=("vcpu_hours", "gpu_hours")[i // 20]) for i in range(25)
    ]
    assert {r["status"] for r in _batch(market, *events)} == {"Accepted"}


def test_malformed_batches(market: Marketplace) -> None:
    for body in (b"not json", b"[]", b'{"events": []}'):
        answer = market.api("POST", "/api/batchUsageEvent", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, body


def test_single_usage_event(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    accepted = market.api("POST", "/api/usageEvent", json=_event(subscription_id))
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "Accepted"
    duplicate = market.api("POST", "/api/usageEvent", json=_event(subscription_id))
    assert duplicate.status_code == 409
    body = duplicate.json()
    assert (body["code"], body["additionalInfo"]["acceptedMessage"]["usageEventId"]) == (
        "Conflict",
        accepted.json()["usageEventId"],
    )
    expired = market.api("POST", "/api/usageEvent", json=_event(subscription_id, hours_ago=30))
    assert expired.status_code == 400
    assert expired.json()["details"][0]["code"] == "Expired"


def test_usage_events_read_api(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    _batch(market, _event(subscription_id, hours_ago=1, quantity=2), _event(subscription_id, hours_ago=2, quantity=3))
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).strftime("%Y-%m-%d")
    rows = market.api("GET", "/api/usageEvents", params={"usageStartDate": start}).json()
    assert {r["usageResourceId"] for r in rows} == {subscription_id}
    assert sum(r["submittedQuantity"] for r in rows) == 5
    assert sum(r["submittedCount"] for r in rows) == 2
    assert {r["reconStatus"] for r in rows} == {"Accepted"}
    assert (
        market.api("GET", "/api/usageEvents", params={"usageStartDate": start, "dimension": "gpu_hours"}).json() == []
    )
    assert market.api("GET", "/api/usageEvents").status_code == 400
