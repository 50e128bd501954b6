"""The worker-side core: processing stored webhook events against the emulator's Fulfillment API.

Events are the payloads the emulator's sender would deliver (kept on its operations), stored
as the intake stores them; the database work runs in sync sessions inside one rolled-back
transaction, as a worker's unit of work does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.audit.models import AuditEntry
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.db.ids import new_id
from rayplane.identity.models import ApiKey
from rayplane.marketplace import processing, store
from rayplane.marketplace.client import FulfillmentClient
from rayplane.marketplace.models import MarketplaceSubscription, WebhookEvent
from rayplane.marketplace.processing import EventProcessor
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from tests.emulators.test_marketplace_support import Marketplace


def spec(max_nodes: int = 1) -> dict[str, Any]:
    group = {"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 0, "max_nodes": max_nodes, "spot": False}
    return {"ray_version": "2.60.0", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": [group]}


@dataclass
class World:
    """One customer: the emulator's subscription, and Rayplane's tenant and rows for it."""

    market: Marketplace
    sessions: sessionmaker[Session]
    processor: EventProcessor
    sub_id: str
    tenant_id: str

    def act(self, action: str, **fields: Any) -> str:
        """Azure performs ``action``; the operation id (its webhook is stored, not sent)."""
        body = self.market.webhook(self.sub_id, action, deliver=False, **fields)
        return str(body["operation"]["id"])

    def receive(self, operation_id: str) -> None:
        """Store the operation's webhook payload as the intake would."""
        ops = self.market.admin("GET", f"/operations?subscriptionId={self.sub_id}")["value"]
        payload = next(op["_payload"] for op in ops if op["id"] == operation_id)
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            session.add(
                WebhookEvent(
                    operation_id=payload["id"],
                    subscription_id=payload["subscriptionId"],
                    action=payload["action"],
                    time_stamp=datetime.fromisoformat(payload["timeStamp"]),
                    payload=payload,
                    status="received",
                    attempts=0,
                    received_at=now,
                    next_attempt_at=now + timedelta(seconds=15),
                )
            )

    def deliver(self, action: str, **fields: Any) -> processing.Outcome:
        operation_id = self.act(action, **fields)
        self.receive(operation_id)
        return self.processor.process(operation_id)

    def marketplace_op(self, operation_id: str) -> dict[str, Any]:
        ops = self.market.admin("GET", f"/operations?subscriptionId={self.sub_id}")["value"]
        return dict(next(op for op in ops if op["id"] == operation_id))

    def read(self) -> tuple[MarketplaceSubscription, Tenant, list[Cluster]]:
        with self.sessions() as session:
            sub = store.load_subscription(session, self.sub_id)
            tenant = store.load_tenant(session, self.tenant_id)
            clusters = list(session.execute(select(Cluster).where(Cluster.tenant_id == self.tenant_id)).scalars())
            assert sub is not None
            assert tenant is not None
            return sub, tenant, sorted(clusters, key=lambda c: c.id)

    def event(self, operation_id: str) -> WebhookEvent:
        with self.sessions() as session:
            found = store.load_event(session, operation_id)
            assert found is not None
            return found

    def add_clusters(self, count: int, max_nodes: int = 1) -> None:
        with self.sessions.begin() as session:
            for i in range(count):
                session.add(
                    Cluster(
                        id=new_id("cls"),
                        tenant_id=self.tenant_id,
                        cloud_id=None,
                        name=f"c{i}",
                        spec=spec(max_nodes),
                        labels={},
                        generation=1,
                        desired_state="running",
                        state="PENDING",
                        observed={},
                        provider_state={},
                    )
                )


@pytest.fixture
def world(
    market: Marketplace,
    worker_sessions: sessionmaker[Session],
    fulfillment: FulfillmentClient,
) -> World:
    market.configure(auto_accept_seconds=600)
    sub_id = market.purchase(planId="team")[0]
    fulfillment.activate(sub_id, "team")
    tenant_id = new_id("ten")
    with worker_sessions.begin() as session:
        session.add(Tenant(id=tenant_id, name="t-" + uuid.uuid4().hex[:12], display_name="T", status="active"))
        session.flush()
        session.add(
            MarketplaceSubscription(
                id=sub_id, tenant_id=tenant_id, offer_id="rayplane", plan_id="team", status="Subscribed"
            )
        )
    return World(market, worker_sessions, EventProcessor(worker_sessions, fulfillment), sub_id, tenant_id)


