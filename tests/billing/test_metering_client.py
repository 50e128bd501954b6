"""The Metering API client against a scripted HTTP server (Azure's side, not ours): results
matched back to events, Duplicate's accepted event read, whole-batch failures classified."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from rayplane.marketplace.client import FulfillmentClient
from rayplane.marketplace.metering_client import MeteringClient, MeteringError, UsageEvent
from rayplane.settings import Settings

HOUR = datetime(2026, 11, 26, 9, tzinfo=UTC)


def client(settings: Settings, handler: httpx.MockTransport) -> MeteringClient:
    http = FulfillmentClient(settings, token=lambda: "token", transport=handler, retries=2, base_backoff=0)
    return MeteringClient(settings, fulfillment=http)


def event(dimension: str = "vcpu_hours") -> UsageEvent:
    return UsageEvent("Sub-A", "starter", dimension, Decimal("2.500000"), HOUR)


def test_results_are_matched_by_their_echo_and_duplicates_name_the_accepted_event(settings: Settings) -> None:
    sent: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        assert request.url.params["api-version"] == "2018-08-31"
        assert request.headers["authorization"] == "Bearer token"
        gpu, vcpu = body["request"][1], body["request"][0]
        accepted = {"usageEventId": "u-1", "messageTime": "2026-11-26T10:00:01.5Z", "quantity": 2.5, **vcpu}
        duplicate = {
            "status": "Duplicate",
            "messageTime": "0001-01-01T00:00:00",
            **gpu,
            "error": {"code": "Conflict", "additionalInfo": {"acceptedMessage": {**accepted, "usageEventId": "u-0"}}},
        }
        # Out of order on purpose: matched by resource, dimension and hour.
        return httpx.Response(200, json={"count": 2, "result": [duplicate, {**accepted, "status": "Accepted"}]})

    results = client(settings, httpx.MockTransport(answer)).post_batch([event("vcpu_hours"), event("gpu_hours")])
    assert sent[0]["request"] == [
        {
            "resourceId": "Sub-A",
            "planId": "starter",
            "dimension": d,
            "quantity": 2.5,
            "effectiveStartTime": "2026-11-26T09:00:00Z",
        }
        for d in ("vcpu_hours", "gpu_hours")
    ]
    assert [(r.status, r.usage_event_id) for r in results] == [("Accepted", "u-1"), ("Duplicate", "u-0")]
    assert results[0].message_time == datetime(2026, 11, 26, 10, 0, 1, 500000, tzinfo=UTC)
    assert results[1].accepted_quantity == 2.5


def test_overload_is_retried_and_then_retriable(settings: Settings) -> None:
    calls = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"code": "ServiceUnavailable", "message": "busy"})

    with pytest.raises(MeteringError) as err:
        client(settings, httpx.MockTransport(busy)).post_batch([event()])
    assert err.value.retriable
    assert len(calls) == 3


def test_a_refused_batch_is_not_retriable(settings: Settings) -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": "BadArgument", "message": "One or more errors have occurred."})

    with pytest.raises(MeteringError) as err:
        client(settings, httpx.MockTransport(bad)).post_batch([event()])
    assert not err.value.retriable


def test_a_missing_result_is_reported_as_such(settings: Settings) -> None:
    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"count": 0, "result": []})

    (result,) = client(settings, httpx.MockTransport(short)).post_batch([event()])
    assert result.status == "Missing"


def test_batches_hold_1_to_25_events(settings: Settings) -> None:
    c = client(settings, httpx.MockTransport(lambda r: httpx.Response(500)))
    for events in ([], [event()] * 26):
        with pytest.raises(ValueError, match="1 to 25"):
            c.post_batch(events)
