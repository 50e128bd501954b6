"""Metering submission through the emulator's Metering API: each status, batches of 25,
dry run, and the 24-hour limit (near-expiry warning, expiry with an alert)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.billing.metering import Metering, RunResult
from rayplane.billing.models import MeteringRecord
from rayplane.db.base import utcnow
from rayplane.marketplace.metering_client import MeteringClient, UsageEvent, UsageResult
from rayplane.marketplace.models import MarketplaceSubscription
from rayplane.settings import Settings
from tests.billing.conftest import Logs, World, hours_ago
from tests.emulators.test_marketplace_support import Marketplace


def states(sessions: sessionmaker[Session], subscription: str) -> dict[tuple[str, datetime], MeteringRecord]:
    with sessions() as s:
        rows = s.execute(select(MeteringRecord).where(MeteringRecord.subscription_id == subscription)).scalars()
        return {(r.dimension, r.hour): r for r in rows}


def accepted_usage(market: Marketplace, subscription: str) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = market.admin("GET", f"/usage?resourceId={subscription}")["value"]
    return value


class CountingClient(MeteringClient):
    """The real client, noting the size of each batch it sends."""

    def __init__(self, settings: Settings, sizes: list[int]) -> None:
        super().__init__(settings)
        self.sizes = sizes

    def post_batch(self, events: list[UsageEvent]) -> list[UsageResult]:
        self.sizes.append(len(events))
        return super().post_batch(events)


def test_accepted_once_and_the_emulator_holds_one_event_per_hour(
    world: World, market: Marketplace, sync_sessions: sessionmaker[Session], metering_settings: Settings
) -> None:
    sub = market.subscribed("starter")
    t = world.tenant()
    world.subscription(t, sub)
    c = world.cluster(t)
    world.interval(t, c, "Standard_NC24ads_A100_v4", 2, hours_ago(3), hours_ago(1))

    result = Metering(sync_sessions, metering_settings).run()
    assert result.outcomes == {"Accepted": 4}
    got = states(sync_sessions, sub)
    assert {k: (r.status, float(r.quantity)) for k, r in got.items()} == {
        ("vcpu_hours", hours_ago(3)): ("accepted", 48.0),
        ("gpu_hours", hours_ago(3)): ("accepted", 2.0),
        ("vcpu_hours", hours_ago(2)): ("accepted", 48.0),
        ("gpu_hours", hours_ago(2)): ("accepted", 2.0),
    }
    assert all(r.usage_event_id and r.message_time and r.attempts == 1 for r in got.values())
    events = accepted_usage(market, sub)
    assert sorted((e["dimension"], e["quantity"], e["usageEventId"]) for e in events) == sorted(
        (r.dimension, float(r.quantity), r.usage_event_id) for r in got.values()
    )

    # Nothing is pending any more: another run sends nothing.
    assert Metering(sync_sessions, metering_settings).run().batches == 0
    assert len(accepted_usage(market, sub)) == 4


def test_each_marketplace_status_moves_the_record(
    world: World, market: Marketplace, sync_sessions: sessionmaker[Session], metering_settings: Settings
) -> None:
    hour = hours_ago(2)
    # Duplicate: the hour was already accepted (by an earlier run whose answer was lost).
    dup = market.subscribed("starter")
    first = market.api(
        "POST",
        "/api/batchUsageEvent",
        json={
            "request": [
                {
                    "resourceId": dup,
                    "planId": "starter",
                    "dimension": "vcpu_hours",
                    "quantity": 4.0,
                    "effectiveStartTime": hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        },
    ).json()["result"][0]
    # ResourceNotFound: the Marketplace never sold this subscription.
    unknown = "00000000-0000-4000-8000-" + dup[-12:]
    # InvalidDimension: our plan id is not the subscription's.
    wrong_plan = market.subscribed("starter")
    # ResourceNotActive: suspended (a Reinstate within 24 hours would make it billable).
    suspended = market.subscribed("team")
    market.webhook(suspended, "Suspend", deliver=False)

    for sub, plan in ((dup, "starter"), (unknown, "starter"), (wrong_plan, "team"), (suspended, "team")):
        t = world.tenant()
        world.subscription(t, sub, plan=plan)
        world.interval(t, world.cluster(t), "Standard_D4s_v5", 1, hour, hour + timedelta(hours=1))

    result = Metering(sync_sessions, metering_settings).run()
    assert result.outcomes == {"Duplicate": 1, "ResourceNotFound": 1, "InvalidDimension": 1, "ResourceNotActive": 1}

    d = states(sync_sessions, dup)[("vcpu_hours", hour)]
    assert (d.status, d.usage_event_id) == ("duplicate", first["usageEventId"])
    assert d.reason is not None
    assert "already recorded" in d.reason
    n = states(sync_sessions, unknown)[("vcpu_hours", hour)]
    assert (n.status, n.reason) == ("rejected", "ResourceNotFound: The usage resource provided is invalid.")
    w = states(sync_sessions, wrong_plan)[("vcpu_hours", hour)]
    assert w.status == "rejected"
    assert w.reason is not None
    assert w.reason.startswith("InvalidDimension:")
    s = states(sync_sessions, suspended)[("vcpu_hours", hour)]
    assert s.status == "pending"
    assert s.reason is not None
    assert s.reason.startswith("ResourceNotActive:")

    # Reinstated: the next run bills the hour; finished records are not sent again.
    market.webhook(suspended, "Reinstate", deliver=False)
    market.admin("POST", "/tick")
    sub_status = market.subscription(suspended)["saasSubscriptionStatus"]
    if sub_status != "Subscribed":  # Reinstate waits for the publisher's answer in this emulator
        ops = market.admin("GET", f"/operations?subscriptionId={suspended}")["value"]
        operation = [o for o in ops if o["action"] == "Reinstate"][-1]
        market.api(
            "PATCH",
            f"/api/saas/subscriptions/{suspended}/operations/{operation['id']}",
            json={"status": "Success"},
        )
    assert market.subscription(suspended)["saasSubscriptionStatus"] == "Subscribed"
    again = Metering(sync_sessions, metering_settings).run()
    assert again.outcomes == {"Accepted": 1}
    s = states(sync_sessions, suspended)[("vcpu_hours", hour)]
    assert (s.status, s.attempts) == ("accepted", 2)


def test_batches_hold_at_most_25_events(
    world: World, market: Marketplace, sync_sessions: sessionmaker[Session], metering_settings: Settings
) -> None:
    sub = market.subscribed("starter")
    t = world.tenant()
    world.subscription(t, sub)
    # 15 closed hours x 2 dimensions = 30 events.
    world.interval(t, world.cluster(t), "Standard_NC24ads_A100_v4", 1, hours_ago(15), hours_ago(0))
    sizes: list[int] = []
    result = Metering(sync_sessions, metering_settings, client=lambda: CountingClient(metering_settings, sizes)).run()
    assert sizes == [25, 5]
    assert result.batches == 2
    assert result.outcomes == {"Accepted": 30}
    assert len(accepted_usage(market, sub)) == 30


def test_dry_run_computes_and_marks_but_sends_nothing(
    world: World, market: Marketplace, sync_sessions: sessionmaker[Session], metering_settings: Settings
) -> None:
    sub = market.subscribed("starter")
    t = world.tenant()
    world.subscription(t, sub)
    world.interval(t, world.cluster(t), "Standard_D4s_v5", 1, hours_ago(3), hours_ago(1))
    dry = metering_settings.model_copy(update={"metering_dry_run": True})
    sizes: list[int] = []
    result = Metering(sync_sessions, dry, client=lambda: CountingClient(dry, sizes)).run()
    assert result.created == {"dry_run": 2}
    assert sizes == []
    assert {r.status for r in states(sync_sessions, sub).values()} == {"dry_run"}
    # Turning dry run off later does not send what was computed in dry run.
    Metering(sync_sessions, metering_settings, client=lambda: CountingClient(metering_settings, sizes)).run()
    assert sizes == []
    assert accepted_usage(market, sub) == []


def test_an_hour_nearing_24_hours_warns_and_one_past_them_expires_with_an_alert(
    world: World,
    market: Marketplace,
    sync_sessions: sessionmaker[Session],
    metering_settings: Settings,
    logs: Logs,
) -> None:
    sub = market.subscribed("starter")
    t = world.tenant()
    world.subscription(t, sub)
    world.interval(t, world.cluster(t), "Standard_D4s_v5", 1, hours_ago(3), hours_ago(2))
    now = utcnow()
    # The Marketplace is down for the first run: the hour stays unfinished.
    down = metering_settings.model_copy(update={"marketplace_api_url": "https://127.0.0.1:9"})
    first = Metering(sync_sessions, down, client=lambda: MeteringClient(down, retries=0, timeout=2)).run(now=now)
    assert first.error is not None
    # Unreachable counts as "may have arrived": kept submitted, and sent again next run.
    assert {r.status for r in states(sync_sessions, sub).values()} == {"submitted"}

    # 18 hours later (the hour is ~21 h old): a warning and the near-expiry gauge, still billable.
    Metering(sync_sessions, down, client=lambda: MeteringClient(down, retries=0, timeout=2)).run(
        now=now + timedelta(hours=18)
    )
    warned = [w for w in logs.events("metering_hour_near_expiry") if w["subscription_id"] == sub]
    assert len(warned) == 1
    assert warned[0]["level"] == "warning"
    assert (REGISTRY.get_sample_value("rayplane_metering_hours_near_expiry") or 0) >= 1

    # The Marketplace's clock is 25 hours ahead: it answers Expired, and the record ends expired.
    market.configure(now_offset_seconds=25 * 3600)
    result = Metering(sync_sessions, metering_settings).run()
    assert result.outcomes == {"Expired": 1}
    record = states(sync_sessions, sub)[("vcpu_hours", hours_ago(3))]
    assert record.status == "expired"
    assert record.reason is not None
    assert record.reason.startswith("Expired:")
    alerts = [a for a in logs.events("metering_hour_expired") if a["subscription_id"] == sub]
    assert [(a["level"], a["hour"]) for a in alerts] == [("error", hours_ago(3).isoformat())]
    assert (REGISTRY.get_sample_value("rayplane_metering_hours_expired") or 0) >= 1
    assert accepted_usage(market, sub) == []


def test_an_unfinished_hour_expires_locally_after_24_hours(
    world: World, market: Marketplace, sync_sessions: sessionmaker[Session], metering_settings: Settings, logs: Logs
) -> None:
    sub = market.subscribed("starter")
    t = world.tenant()
    world.subscription(t, sub)
    world.interval(t, world.cluster(t), "Standard_D4s_v5", 1, hours_ago(3), hours_ago(2))
    dry = metering_settings.model_copy(update={"metering_dry_run": True})
    now = utcnow()
    Metering(sync_sessions, dry).run(now=now)
    with sync_sessions() as s, s.begin():
        for r in s.execute(select(MeteringRecord).where(MeteringRecord.subscription_id == sub)).scalars():
            r.status = "submitted"  # as if sent by a run that died before recording the answer
    sizes: list[int] = []
    live = Metering(sync_sessions, metering_settings, client=lambda: CountingClient(metering_settings, sizes))
    result = live.run(now=now + timedelta(hours=23))
    assert result.expired == 1
    assert sizes == []  # too old to send: the Marketplace would only answer Expired
    record = states(sync_sessions, sub)[("vcpu_hours", hours_ago(3))]
    assert record.status == "expired"
    assert record.reason is not None
    assert "may have it" in record.reason
    assert [a["subscription_id"] for a in logs.events("metering_hour_expired")] == [sub]


def test_a_cancelled_subscription_ends_rejected_not_retried(
    world: World, market: Marketplace, sync_sessions: sessionmaker[Session], metering_settings: Settings
) -> None:
    sub = market.subscribed("starter")
    t = world.tenant()
    world.subscription(t, sub)
    hour = hours_ago(2)
    world.interval(t, world.cluster(t), "Standard_D4s_v5", 1, hour, hour + timedelta(hours=1))
    metering = Metering(sync_sessions, metering_settings)
    metering.aggregate(utcnow(), RunResult())  # computed while Subscribed...
    market.webhook(sub, "Unsubscribe", deliver=False)  # ...cancelled before it was sent
    with sync_sessions() as s, s.begin():
        row = s.get(MarketplaceSubscription, sub)
        assert row is not None
        row.status = "Unsubscribed"
    result = Metering(sync_sessions, metering_settings).run()
    assert result.outcomes == {"ResourceNotActive": 1}
    record = states(sync_sessions, sub)[("vcpu_hours", hour)]
    assert record.status == "rejected"
    assert record.reason is not None
    assert record.reason.startswith("ResourceNotActive:")