def test_change_plan_within_the_rules_is_accepted(world: World) -> None:
    world.add_clusters(3)
    op = world.act("ChangePlan", planId="enterprise")
    world.receive(op)
    outcome = world.processor.process(op)
    assert (outcome.status, outcome.result) == ("done", "plan team -> enterprise")
    assert world.marketplace_op(op)["status"] == "Succeeded"
    sub, _, _ = world.read()
    assert sub.plan_id == "enterprise"
    assert sub.last_event_at is not None
    event = world.event(op)
    assert (event.status, event.attempts, event.next_attempt_at) == ("done", 1, None)
    with world.sessions() as session:
        audit = session.execute(select(AuditEntry).where(AuditEntry.tenant_id == world.tenant_id)).scalars().all()
    assert [(a.action, a.actor_type, a.target_id) for a in audit] == [
        ("marketplace.ChangePlan", "marketplace", world.sub_id)
    ]


def test_a_downgrade_below_what_runs_is_refused(world: World) -> None:
    world.add_clusters(3)
    op = world.act("ChangePlan", planId="starter")
    world.receive(op)
    outcome = world.processor.process(op)
    assert outcome.status == "done"
    assert "Failed" in outcome.result
    assert "3 clusters run; plan 'starter' allows 2" in outcome.result
    assert world.marketplace_op(op)["status"] == "Failed"
    assert world.market.admin("GET", f"/subscriptions/{world.sub_id}")["subscription"]["planId"] == "team"
    assert world.read()[0].plan_id == "team"


def test_suspend_stops_every_cluster_and_reinstate_leaves_them_stopped(world: World) -> None:
    world.add_clusters(2)
    outcome = world.deliver("Suspend")
    assert outcome.status == "done"
    sub, tenant, clusters = world.read()
    assert (sub.status, tenant.status) == ("Suspended", "suspended")
    assert sorted(outcome.clusters) == [c.id for c in clusters]
    assert [(c.desired_state, c.generation) for c in clusters] == [("stopped", 2), ("stopped", 2)]
    with world.sessions() as session:
        ops = session.execute(select(Operation.kind).where(Operation.cluster_id.in_(outcome.clusters))).scalars()
        kinds = session.execute(select(ClusterEvent.kind).where(ClusterEvent.tenant_id == world.tenant_id)).scalars()
        assert sorted(ops) == ["stop", "stop"]
        assert sorted(kinds) == ["stop_requested", "stop_requested"]

    reinstated = world.deliver("Reinstate")  # InProgress until we answer: we accept
    assert reinstated.result == "reinstated; clusters stay stopped until started"
    sub, tenant, clusters = world.read()
    assert (sub.status, tenant.status) == ("Subscribed", "active")
    assert [c.desired_state for c in clusters] == ["stopped", "stopped"]
    assert world.market.admin("GET", f"/subscriptions/{world.sub_id}")["subscription"]["saasSubscriptionStatus"] == (
        "Subscribed"
    )


def test_unsubscribe_deletes_clusters_then_retention_closes_the_tenant(world: World) -> None:
    world.add_clusters(2)
    with world.sessions.begin() as session:
        session.add(
            ApiKey(
                id=new_id("key"),
                tenant_id=world.tenant_id,
                name="ci",
                prefix=uuid.uuid4().hex[:12],
                secret_hash="x" * 64,
                role="member",
                created_by="test",
            )
        )
    outcome = world.deliver("Unsubscribe")
    assert outcome.result == "unsubscribed; tenant read-only; 2 cluster(s) deleting"
    sub, tenant, clusters = world.read()
    assert (sub.status, tenant.status) == ("Unsubscribed", "read_only")
    assert sub.unsubscribed_at is not None
    assert [c.desired_state for c in clusters] == ["deleted", "deleted"]

    with world.sessions.begin() as session:
        assert processing.close_expired(session, retention=timedelta(days=30)) == []
    with world.sessions.begin() as session:
        assert processing.close_expired(session, retention=timedelta(0)) == [world.tenant_id]
    _, tenant, _ = world.read()
    assert tenant.status == "closed"
    with world.sessions() as session:
        keys = session.execute(select(ApiKey).where(ApiKey.tenant_id == world.tenant_id)).scalars().all()
    assert [k.revoked_at is not None for k in keys] == [True]


