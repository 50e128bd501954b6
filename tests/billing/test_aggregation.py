"""Metering aggregation: intervals split across UTC hours, in SQL, with exact quantities."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.billing.metering import Metering
from rayplane.billing.models import MeteringRecord, MeteringWatermark
from rayplane.db.base import utcnow
from rayplane.settings import Settings
from tests.billing.conftest import Logs, World, hours_ago

M = timedelta(minutes=1)


def records(
    sessions: sessionmaker[Session], *subscriptions: str
) -> dict[tuple[str, str, datetime], tuple[Decimal, str]]:
    with sessions() as s:
        rows = s.execute(select(MeteringRecord).where(MeteringRecord.subscription_id.in_(subscriptions))).scalars()
        return {(r.subscription_id, r.dimension, r.hour): (r.quantity, r.status) for r in rows}


@pytest.mark.parametrize("parallelism", [1, 3])
def test_three_hours_of_intervals_give_exact_hourly_quantities(
    world: World, sync_sessions: sessionmaker[Session], settings: Settings, parallelism: int
) -> None:
    h = hours_ago(5)
    now = h + timedelta(hours=5, minutes=10)  # hours h .. h+4 are closed; h+5 is not
    dry = settings.model_copy(
        update={"metering_dry_run": True, "metering_delay_seconds": 0, "metering_parallelism": parallelism}
    )

    a = world.tenant()
    sub_a = world.subscription(a)
    ca = world.cluster(a)
    # 2 x 4 vCPUs from h:30 to h+2:15 -> 4.0 | 8.0 | 2.0 vCPU-hours
    world.interval(a, ca, "Standard_D4s_v5", 2, h + 30 * M, h + timedelta(hours=2, minutes=15))
    # 1 x (24 vCPUs, 1 GPU) from h+1:45 to h+2:30 -> h+1: 6.0 vCPU, 0.25 GPU; h+2: 12.0 vCPU, 0.5 GPU
    world.interval(a, ca, "Standard_NC24ads_A100_v4", 1, h + timedelta(hours=1, minutes=45), h + timedelta(hours=2.5))

    b = world.tenant()
    sub_b = world.subscription(b, plan="team")
    cb = world.cluster(b)
    # still open: 3 x 2 vCPUs from h+2:40 -> 2.0 in h+2, 6.0 in h+3 and h+4, nothing in the open hour h+5
    world.interval(b, cb, "Standard_D2s_v5", 3, h + timedelta(hours=2, minutes=40), None)

    # Activated at h+1:30: usage before the purchase is not metered.
    e = world.tenant()
    sub_e = world.subscription(e, created_at=h + timedelta(hours=1, minutes=30))
    ce = world.cluster(e)
    world.interval(e, ce, "Standard_D2s_v5", 1, h, h + timedelta(hours=3))

    # No Marketplace subscription, or an Unsubscribed one: nothing is metered.
    c = world.tenant()
    world.interval(c, world.cluster(c), "Standard_D4s_v5", 1, h, h + timedelta(hours=3))
    d = world.tenant()
    sub_d = world.subscription(d, status="Unsubscribed")
    world.interval(d, world.cluster(d), "Standard_D4s_v5", 1, h, h + timedelta(hours=3))

    result = Metering(sync_sessions, dry).run(now=now)
    assert result.outcomes == {}  # dry run: nothing sent

    hour = [h + timedelta(hours=i) for i in range(5)]
    dry_run = "dry_run"
    assert records(sync_sessions, sub_a, sub_b, sub_e, sub_d) == {
        (sub_a, "vcpu_hours", hour[0]): (Decimal("4.000000"), dry_run),
        (sub_a, "vcpu_hours", hour[1]): (Decimal("14.000000"), dry_run),
        (sub_a, "gpu_hours", hour[1]): (Decimal("0.250000"), dry_run),
        (sub_a, "vcpu_hours", hour[2]): (Decimal("14.000000"), dry_run),
        (sub_a, "gpu_hours", hour[2]): (Decimal("0.500000"), dry_run),
        (sub_b, "vcpu_hours", hour[2]): (Decimal("2.000000"), dry_run),
        (sub_b, "vcpu_hours", hour[3]): (Decimal("6.000000"), dry_run),
        (sub_b, "vcpu_hours", hour[4]): (Decimal("6.000000"), dry_run),
        (sub_e, "vcpu_hours", hour[1]): (Decimal("1.000000"), dry_run),
        (sub_e, "vcpu_hours", hour[2]): (Decimal("2.000000"), dry_run),
    }
    assert result.created == {"dry_run": 10}

    # Idempotent: a second run computes no hour twice, even from before the watermark.
    again = Metering(sync_sessions, dry).run(now=now)
    assert sum(again.created.values()) == 0
    with sync_sessions() as s, s.begin():
        s.execute(delete(MeteringWatermark))
    assert sum(Metering(sync_sessions, dry).run(now=now).created.values()) == 0
    # A later run picks up the hour that has closed since, and only that one.
    later = Metering(sync_sessions, dry).run(now=now + timedelta(hours=1))
    assert later.created == {"dry_run": 1}
    assert records(sync_sessions, sub_b)[(sub_b, "vcpu_hours", h + timedelta(hours=5))] == (
        Decimal("6.000000"),
        dry_run,
    )


async def test_hours_first_seen_after_24_hours_are_recorded_expired_with_an_alert(
    world: World, sync_sessions: sessionmaker[Session], settings: Settings, logs: Logs, client: httpx.AsyncClient
) -> None:
    t = world.tenant()
    sub = world.subscription(t)
    cluster = world.cluster(t)
    now = utcnow()
    # 30 hours ago (the worker was down, say): the Marketplace would refuse it now.
    world.interval(t, cluster, "Standard_D2s_v5", 1, hours_ago(30, now), hours_ago(29, now))
    result = Metering(sync_sessions, settings.model_copy(update={"metering_delay_seconds": 0})).run(now=now)
    assert result.created == {"expired": 1}
    assert result.batches == 0  # never sent
    assert records(sync_sessions, sub) == {(sub, "vcpu_hours", hours_ago(30, now)): (Decimal("2.000000"), "expired")}
    alerts = logs.events("metering_hour_expired")
    assert [(a["subscription_id"], a["hour"], a["level"]) for a in alerts] == [
        (sub, hours_ago(30, now).isoformat(), "error")
    ]
    # The API's /metrics reads the alert's gauge from the database.
    metrics = (await client.get("/metrics")).text
    expired = [line for line in metrics.splitlines() if line.startswith("rayplane_metering_hours_expired ")]
    assert expired
    assert float(expired[0].split()[1]) >= 1
