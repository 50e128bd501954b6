"""The SaaS Fulfillment client against the emulator over HTTPS (MSAL tokens from its Entra ID),
and its retry policy against a scripted server."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from rayplane.marketplace.client import FulfillmentClient, FulfillmentError
from rayplane.settings import Settings
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import Buyer


def test_resolve_activate_get_and_plans(market: Marketplace, fulfillment: FulfillmentClient, buyer: Buyer) -> None:
    bought = market.admin("POST", "/purchases", {"planId": "team", "purchaser": buyer.party, "name": "Contoso"}, 201)
    resolved = fulfillment.resolve(bought["token"])
    sub_id = bought["subscription"]["id"]
    assert (resolved.id, resolved.subscription_name, resolved.offer_id, resolved.plan_id) == (
        sub_id,
        "Contoso",
        "rayplane",
        "team",
    )
    assert resolved.subscription.purchaser.email_id == buyer.email
    assert resolved.subscription.purchaser.tenant_id == buyer.tid
    assert resolved.subscription.saas_subscription_status == "PendingFulfillmentStart"

    with pytest.raises(FulfillmentError) as caught:
        fulfillment.resolve("not-a-token")
    assert caught.value.status == 400
    assert not caught.value.retriable

    fulfillment.activate(sub_id, "team")
    fulfillment.activate(sub_id, "team")  # harmless to repeat
    got = fulfillment.get(sub_id)
    assert got.saas_subscription_status == "Subscribed"
    assert got.term.start_date is not None
    assert [p.plan_id for p in fulfillment.list_plans(sub_id)] == ["starter", "team", "enterprise"]

    with pytest.raises(FulfillmentError) as missing:
        fulfillment.get(str(uuid.uuid4()))
    assert missing.value.status == 404


def test_list_follows_next_links(market: Marketplace, fulfillment: FulfillmentClient) -> None:
    market.configure(list_page_size=2)
    bought = {market.purchase(planId="starter")[0] for _ in range(5)}
    assert {s.id for s in fulfillment.list_subscriptions()} == bought


def test_change_plan_quantity_operations_and_delete(market: Marketplace, fulfillment: FulfillmentClient) -> None:
    market.configure(auto_accept_seconds=600)
    sub_id = market.purchase(planId="starter")[0]
    fulfillment.activate(sub_id, "starter")

    location = fulfillment.change_plan(sub_id, "team")
    op = fulfillment.operation_at(location)
    assert (op.action, op.status, op.plan_id, op.operation_request_source) == (
        "ChangePlan",
        "InProgress",
        "team",
        "Partner",
    )
    assert [o.id for o in fulfillment.list_operations(sub_id)] == [op.id]
    assert fulfillment.get_operation(sub_id, op.id).time_stamp is not None
    fulfillment.patch_operation(sub_id, op.id, "Success")
    assert fulfillment.get_operation(sub_id, op.id).status == "Succeeded"
    assert fulfillment.get(sub_id).plan_id == "team"
    with pytest.raises(FulfillmentError) as again:
        fulfillment.patch_operation(sub_id, op.id, "Failure")
    assert again.value.status == 409

    refused = fulfillment.operation_at(fulfillment.change_quantity(sub_id, 3))
    assert refused.action == "ChangeQuantity"
    fulfillment.patch_operation(sub_id, refused.id, "Failure")
    assert fulfillment.get_operation(sub_id, refused.id).status == "Failed"
    assert fulfillment.get(sub_id).quantity is None

    gone = fulfillment.operation_at(fulfillment.delete(sub_id))
    assert (gone.action, gone.status) == ("Unsubscribe", "Succeeded")
    assert fulfillment.get(sub_id).saas_subscription_status == "Unsubscribed"


# ---- retry policy, against a scripted server ------------------------------------------------


def scripted(
    statuses: list[int], seen: list[httpx.Request], headers: dict[str, str] | None = None
) -> FulfillmentClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0) if statuses else 200
        if status >= 400:
            return httpx.Response(status, json={"code": "Busy", "message": "try later"}, headers=headers)
        return httpx.Response(200, json={"plans": [{"planId": "team"}]})

    settings = Settings(env="test", marketplace_api_url="https://marketplace.test")
    return FulfillmentClient(
        settings,
        token=lambda: "t0ken",
        transport=httpx.MockTransport(answer),
        retries=3,
        base_backoff=0.01,
        max_backoff=0.05,
    )


def test_429_and_5xx_are_retried_with_one_request_id() -> None:
    seen: list[httpx.Request] = []
    client = scripted([429, 503, 500], seen)
    assert [p.plan_id for p in client.list_plans("s")] == ["team"]
    assert len(seen) == 4
    assert {r.headers["x-ms-requestid"] for r in seen} == {seen[0].headers["x-ms-requestid"]}
    assert all(r.headers["authorization"] == "Bearer t0ken" for r in seen)
    assert all(r.url.params["api-version"] == "2018-08-31" for r in seen)


def test_retries_are_bounded() -> None:
    seen: list[httpx.Request] = []
    client = scripted([503] * 10, seen)
    with pytest.raises(FulfillmentError) as caught:
        client.list_plans("s")
    assert (caught.value.status, caught.value.code, len(seen)) == (503, "Busy", 4)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    seen: list[httpx.Request] = []
    client = scripted([429], seen, headers={"Retry-After": "1"})
    client.max_backoff = 0.3
    started = time.monotonic()
    client.list_plans("s")
    assert 0.25 <= time.monotonic() - started < 1.0


def test_other_4xx_are_not_retried() -> None:
    seen: list[httpx.Request] = []
    client = scripted([400], seen)
    with pytest.raises(FulfillmentError):
        client.list_plans("s")
    assert len(seen) == 1
