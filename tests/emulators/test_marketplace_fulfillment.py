"""SaaS Fulfillment API v2 of the emulator over HTTPS, with tokens from a real MSAL client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from emulators.azure.server import EmulatorProcess
from tests.emulators.test_marketplace_support import MARKETPLACE, Marketplace, publisher_token

TENANT = str(uuid.uuid4())
CLIENT_ID = str(uuid.uuid4())
SUBS = "/api/saas/subscriptions"


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


def test_purchase_resolve_activate_and_read(market: Marketplace) -> None:
    purchaser = {"email": "ops@contoso.test", "tenantId": str(uuid.uuid4()), "objectId": str(uuid.uuid4())}
    bought = market.admin("POST", "/purchases", {"planId": "team", "purchaser": purchaser, "name": "Contoso"}, 201)
    subscription_id, landing_token = bought["subscription"]["id"], bought["token"]
    assert bought["landingPageQuery"].startswith("token=")

    resolved = market.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": landing_token})
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["id"], body["subscriptionName"], body["offerId"], body["planId"]) == (
        subscription_id,
        "Contoso",
        "rayplane",
        "team",
    )
    assert "quantity" not in body  # a flat-fee plan has no seats
    sub = body["subscription"]
    assert sub["saasSubscriptionStatus"] == "PendingFulfillmentStart"
    assert sub["purchaser"] == {
        **{k: v for k, v in purchaser.items() if k != "email"},
        "emailId": "ops@contoso.test",
        "puid": None,
    }
    assert sub["beneficiary"] == sub["purchaser"]
    expected = {"id", "name", "publisherId", "offerId", "planId", "quantity", "beneficiary", "purchaser"}
    expected |= {"allowedCustomerOperations", "sessionMode", "isFreeTrial", "isTest", "sandboxType"}
    expected |= {"saasSubscriptionStatus", "term", "autoRenew", "created", "lastModified"}
    assert expected <= sub.keys()
    assert not [k for k in sub if k.startswith("_")]

    wrong = market.api("POST", f"{SUBS}/{subscription_id}/activate", json={"planId": "enterprise"})
    assert wrong.status_code == 400
    assert market.api("POST", f"{SUBS}/{subscription_id}/activate", json={}).status_code == 400
    for _ in range(2):  # activating again is harmless
        activated = market.api("POST", f"{SUBS}/{subscription_id}/activate", json={"planId": "team"})
        assert activated.status_code == 200
        assert activated.content == b""

    sub = market.subscription(subscription_id)
    assert sub["saasSubscriptionStatus"] == "Subscribed"
    assert sub["term"]["termUnit"] == "P1M"
    assert sub["term"]["startDate"].endswith("T00:00:00Z")
    assert sub["term"]["endDate"] > sub["term"]["startDate"]

    listed = market.api("GET", SUBS).json()
    assert [s["id"] for s in listed["subscriptions"]] == [subscription_id]
    assert "@nextLink" not in listed

    plans = market.api("GET", f"{SUBS}/{subscription_id}/listAvailablePlans").json()["plans"]
    assert [p["planId"] for p in plans] == ["starter", "team", "enterprise"]
    dims = {d["id"] for d in plans[0]["planComponents"]["meteringDimensions"]}
    assert dims == {"vcpu_hours", "gpu_hours"}
    assert {"displayName", "isPrivate", "isPricePerSeat", "hasFreeTrials", "market"} <= plans[0].keys()

    missing = market.api("GET", f"{SUBS}/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "EntityNotFound"


def test_resolve_refuses_missing_unknown_and_expired_tokens(market: Marketplace) -> None:
    subscription_id, landing_token = market.purchase()
    assert market.api("POST", f"{SUBS}/resolve").status_code == 400
    unknown = market.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": "bm90LWEtdG9rZW4="})
    assert unknown.status_code == 400
    fresh = market.admin("POST", f"/subscriptions/{subscription_id}/token")["token"]
    assert (
        market.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": fresh}).json()["id"] == subscription_id
    )
    market.configure(now_offset_seconds=25 * 3600)  # tokens live 24 hours
    expired = market.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": landing_token})
    assert expired.status_code == 400


def test_activation_checks_quantity_and_status(market: Marketplace) -> None:
    offers = market.admin("GET", "/offers")
    offers["offers"][0]["plans"].append(
        {"planId": "seats", "isPricePerSeat": True, "minQuantity": 1, "maxQuantity": 50}
    )
    market.admin("PUT", "/offers", offers)
    subscription_id, _ = market.purchase(planId="seats", quantity=5)
    bad = market.api("POST", f"{SUBS}/{subscription_id}/activate", json={"planId": "seats", "quantity": 6})
    assert bad.status_code == 400
    good = market.api("POST", f"{SUBS}/{subscription_id}/activate", json={"planId": "seats", "quantity": "5"})
    assert good.status_code == 200
    assert market.subscription(subscription_id)["quantity"] == 5
    market.webhook(subscription_id, "Suspend")
    suspended = market.api("POST", f"{SUBS}/{subscription_id}/activate", json={"planId": "seats"})
    assert suspended.status_code == 400
    market.webhook(subscription_id, "Unsubscribe")
    gone = market.api("POST", f"{SUBS}/{subscription_id}/activate", json={"planId": "seats"})
    assert gone.status_code == 404


def test_list_pages_with_next_link(market: Marketplace) -> None:
    market.configure(list_page_size=2)
    made = sorted(market.purchase()[0] for _ in range(5))
    seen: list[str] = []
    page = market.api("GET", SUBS).json()
    pages = 1
    while True:
        seen += [s["id"] for s in page["subscriptions"]]
        link = page.get("@nextLink")
        if not link:
            break
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}" == market.emu.origin
        assert parse_qs(parts.query)["api-version"] == ["2018-08-31"]
        page = market.http.get(link).json()  # the link is used as is
        pages += 1
    assert seen == made
    assert pages == 3


def test_change_plan_is_an_operation_the_publisher_answers(market: Marketplace) -> None:
    subscription_id = market.subscribed("starter")
    changed = market.api("PATCH", f"{SUBS}/{subscription_id}", json={"planId": "team"})
    assert changed.status_code == 202, changed.text
    location = changed.headers["Operation-Location"]
    assert location.startswith(f"{market.emu.origin}{SUBS}/{subscription_id}/operations/")
    operation = market.http.get(location).json()
    assert operation["action"] == "ChangePlan"
    assert (operation["status"], operation["planId"], operation["subscriptionId"]) == (
        "InProgress",
        "team",
        subscription_id,
    )
    assert {
        "id",
        "activityId",
        "offerId",
        "publisherId",
        "quantity",
        "timeStamp",
        "errorStatusCode",
        "errorMessage",
    } <= operation.keys()
    assert market.subscription(subscription_id)["planId"] == "starter"  # not before the publisher answers

    pending = market.api("GET", f"{SUBS}/{subscription_id}/operations").json()["operations"]
    assert [op["id"] for op in pending] == [operation["id"]]
    locked = market.api("PATCH", f"{SUBS}/{subscription_id}", json={"planId": "enterprise"})
    assert locked.status_code == 400  # another change is in progress

    op_path = f"{SUBS}/{subscription_id}/operations/{operation['id']}"
    assert market.api("PATCH", op_path, json={"status": "Maybe"}).status_code == 400
    assert market.api("PATCH", op_path, json={"status": "Success"}).status_code == 200
    assert market.operation(subscription_id, operation["id"])["status"] == "Succeeded"
    assert market.subscription(subscription_id)["planId"] == "team"
    assert market.api("GET", f"{SUBS}/{subscription_id}/operations").json() == {"operations": []}
    again = market.api("PATCH", op_path, json={"status": "Failure"})
    assert again.status_code == 409  # answered after completion

    failed = market.api("PATCH", f"{SUBS}/{subscription_id}", json={"planId": "enterprise"})
    failed_id = failed.headers["Operation-Id"]
    answer = market.api("PATCH", f"{SUBS}/{subscription_id}/operations/{failed_id}", json={"status": "Failure"})
    assert answer.status_code == 200
    assert market.operation(subscription_id, failed_id)["status"] == "Failed"
    assert market.subscription(subscription_id)["planId"] == "team"

    missing = market.api("GET", f"{SUBS}/{subscription_id}/operations/{uuid.uuid4()}")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"planId": "starter"}, {"planId": "platinum"}, {"planId": "team", "quantity": 3}, {}, {"quantity": 0}],
    ids=["same-plan", "unknown-plan", "both", "neither", "zero-seats"],
)
def test_invalid_changes_are_refused(market: Marketplace, body: dict[str, object]) -> None:
    subscription_id = market.subscribed("starter")
    answer = market.api("PATCH", f"{SUBS}/{subscription_id}", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"]


def test_change_quantity_and_pending_subscriptions(market: Marketplace) -> None:
    pending_id, _ = market.purchase()
    assert market.api("PATCH", f"{SUBS}/{pending_id}", json={"quantity": 3}).status_code == 400  # not Subscribed
    subscription_id = market.subscribed("team")
    changed = market.api("PATCH", f"{SUBS}/{subscription_id}", json={"quantity": 7})
    assert changed.status_code == 202
    op_id = changed.headers["Operation-Id"]
    assert market.operation(subscription_id, op_id)["action"] == "ChangeQuantity"
    market.api("PATCH", f"{SUBS}/{subscription_id}/operations/{op_id}", json={"status": "Success"})
    assert market.subscription(subscription_id)["quantity"] == 7


def test_delete_unsubscribes(market: Marketplace) -> None:
    subscription_id = market.subscribed()
    deleted = market.api("DELETE", f"{SUBS}/{subscription_id}")
    assert deleted.status_code == 202
    operation = market.http.get(deleted.headers["Operation-Location"]).json()
    assert (operation["action"], operation["status"]) == ("Unsubscribe", "Succeeded")
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Unsubscribed"
    assert [s["id"] for s in market.api("GET", SUBS).json()["subscriptions"]] == [subscription_id]  # still listed
    assert market.api("DELETE", f"{SUBS}/{subscription_id}").status_code == 400
    assert market.api("DELETE", f"{SUBS}/{uuid.uuid4()}").status_code == 404


def test_request_ids_are_echoed_or_made(market: Marketplace) -> None:
    given = market.api("GET", SUBS, headers={"x-ms-requestid": "req-1", "x-ms-correlationid": "corr-1"})
    assert (given.headers["x-ms-requestid"], given.headers["x-ms-correlationid"]) == ("req-1", "corr-1")
    made = market.api("GET", SUBS)
    assert uuid.UUID(made.headers["x-ms-requestid"])
    assert uuid.UUID(made.headers["x-ms-correlationid"])


def test_authentication_and_api_version(market: Marketplace, emulator: EmulatorProcess) -> None:
    anonymous = Marketplace(emulator, None)
    arm_token = publisher_token(emulator, TENANT, CLIENT_ID, "https://management.azure.com/.default")
    wrong_audience = Marketplace(emulator, arm_token)
    forged = Marketplace(
        emulator, emulator.key_store().mint(origin=emulator.origin, tenant=TENANT, audience=MARKETPLACE, untrusted=True)
    )
    expired = Marketplace(
        emulator, emulator.mint_token(TENANT, {"exp": 1_000_000_000}, audience=MARKETPLACE, client_id=CLIENT_ID)
    )
    try:
        for client in (anonymous, wrong_audience, forged, expired):
            for method, path in (("GET", SUBS), ("POST", "/api/batchUsageEvent"), ("POST", f"{SUBS}/resolve")):
                answer = client.api(method, path, json={})
                assert answer.status_code == 401, (method, path, answer.text)
                assert answer.headers["www-authenticate"].startswith("Bearer")
        market.configure(auth_error_status=403)  # what the Marketplace documentation says it answers
        assert anonymous.api("GET", SUBS).status_code == 403
    finally:
        for client in (anonymous, wrong_audience, forged, expired):
            client.close()

    missing = market.api("GET", SUBS, api_version=False)
    assert missing.status_code == 400
    assert missing.json()["Error"]["Code"] == "ApiVersionUnspecified"
    other = market.api("GET", SUBS, api_version=False, params={"api-version": "2022-01-01"})
    assert other.status_code == 400
    assert other.json()["Error"]["Code"] == "UnsupportedApiVersion"


def test_only_the_publisher_app_when_enforced(market: Marketplace, emulator: EmulatorProcess) -> None:
    publisher_tenant, publisher_app = str(uuid.uuid4()), str(uuid.uuid4())
    market.configure(enforce_publisher_app=True, publisher_tenant=publisher_tenant, publisher_app_id=publisher_app)
    assert market.api("GET", SUBS).status_code == 403  # CLIENT_ID did not publish the offer
    publisher = Marketplace(emulator, publisher_token(emulator, publisher_tenant, publisher_app))
    try:
        assert publisher.api("GET", SUBS).status_code == 200
    finally:
        publisher.close()


def test_state_survives_restart(fresh_emulator: EmulatorProcess) -> None:
    emu = fresh_emulator  # restarted below
    market = Marketplace(emu, publisher_token(emu, TENANT, CLIENT_ID))
    market.configure(auto_accept_seconds=3600, list_page_size=7)
    offers = market.admin("GET", "/offers")
    offers["offers"][0]["plans"].append({"planId": "custom", "meteringDimensions": [{"id": "tb_scanned"}]})
    market.admin("PUT", "/offers", offers)
    subscription_id = market.subscribed("team")
    other_id, landing_token = market.purchase(planId="custom")
    op_id = market.api("PATCH", f"{SUBS}/{subscription_id}", json={"planId": "enterprise"}).headers["Operation-Id"]
    market.close()

    emu.restart()
    market = Marketplace(emu, publisher_token(emu, TENANT, CLIENT_ID))
    assert market.admin("GET", "/config")["list_page_size"] == 7
    assert [p["planId"] for p in market.admin("GET", "/offers")["offers"][0]["plans"]][-1] == "custom"
    assert market.subscription(subscription_id)["saasSubscriptionStatus"] == "Subscribed"
    resolved = market.api("POST", f"{SUBS}/resolve", headers={"x-ms-marketplace-token": landing_token})
    assert resolved.json()["id"] == other_id
    assert market.operation(subscription_id, op_id)["status"] == "InProgress"
    answer = market.api("PATCH", f"{SUBS}/{subscription_id}/operations/{op_id}", json={"status": "Success"})
    assert answer.status_code == 200
    assert market.subscription(subscription_id)["planId"] == "enterprise"
    market.close()
