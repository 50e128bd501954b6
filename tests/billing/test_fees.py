"""Rayplane's fee per metering dimension, beside the Azure compute price, in estimates and
usage: the tenant's plan's fee, or every plan's for a tenant without one.

Every test runs in the rolled-back transaction of the ``client``/``session`` fixtures.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing.periods import month_start
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.marketplace import plans
from rayplane.marketplace.models import MarketplaceSubscription
from tests.billing.test_api import add_interval, new_cluster
from tests.support.factories import Actor, Factory

D2 = "Standard_D2s_v5"  # 2 vCPUs
A100 = "Standard_NC24ads_A100_v4"  # 24 vCPUs, 1 GPU


def fee(plan_id: str, dimension: str) -> float:
    plan = plans.get(plan_id)
    assert plan is not None
    return next(d.usd_per_unit for d in plan.dimensions if d.id == dimension)


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


async def subscribe(session: AsyncSession, actor: Actor, plan_id: str) -> None:
    session.add(
        MarketplaceSubscription(
            id=new_id("sub"), tenant_id=actor.tenant.id, offer_id="rayplane", plan_id=plan_id, status="Subscribed"
        )
    )
    await session.commit()


SPEC: dict[str, Any] = {
    "head": {"vm_size": D2},
    "worker_groups": [{"name": "gpu", "vm_size": A100, "min_nodes": 1, "max_nodes": 3}],
}


# ---- fees in estimates ---------------------------------------------------------------------
async def test_estimate_shows_the_tenants_plan_fee_per_dimension(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor
) -> None:
    await subscribe(session, owner, "team")
    r = await client.post("/v1/clusters:estimate", headers=owner.headers, json=SPEC)
    assert r.status_code == 200, r.text
    body = r.json()
    vcpu, gpu = fee("team", "vcpu_hours"), fee("team", "gpu_hours")
    # head 2 vCPUs + 1..3 A100 nodes of 24 vCPUs and 1 GPU
    assert body["plan_id"] == "team"
    assert [
        (f["plan_id"], f["dimension"], f["usd_per_unit"], f["min_units_per_hour"], f["max_units_per_hour"])
        for f in body["fees"]
    ] == [("team", "vcpu_hours", vcpu, 26.0, 74.0), ("team", "gpu_hours", gpu, 1.0, 3.0)]
    assert body["fees"][0]["unit"] == "vCPU hour"
    assert body["fee_min_usd_per_hour"] == round(26 * vcpu + 1 * gpu, 4)
    assert body["fee_max_usd_per_hour"] == round(74 * vcpu + 3 * gpu, 4)
    assert "team" in body["fee_note"]
    # The compute price stays as it was, apart from the fee.
    assert body["complete"] is True
    assert body["min_usd_per_hour"] == round(sum(line["min_usd_per_hour"] for line in body["lines"]), 4)


async def test_estimate_without_a_plan_lists_every_plans_fee_and_no_fee_total(
    client: httpx.AsyncClient, owner: Actor
) -> None:
    body = (await client.post("/v1/clusters:estimate", headers=owner.headers, json=SPEC)).json()
    assert body["plan_id"] is None
    assert (body["fee_min_usd_per_hour"], body["fee_max_usd_per_hour"]) == (None, None)
    shown = [(f["plan_id"], f["dimension"], f["usd_per_unit"]) for f in body["fees"]]
    assert shown == [(p.id, d.id, d.usd_per_unit) for p in plans.all_plans() for d in p.dimensions]
    assert "no Azure Marketplace plan" in body["fee_note"]


# ---- fees in usage -------------------------------------------------------------------------
async def test_usage_shows_the_fee_of_the_observed_units(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor
) -> None:
    await subscribe(session, owner, "starter")
    cluster = await new_cluster(client, owner, "metered")
    start = month_start(utcnow()) - timedelta(days=40)
    await add_interval(session, owner, cluster, A100, 2, start, start + timedelta(hours=3))  # 144 vCPU-h, 6 GPU-h
    window = {"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()}
    vcpu, gpu = fee("starter", "vcpu_hours"), fee("starter", "gpu_hours")

    report = (await client.get("/v1/usage", headers=owner.headers, params=window)).json()
    assert report["plan_id"] == "starter"
    assert [(f["dimension"], f["quantity"], f["usd"]) for f in report["fees"]] == [
        ("vcpu_hours", 144.0, round(144 * vcpu, 4)),
        ("gpu_hours", 6.0, round(6 * gpu, 4)),
    ]
    assert report["fee_usd"] == round(144 * vcpu + 6 * gpu, 4)

    by_dim = (await client.get("/v1/usage", headers=owner.headers, params={**window, "group_by": "dimension"})).json()
    assert [(i["key"], i["quantity"], i["usd_per_unit"], i["fee_usd"]) for i in by_dim["items"]] == [
        ("vcpu_hours", 144.0, vcpu, round(144 * vcpu, 4)),
        ("gpu_hours", 6.0, gpu, round(6 * gpu, 4)),
    ]


async def test_usage_without_a_plan_has_no_fee_total(client: httpx.AsyncClient, owner: Actor) -> None:
    report = (await client.get("/v1/usage", headers=owner.headers, params={"group_by": "dimension"})).json()
    assert report["plan_id"] is None
    assert report["fee_usd"] is None
    assert {f["plan_id"] for f in report["fees"]} == {p.id for p in plans.all_plans()}
    assert all(f["quantity"] == 0 and f["usd"] == 0 for f in report["fees"])
    assert all(i["usd_per_unit"] is None and i["fee_usd"] is None for i in report["items"])
