"""The whole subscription lifecycle through the emulator and the live API.

Purchase (emulator test control) -> resolve -> activate (a user token from the emulator's
Entra ID) -> clusters created through the API -> ChangePlan accepted -> ChangePlan refused (a
downgrade below what runs) -> Suspend (clusters stopped, creates and starts 403) -> Reinstate
-> Unsubscribe (clusters deleted, the tenant read-only). The emulator delivers every webhook
to the live API with its Entra-signed token; the worker's core then processes the stored
event (as the nudged Celery task would; tests/marketplace/test_worker.py runs the real worker).
No worker reconciles clusters here, so they stay PENDING: assertions are on desired states.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from rayplane.marketplace.client import FulfillmentClient
from rayplane.marketplace.processing import EventProcessor
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import Buyer, Customer, LiveApi, cleanup, delivered, onboard


def cluster_body(name: str) -> dict[str, Any]:
    group = {"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 0, "max_nodes": 1}
    return {"name": name, "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": [group]}


class Scene:
    def __init__(self, api: LiveApi, market: Marketplace, processor: EventProcessor, customer: Customer) -> None:
        self.api, self.market, self.processor, self.customer = api, market, processor, customer

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.api.request(method, path, self.customer.user_token, **kwargs)

    def azure(self, action: str, **fields: Any) -> tuple[str, str]:
        """Azure performs ``action``: its webhook reaches the live API (200), then a worker
        processes the stored event. (operation id, the processing's result)."""
        sent = self.market.webhook(self.customer.subscription_id, action, **fields)
        operation_id = str(sent["operation"]["id"])
        assert delivered(self.market, operation_id) == [200]
        outcome = self.processor.process(operation_id)
        assert outcome.status == "done", outcome
        return operation_id, outcome.result

    def marketplace_op(self, operation_id: str) -> str:
        ops = self.market.admin("GET", f"/operations?subscriptionId={self.customer.subscription_id}")["value"]
        return str(next(op["status"] for op in ops if op["id"] == operation_id))

    def clusters(self) -> dict[str, str]:
        items = self.call("GET", "/v1/clusters").json()["items"]
        return {c["name"]: c["desired_state"] for c in items}


@pytest.fixture
def scene(
    market: Marketplace,
    live_api: LiveApi,
    buyer: Buyer,
    fulfillment: FulfillmentClient,
    committed_sessions: sessionmaker[Session],
) -> Iterator[Scene]:
    # Long auto-accept: every change's outcome below is Rayplane's own answer.
    market.configure(webhook_url=live_api.webhook_url, auto_accept_seconds=600)
    subscriptions: list[str] = []
    try:
        customer = onboard(live_api, market, buyer, plan="team")
        subscriptions.append(customer.subscription_id)
        yield Scene(live_api, market, EventProcessor(committed_sessions, fulfillment), customer)
    finally:
        cleanup(committed_sessions, tenants=[], subscriptions=subscriptions, tids=[buyer.tid])


def test_the_whole_lifecycle(scene: Scene) -> None:
    tenant = scene.call("GET", "/v1/tenant").json()
    assert (tenant["id"], tenant["status"]) == (scene.customer.tenant_id, "active")
    for name in ("a", "b", "c"):
        r = scene.call("POST", "/v1/clusters", json=cluster_body(name))
        assert r.status_code == 202, r.text
    assert scene.clusters() == {"a": "running", "b": "running", "c": "running"}

    # ChangePlan accepted: everything that runs fits the bigger plan.
    op, result = scene.azure("ChangePlan", planId="enterprise")
    assert result == "plan team -> enterprise"
    assert scene.marketplace_op(op) == "Succeeded"
    assert scene.call("GET", "/v1/marketplace/subscription").json()["subscription"]["plan_id"] == "enterprise"

    # ChangePlan refused: three clusters run, starter allows two.
    op, result = scene.azure("ChangePlan", planId="starter")
    assert scene.marketplace_op(op) == "Failed"
    assert "3 clusters run; plan 'starter' allows 2" in result
    assert scene.call("GET", "/v1/marketplace/subscription").json()["subscription"]["plan_id"] == "enterprise"

    # Suspend: every cluster wanted stopped; creating or starting answers 403 with the reason.
    _, result = scene.azure("Suspend")
    assert result == "suspended; 3 cluster(s) stopping"
    assert scene.clusters() == {"a": "stopped", "b": "stopped", "c": "stopped"}
    assert scene.call("GET", "/v1/tenant").json()["status"] == "suspended"
    refused = scene.call("POST", "/v1/clusters", json=cluster_body("d"))
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "suspended" in refused.json()["detail"]
    some = scene.call("GET", "/v1/clusters").json()["items"][0]["id"]
    assert scene.call("POST", f"/v1/clusters/{some}:start").status_code == 403
    events = scene.call("GET", f"/v1/clusters/{some}/events").json()["items"]
    assert [e["kind"] for e in events] == ["created", "stop_requested"]
    assert "suspended" in events[-1]["reason"]

    # Reinstate: allowed again; the clusters stay stopped until someone starts them.
    _, result = scene.azure("Reinstate")
    assert scene.call("GET", "/v1/tenant").json()["status"] == "active"
    assert scene.clusters() == {"a": "stopped", "b": "stopped", "c": "stopped"}
    assert scene.call("POST", f"/v1/clusters/{some}:start").status_code == 202

    # Unsubscribe: every cluster wanted deleted; the tenant is read-only (reads still work).
    _, result = scene.azure("Unsubscribe")
    assert result == "unsubscribed; tenant read-only; 3 cluster(s) deleting"
    assert scene.clusters() == {"a": "deleted", "b": "deleted", "c": "deleted"}
    assert scene.call("GET", "/v1/tenant").json()["status"] == "read_only"
    for method, path, kwargs in (
        ("POST", "/v1/clusters", {"json": cluster_body("e")}),
        ("POST", "/v1/api-keys", {"json": {"name": "ci", "role": "member"}}),
    ):
        r = scene.call(method, path, **kwargs)
        assert r.status_code == 403, r.text
        assert "read-only" in r.json()["detail"]
    subscription = scene.call("GET", "/v1/marketplace/subscription").json()["subscription"]
    assert subscription["status"] == "Unsubscribed"

    audit = scene.call("GET", "/v1/audit-log", params={"limit": 100}).json()["items"]
    actions = [a["action"] for a in audit if a["action"].startswith("marketplace.")]
    assert actions[::-1] == [
        "marketplace.activate",
        "marketplace.ChangePlan",
        "marketplace.ChangePlan",
        "marketplace.Suspend",
        "marketplace.Reinstate",
        "marketplace.Unsubscribe",
    ]


def test_duplicated_and_reordered_deliveries_leave_the_right_state(scene: Scene) -> None:
    sub_id = scene.customer.subscription_id
    assert scene.call("POST", "/v1/clusters", json=cluster_body("a")).status_code == 202

    # Three copies of one Suspend: three 200s, one stored event, one stop.
    sent = scene.market.webhook(sub_id, "Suspend", copies=3)
    suspend = str(sent["operation"]["id"])
    assert delivered(scene.market, suspend, copies=3) == [200, 200, 200]
    assert scene.processor.process(suspend).status == "done"
    assert scene.processor.process(suspend).status == "skipped"
    cid = scene.call("GET", "/v1/clusters").json()["items"][0]["id"]
    ops = [e for e in scene.call("GET", f"/v1/clusters/{cid}/events").json()["items"] if e["kind"] == "stop_requested"]
    assert len(ops) == 1

    # Reinstate, then the old Suspend delivered again after it (Azure retries for hours).
    reinstate = str(scene.market.webhook(sub_id, "Reinstate", deliver=False)["operation"]["id"])
    scene.market.admin("POST", f"/operations/{reinstate}/deliver", {})
    assert delivered(scene.market, reinstate) == [200]
    assert scene.processor.process(reinstate).status == "done"
    assert scene.call("GET", "/v1/tenant").json()["status"] == "active"
    scene.market.admin("POST", f"/operations/{suspend}/deliver", {})  # Azure retries the old one
    assert delivered(scene.market, suspend, copies=4) == [200, 200, 200, 200]
    assert scene.processor.process(suspend).status == "skipped"  # already done: a duplicate
    # An operation stamped before the newest one applied, arriving late: recorded, not applied.
    sent = scene.market.webhook(sub_id, "Renew", deliver=False, timeStamp="2020-01-01T00:00:00Z")
    old_renew = str(sent["operation"]["id"])
    scene.market.admin("POST", f"/operations/{old_renew}/deliver", {})
    assert delivered(scene.market, old_renew) == [200]
    late = scene.processor.process(old_renew)
    assert "older than the last operation applied" in late.result
    assert scene.call("GET", "/v1/tenant").json()["status"] == "active"
    assert scene.call("GET", "/v1/marketplace/subscription").json()["subscription"]["status"] == "Subscribed"
