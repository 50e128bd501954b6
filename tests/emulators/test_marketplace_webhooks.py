"""The emulator's Marketplace webhook: payloads, the Entra JWT, acknowledgements, retries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from emulators.azure.server import EmulatorProcess
from tests.emulators.test_marketplace_support import (
    MARKETPLACE,
    Marketplace,
    Received,
    WebhookReceiver,
    publisher_token,
    receiver,
    verify_webhook_token,
    wait_until,
)

TENANT = str(uuid.uuid4())
CLIENT_ID = str(uuid.uuid4())
PUBLISHER_TENANT = str(uuid.uuid4())
PUBLISHER_APP = str(uuid.uuid4())
SUBS = "/api/saas/subscriptions"


@pytest.fixture(scope="module")
def token(emulator: EmulatorProcess) -> str:
    return publisher_token(emulator, TENANT, CLIENT_ID)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with receiver() as started:
        yield started


@pytest.fixture
def market(emulator: EmulatorProcess, token: str, hook: WebhookReceiver) -> Iterator[Marketplace]:
    client = Marketplace(emulator, token)
    client.admin("POST", "/reset")
    client.configure(webhook_url=hook.url, publisher_tenant=PUBLISHER_TENANT, publisher_app_id=PUBLISHER_APP)
    try:
        yield client
    finally:
        client.admin("POST", "/reset")  # the emulator is the session's: leave no state or settings behind
        client.close()


def _verify(emu: EmulatorProcess, got: Received) -> dict[str, Any]:
    assert got.bearer, got.headers
    return verify_webhook_token(emu, got.bearer, tenant=PUBLISHER_TENANT, audience=PUBLISHER_APP)


def test_change_plan_webhook_is_signed_and_acknowledged(market: Marketplace, hook: WebhookReceiver) -> None:
    subscription_id = market.subscribed("starter")
    answered: list[int] = []

    def acknowledge(got: Received) -> None:
        # What a publisher does: check the operation with the API, then answer it.
        path = f"{SUBS}/{got.body['subscriptionId']}/operations/{got.body['id']}"
        assert market.api("GET", path).json()["status"] == "InProgress"
        answered.append(market.api("PATCH", path, json={"status": "Success"}).status_code)

    hook.on_request = acknowledge
    sent = market.webhook(subscription_id, "ChangePlan", planId="enterprise")
    operation, (delivery,) = sent["operation"], sent["deliveries"]
    assert (delivery["state"], delivery["attempts"][0]["status"]) == ("delivered", 200)
    assert answered == [200]
    assert not hook.errors

    (got,) = hook.wait_for(1)
    assert got.path == "/marketplace/webhook"
    assert got.headers["content-type"] == "application/json"
    claims = _verify(market.emu, got)
    assert (claims["aud"], claims["tid"], claims["azp"], claims["appid"]) == (
        PUBLISHER_APP,
        PUBLISHER_TENANT,
        MARKETPLACE,
        MARKETPLACE,
    )
    assert claims["iss"] == f"{market.emu.origin}/{PUBLISHER_TENANT}/v2.0"
    body = got.body
    assert (body["id"], body["subscriptionId"], body["action"]) == (operation["id"], subscription_id, "ChangePlan")
    assert (body["planId"], body["status"], body["operationRequestSource"]) == ("enterprise", "InProgress", "Azure")
    expected = {"activityId", "publisherId", "offerId", "quantity", "timeStamp", "subscription", "purchaseToken"}
    assert expected <= body.keys()
    assert body["subscription"]["id"] == subscription_id
    assert market.operation(subscription_id, operation["id"])["status"] == "Succeeded"
    assert market.subscription(subscription_id)["planId"] == "enterprise"


def test_publisher_change_sends_a_partner_webhook(market: Marketplace, hook: WebhookReceiver) -> None:
    subscription_id = market.subscribed("starter")
    changed = market.api("PATCH", f"{SUBS}/{subscription_id}", json={"planId": "team"})
    (got,) = hook.wait_for(1)
    assert (got.body["id"], got.body["operationRequestSource"]) == (changed.headers["Operation-Id"], "Partner")
    _verify(market.emu, got)


def test_failure_answer_keeps_the_plan(market: Marketplace, hook: WebhookReceiver) -> None:
    subscription_id = market.subscribed("team")

    def refuse(got: Received) -> None:
        path = f"{SUBS}/{subscription_id}/operations/{got.body['id']}"
        market.api("PATCH", path, json={"status": "Failure"}).raise_for_status()

    hook.on_request = refuse
    operation = market.webhook(subscription_id, "ChangeQuantity", quantity=4)["operation"]
    assert not hook.errors
    assert market.operation(subscription_id, operation["id"])["status"] == "Failed"
    assert market.subscription(subscription_id)["quantity"] is None


def test_unanswered_change_is_auto_accepted(market: Marketplace, hook: WebhookReceiver) -> None:
    market.configure(auto_accept_seconds=1)
    subscription_id = market.subscribed("starter")
    operation = market.webhook(subscription_id, "ChangePlan", planId="team")["operation"]
    assert market.operation(subscription_id, operation["id"])["status"] == "InProgress"
    wait_until(lambda: market.operation(subscription_id, operation["id"])["status"] == "Succeeded", what="auto-accept")
    assert market.subscription(subscription_id)["planId"] == "team"
    late = market.api("PATCH", f"{SUBS}/{subscription_id}/operations/{operation['id']}", json={"status": "Failure"})
    assert late.status_code == 409


def test_default_auto_accept_is_ten_seconds(market: Marketplace) -> None:
    assert market.admin("GET", "/config")["auto_accept_seconds"] == 10


def test_suspend_reinstate_renew_unsubscribe(market: Marketplace, hook: WebhookReceiver) -> None:
    subscription_id = market.subscribed()
    term = market.subscription(subscription_id)["term"]

    renewed = market.webhook(subscription_id, "Renew")["operation"]
    assert renewed["status"] == "Succeeded"
    new_term = market.subscription(subscription_id)["term"]
    assert new_term["startDate"] > term["endDate"]

    suspended = market.webhook(subscription_id, "Suspend")["operation"]
    assert suspended["status"] == "Succeeded"
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Suspended"
    market.webhook(subscription_id, "Suspend", status=409)  # only a Subscribed subscription can be

    reinstate = market.webhook(subscription_id, "Reinstate")["operation"]
    assert reinstate["status"] == "InProgress"  # the publisher confirms a reinstatement
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Suspended"
    path = f"{SUBS}/{subscription_id}/operations/{reinstate['id']}"
    assert market.api("PATCH", path, json={"status": "Success"}).status_code == 200
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Subscribed"

    unsubscribed = market.webhook(subscription_id, "Unsubscribe")["operation"]
    assert unsubscribed["status"] == "Succeeded"
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Unsubscribed"
    market.webhook(subscription_id, "Reinstate", status=409)

    got = hook.wait_for(4)
    assert [(g.body["action"], g.body["status"]) for g in got] == [
        ("Renew", "Succeeded"),
        ("Suspend", "Succeeded"),
        ("Reinstate", "InProgress"),
        ("Unsubscribe", "Succeeded"),
    ]
    assert got[1].body["subscription"]["saasSubscriptionStatus"] == "Suspended"
    assert got[3].body["subscription"]["saasSubscriptionStatus"] == "Unsubscribed"


def test_reinstate_can_apply_at_once(market: Marketplace) -> None:
    market.configure(reinstate_requires_ack=False)
    subscription_id = market.subscribed()
    market.webhook(subscription_id, "Suspend")
    assert market.webhook(subscription_id, "Reinstate")["operation"]["status"] == "Succeeded"
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Subscribed"


def test_unknown_actions_are_delivered_and_change_nothing(market: Marketplace, hook: WebhookReceiver) -> None:
    subscription_id = market.subscribed()
    market.webhook(subscription_id, "Transfer")
    (got,) = hook.wait_for(1)
    assert got.body["action"] == "Transfer"
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Subscribed"


def test_duplicates_and_reordering(market: Marketplace, hook: WebhookReceiver) -> None:
    subscription_id = market.subscribed()
    first = market.webhook(subscription_id, "Suspend", deliver=False)
    assert first["deliveries"] == []
    second = market.webhook(subscription_id, "Reinstate", copies=2, timeStamp="2030-01-01T00:00:00Z")
    assert [d["state"] for d in second["deliveries"]] == ["delivered", "delivered"]
    late = market.admin("POST", f"/operations/{first['operation']['id']}/deliver", {})["deliveries"]
    assert late[0]["state"] == "delivered"
    got = hook.wait_for(3)
    assert [g.body["action"] for g in got] == ["Reinstate", "Reinstate", "Suspend"]
    assert got[0].body == got[1].body  # a duplicate is the same payload
    assert got[0].body["timeStamp"] == "2030-01-01T00:00:00Z"
    assert got[0].bearer != got[1].bearer  # each attempt has its own token
    for received in got:
        _verify(market.emu, received)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("wrong_aud", jwt.InvalidAudienceError),
        ("wrong_tid", jwt.InvalidTokenError),
        ("wrong_azp", jwt.InvalidTokenError),
        ("wrong_iss", jwt.InvalidIssuerError),
        ("expired", jwt.ExpiredSignatureError),
        ("not_yet_valid", jwt.ImmatureSignatureError),
        ("bad_signature", jwt.PyJWKClientError),
    ],
)
def test_broken_tokens_fail_validation(
    market: Marketplace, hook: WebhookReceiver, fault: str, error: type[Exception]
) -> None:
    subscription_id = market.subscribed()
    market.webhook(subscription_id, "Renew", token=fault)
    (got,) = hook.wait_for(1)
    with pytest.raises(error):
        _verify(market.emu, got)


def test_missing_token(market: Marketplace, hook: WebhookReceiver) -> None:
    market.webhook(market.subscribed(), "Renew", token="missing")
    (got,) = hook.wait_for(1)
    assert "authorization" not in got.headers


def test_failed_deliveries_are_retried_with_backoff(market: Marketplace, hook: WebhookReceiver) -> None:
    market.configure(webhook_backoff_seconds=0.2, webhook_max_attempts=4)
    hook.statuses = [500, 503]
    subscription_id = market.subscribed()
    (delivery,) = market.webhook(subscription_id, "Renew")["deliveries"]
    assert (delivery["state"], delivery["attempts"][0]["status"]) == ("pending", 500)

    def settled() -> list[dict[str, Any]]:
        return [d for d in market.deliveries(subscriptionId=subscription_id) if d["state"] != "pending"]

    (done,) = wait_until(settled, what="delivery")
    assert done["state"] == "delivered"
    assert [a["status"] for a in done["attempts"]] == [500, 503, 200]
    got = hook.wait_for(3)
    assert got[0].body == got[2].body

    hook.statuses = [500] * 4
    market.webhook(subscription_id, "Suspend")
    wait_until(lambda: len(settled()) == 2, what="exhausted delivery")
    exhausted = settled()[1]
    assert (exhausted["state"], [a["status"] for a in exhausted["attempts"]]) == ("failed", [500] * 4)


def test_unreachable_receiver_is_recorded(market: Marketplace) -> None:
    market.configure(webhook_url="http://127.0.0.1:9/nothing-listens", webhook_max_attempts=1)
    (delivery,) = market.webhook(market.subscribed(), "Renew")["deliveries"]
    assert delivery["state"] == "failed"
    assert delivery["attempts"][0]["status"] is None
    assert delivery["attempts"][0]["error"]


def test_https_receiver_with_configured_ca(market: Marketplace, emulator: EmulatorProcess) -> None:
    tls = (str(emulator.data_dir / "tls" / "server.pem"), str(emulator.data_dir / "tls" / "server-key.pem"))
    with receiver(tls=tls) as secure:
        market.configure(webhook_url=secure.url, webhook_max_attempts=1)  # its CA is not trusted yet
        subscription_id = market.subscribed()
        (refused,) = market.webhook(subscription_id, "Renew")["deliveries"]
        assert refused["attempts"][0]["status"] is None
        assert "SSL" in refused["attempts"][0]["error"] or "certificate" in refused["attempts"][0]["error"]
        assert emulator.ca_path is not None
        market.configure(webhook_ca=emulator.ca_path.read_text())
        (ok,) = market.webhook(subscription_id, "Suspend")["deliveries"]
        assert ok["state"] == "delivered"
        _verify(market.emu, secure.wait_for(1)[0])


def test_pending_deliveries_resume_after_restart(fresh_emulator: EmulatorProcess) -> None:
    emu = fresh_emulator  # restarted below
    with receiver(statuses=[500]) as hook:
        market = Marketplace(emu, publisher_token(emu, TENANT, CLIENT_ID))
        market.configure(webhook_url=hook.url, webhook_backoff_seconds=2)
        subscription_id = market.subscribed()
        (delivery,) = market.webhook(subscription_id, "Renew")["deliveries"]
        assert delivery["state"] == "pending"
        market.close()
        emu.restart()
        market = Marketplace(emu, publisher_token(emu, TENANT, CLIENT_ID))

        def delivered() -> bool:
            (current,) = market.deliveries(subscriptionId=subscription_id)
            return bool(current["state"] == "delivered")

        wait_until(delivered, what="retry after restart")
        assert [g.body["action"] for g in hook.wait_for(2)] == ["Renew", "Renew"]
        market.close()


def test_admin_errors(market: Marketplace) -> None:
    assert (
        market.http.post(
            f"/_emulator/marketplace/subscriptions/{uuid.uuid4()}/webhook", json={"action": "Renew"}
        ).status_code
        == 404
    )
    pending, _ = market.purchase()
    market.webhook(pending, "Suspend", status=409)  # not Subscribed yet
    subscription_id = market.subscribed()
    market.webhook(subscription_id, "ChangePlan", status=400)  # no planId
    market.webhook(subscription_id, "ChangePlan", status=400, planId="starter")  # the same plan
    assert market.http.put("/_emulator/marketplace/config", json={"auto_accept_seconds": -1}).status_code == 422
    assert market.http.put("/_emulator/marketplace/config", json={"nonsense": 1}).status_code == 422
    assert market.http.post(f"/_emulator/marketplace/operations/{uuid.uuid4()}/deliver", json={}).status_code == 404
    assert len(market.admin("GET", "/subscriptions")["value"]) == 2
    detail = market.admin("GET", f"/subscriptions/{subscription_id}")
    assert (detail["subscription"]["id"], detail["operations"], detail["deliveries"]) == (subscription_id, [], [])