def test_renew_is_recorded_and_unknown_actions_acknowledged(world: World) -> None:
    assert world.deliver("Renew").result == "renewed"
    unknown = world.deliver("Transfer")
    assert (unknown.status, unknown.result) == ("done", "unknown action 'Transfer'; acknowledged")
    sub, tenant, _ = world.read()
    assert (sub.status, sub.plan_id, tenant.status) == ("Subscribed", "team", "active")


def test_duplicates_are_processed_once(world: World) -> None:
    world.add_clusters(1)
    op = world.act("Suspend")
    world.receive(op)
    first = world.processor.process(op)
    again = world.processor.process(op)  # a redelivered task, or the sweep racing the nudge
    assert (first.status, again.status) == ("done", "skipped")
    with world.sessions() as session:
        stops = session.execute(select(Operation).where(Operation.tenant_id == world.tenant_id)).scalars().all()
    assert len(stops) == 1


def test_an_older_operation_delivered_late_is_recorded_not_applied(world: World) -> None:
    suspend = world.act("Suspend")
    reinstate = world.act("Reinstate")
    world.receive(reinstate)  # the newer one arrives first
    assert world.processor.process(reinstate).status == "done"
    world.receive(suspend)
    late = world.processor.process(suspend)
    assert late.status == "done"
    assert "older than the last operation applied" in late.result
    sub, tenant, _ = world.read()
    assert (sub.status, tenant.status) == ("Subscribed", "active")
    assert world.event(suspend).status == "done"


def test_a_crash_after_answering_applies_the_change_once(world: World, fulfillment: FulfillmentClient) -> None:
    op = world.act("ChangePlan", planId="enterprise")
    world.receive(op)
    # A worker claimed the event, PATCHed Success and died before applying it.
    assert processing.backoff(1) == timedelta(seconds=5)
    with world.sessions.begin() as session:
        event = store.load_event(session, op, lock=True)
        assert event is not None
        event.attempts = 1
    fulfillment.patch_operation(world.sub_id, op, "Success")
    outcome = world.processor.process(op)  # the redelivered task: the PATCH is 409, the re-read says Succeeded
    assert (outcome.status, outcome.result) == ("done", "plan team -> enterprise")
    assert world.event(op).attempts == 2
    assert world.read()[0].plan_id == "enterprise"


def test_an_unreachable_marketplace_is_retried_later_then_given_up(
    world: World, settings: Settings, worker_sessions: sessionmaker[Session]
) -> None:
    op = world.act("Renew")
    world.receive(op)
    dead = settings.model_copy(update={"marketplace_api_url": "https://127.0.0.1:9"})
    with FulfillmentClient(dead, token=lambda: "t", retries=0) as client:
        processor = EventProcessor(worker_sessions, client)
        outcome = processor.process(op)
        assert outcome.status == "retry"
        event = world.event(op)
        assert event.status == "received"
        assert event.next_attempt_at is not None
        assert event.next_attempt_at > datetime.now(UTC)
        assert "attempt 1" in (event.result or "")
        with world.sessions.begin() as session:
            assert store.claim_due_events(session, limit=10, hold_seconds=60) == []  # not due yet
            due = store.load_event(session, op, lock=True)
            assert due is not None
            due.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
            due.attempts = processing.MAX_ATTEMPTS - 1
        with world.sessions.begin() as session:
            assert store.claim_due_events(session, limit=10, hold_seconds=60) == [op]
        assert processor.process(op).status == "failed"
    assert world.event(op).status == "failed"
