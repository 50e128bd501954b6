"""The billing and portal endpoints: usage, metering records, overview, estimate, budget.

Data goes in through the API where the API can make it (clusters) and through the session
otherwise (usage intervals and metering records are written by workers); every test runs in
the rolled-back transaction of the ``client``/``session`` fixtures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing.models import MeteringRecord
from rayplane.catalog import get as catalog_size
from rayplane.common.principal import Role
from rayplane.db.ids import new_id
from rayplane.marketplace.models import MarketplaceSubscription
from rayplane.usage.models import UsageInterval
from tests.billing.conftest import WithoutPrice, catalog_price
from tests.support.factories import Actor, Factory

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


A100 = catalog_price("Standard_NC24ads_A100_v4")  # USD/hour
H100 = catalog_price("Standard_NC40ads_H100_v5")


async def new_cluster(client: httpx.AsyncClient, actor: Actor, name: str) -> str:
    body = {"name": name, "head": {"vm_size": "Standard_D2s_v5"}}
    r = await client.post("/v1/clusters", headers=actor.headers, json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def add_interval(
    session: AsyncSession,
    actor: Actor,
    cluster_id: str,
    vm_size: str,
    nodes: int,
    start: datetime,
    end: datetime | None,
    group: str = "g",
) -> None:
    size = catalog_size(vm_size)
    assert size is not None
    session.add(
        UsageInterval(
            id=new_id("use"),
            tenant_id=actor.tenant.id,
            cluster_id=cluster_id,
            group_name=group,
            vm_size=vm_size,
            spot=False,
            node_count=nodes,
            vcpus=size.vcpus,
            gpus=size.gpus,
            started_at=start,
            ended_at=end,
        )
    )
    await session.commit()


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


@pytest.fixture
async def usage(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor, without_price: WithoutPrice
) -> dict[str, str]:
    """alpha: 2 x A100 from DAY 22:00 to DAY+1 02:00; beta: 3 x D4s_v5 (made unpriced for the test)
    on DAY+1 10:00-11:30."""
    without_price("Standard_D4s_v5")
    alpha = await new_cluster(client, owner, "alpha")
    beta = await new_cluster(client, owner, "beta")
    await add_interval(
        session, owner, alpha, "Standard_NC24ads_A100_v4", 2, DAY + timedelta(hours=22), DAY + timedelta(hours=26)
    )
    await add_interval(
        session, owner, beta, "Standard_D4s_v5", 3, DAY + timedelta(hours=34), DAY + timedelta(hours=35.5)
    )
    return {"alpha": alpha, "beta": beta}


def window(**extra: Any) -> dict[str, Any]:
    return {"from": DAY.isoformat(), "to": (DAY + timedelta(days=2)).isoformat(), **extra}


async def test_usage_by_day_cluster_and_dimension(
    client: httpx.AsyncClient, owner: Actor, usage: dict[str, str], factory: Factory, session: AsyncSession
) -> None:
    # Another tenant's usage in the same window is not counted.
    other = await factory.actor()
    theirs = await new_cluster(client, other, "theirs")
    await add_interval(session, other, theirs, "Standard_NC24ads_A100_v4", 5, DAY, DAY + timedelta(hours=20))

    by_day = (await client.get("/v1/usage", headers=owner.headers, params=window(group_by="day"))).json()
    d0, d1 = DAY.date().isoformat(), (DAY + timedelta(days=1)).date().isoformat()
    assert by_day["group_by"] == "day"
    assert by_day["from"] == DAY.isoformat().replace("+00:00", "Z")
    assert [
        (i["key"], i["vcpu_hours"], i["gpu_hours"], i["node_hours"], i["cost_usd"], i["unpriced_vm_sizes"])
        for i in by_day["items"]
    ] == [
        (d0, 96.0, 4.0, 4.0, round(4 * A100, 4), []),
        (d1, 114.0, 4.0, 8.5, round(4 * A100, 4), ["Standard_D4s_v5"]),
    ]
    assert by_day["totals"] == {
        "vcpu_hours": 210.0,
        "gpu_hours": 8.0,
        "node_hours": 12.5,
        "cost_usd": round(8 * A100, 4),
        "unpriced_node_hours": 4.5,
        "unpriced_vm_sizes": ["Standard_D4s_v5"],
    }

    by_cluster = (await client.get("/v1/usage", headers=owner.headers, params=window(group_by="cluster"))).json()
    assert [(i["key"], i["label"], i["vcpu_hours"], i["cost_usd"]) for i in by_cluster["items"]] == sorted(
        [(usage["alpha"], "alpha", 192.0, round(8 * A100, 4)), (usage["beta"], "beta", 18.0, None)]
    )

    by_dim = (await client.get("/v1/usage", headers=owner.headers, params=window(group_by="dimension"))).json()
    assert [(i["key"], i["quantity"], i["unit"]) for i in by_dim["items"]] == [
        ("vcpu_hours", 210.0, "vCPU hour"),
        ("gpu_hours", 8.0, "GPU hour"),
    ]

    # The window cuts intervals: from DAY 23:00 leaves one of alpha's two hours on DAY.
    late = {"from": (DAY + timedelta(hours=23)).isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    clipped = (await client.get("/v1/usage", headers=owner.headers, params=late)).json()
    assert [(i["key"], i["node_hours"]) for i in clipped["items"]] == [(d0, 2.0)]


async def test_usage_defaults_to_this_month_and_counts_open_intervals_until_now(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor
) -> None:
    cluster = await new_cluster(client, owner, "open")
    now = datetime.now(UTC)
    await add_interval(session, owner, cluster, "Standard_NC24ads_A100_v4", 1, now - timedelta(minutes=30), None)
    body = (await client.get("/v1/usage", headers=owner.headers, params={"group_by": "cluster"})).json()
    assert body["from"].startswith(now.strftime("%Y-%m-01T00:00:00"))
    [row] = body["items"]
    assert 0.49 < row["node_hours"] < 0.6  # half an hour, and not a second beyond now


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "week"}, "query.group_by"),
        ({"from": "yesterday"}, "query.from"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query.to"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query.from"),
    ],
)
async def test_usage_validation_names_the_field(
    client: httpx.AsyncClient, owner: Actor, params: dict[str, str], field: str
) -> None:
    r = await client.get("/v1/usage", headers=owner.headers, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == [field]


async def add_record(session: AsyncSession, actor: Actor, hour: datetime, status: str) -> tuple[str, str]:
    subscription_id = f"sub-{actor.tenant.id}"
    if await session.get(MarketplaceSubscription, subscription_id) is None:
        session.add(
            MarketplaceSubscription(
                id=subscription_id,
                tenant_id=actor.tenant.id,
                offer_id="rayplane",
                plan_id="starter",
                status="Subscribed",
            )
        )
    session.add(
        MeteringRecord(
            tenant_id=actor.tenant.id,
            subscription_id=subscription_id,
            plan_id="starter",
            dimension="vcpu_hours",
            hour=hour,
            quantity=Decimal("2.5"),
            status=status,
            attempts=1 if status != "pending" else 0,
        )
    )
    await session.commit()
    return subscription_id, hour.isoformat().replace("+00:00", "Z")


async def test_metering_records_page_filter_and_isolation(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor, factory: Factory
) -> None:
    base = DAY + timedelta(hours=5)
    mine = [
        await add_record(session, owner, base + timedelta(hours=i), status)
        for i, status in enumerate(["accepted", "duplicate", "rejected", "pending", "accepted"])
    ]
    other = await factory.actor()
    await add_record(session, other, base, "accepted")

    def keys(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(r["subscription_id"], r["hour"]) for r in items]

    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/billing/metering-records", headers=owner.headers, params=params)).json()
        seen += keys(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == mine

    accepted = await client.get("/v1/billing/metering-records", headers=owner.headers, params={"status": "accepted"})
    assert keys(accepted.json()["items"]) == [mine[0], mine[4]]
    ranged = await client.get(
        "/v1/billing/metering-records",
        headers=owner.headers,
        params={"from": (base + timedelta(hours=1)).isoformat(), "to": (base + timedelta(hours=3)).isoformat()},
    )
    items = ranged.json()["items"]
    assert keys(items) == mine[1:3]
    assert (items[0]["status"], items[0]["quantity"], items[0]["dimension"]) == ("duplicate", 2.5, "vcpu_hours")

    for params, field in (
        ({"status": "done"}, "query.status"),
        ({"limit": 0}, "query.limit"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "query.cursor"),
    ):
        bad = await client.get("/v1/billing/metering-records", headers=owner.headers, params=params)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == field
    backwards = {"from": base.isoformat(), "to": (base - timedelta(hours=1)).isoformat()}
    bad = await client.get("/v1/billing/metering-records", headers=owner.headers, params=backwards)
    assert bad.json()["errors"][0]["field"] == "query.to"


async def test_roles_on_billing_endpoints(client: httpx.AsyncClient, factory: Factory, owner: Actor) -> None:
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    member = await factory.actor(Role.MEMBER, tenant=owner.tenant)
    for actor in (viewer, member):
        assert (await client.get("/v1/billing/metering-records", headers=actor.headers)).status_code == 403
        put = await client.put("/v1/budget", headers=actor.headers, json={"amount_usd": 10})
        assert put.status_code == 403
        assert (await client.get("/v1/usage", headers=actor.headers)).status_code == 200
        assert (await client.get("/v1/overview", headers=actor.headers)).status_code == 200
    assert (await client.get("/v1/usage")).status_code == 401


async def test_overview(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor, factory: Factory, usage: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    await add_interval(session, owner, usage["beta"], "Standard_D4s_v5", 3, now - timedelta(minutes=5), None, "w")
    await add_interval(session, owner, usage["beta"], "Standard_D4s_v5", 1, now - timedelta(minutes=5), None, "head")
    stop = await client.post(f"/v1/clusters/{usage['alpha']}:stop", headers=owner.headers)
    assert stop.status_code == 202
    other = await factory.actor()
    await new_cluster(client, other, "not-mine")

    body = (await client.get("/v1/overview", headers=owner.headers)).json()
    assert body["clusters_by_state"] == {"PENDING": 2}
    assert body["clusters_total"] == 2
    assert body["running_nodes"] == 4
    assert body["spend"]["month"] == now.strftime("%Y-%m")
    assert body["spend"]["budget_usd"] is None
    assert body["spend"]["unpriced_vm_sizes"] == ["Standard_D4s_v5"]
    events = body["recent_events"]
    assert {e["cluster_name"] for e in events} == {"alpha", "beta"}
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)

    await client.put("/v1/budget", headers=owner.headers, json={"amount_usd": "100.00"})
    spend = (await client.get("/v1/overview", headers=owner.headers)).json()["spend"]
    assert spend["budget_usd"] == 100.0
    assert spend["hard_stop"] is False


async def test_estimate_prices_from_the_catalog_and_never_invents_one(
    client: httpx.AsyncClient, owner: Actor, without_price: WithoutPrice
) -> None:
    priced = {
        "name": "gpu",  # a create body is accepted as it is
        "head": {"vm_size": "Standard_NC24ads_A100_v4"},
        "worker_groups": [{"name": "h100", "vm_size": "standard_nc40ads_h100_v5", "min_nodes": 0, "max_nodes": 2}],
    }
    r = await client.post("/v1/clusters:estimate", headers=owner.headers, json=priced)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is True
    assert (body["min_usd_per_hour"], body["max_usd_per_hour"]) == (A100, round(A100 + 2 * H100, 4))
    assert [(x["group"], x["vm_size"], x["usd_per_node_hour"]) for x in body["lines"]] == [
        ("head", "Standard_NC24ads_A100_v4", A100),
        ("h100", "Standard_NC40ads_H100_v5", H100),
    ]
    assert body["lines"][0]["price_region"] == "eastus"

    without_price("Standard_D4s_v5")
    partial = {
        "head": {"vm_size": "Standard_D4s_v5"},
        "worker_groups": [{"name": "a", "vm_size": "Standard_NC24ads_A100_v4", "min_nodes": 1, "max_nodes": 3}],
    }
    body = (await client.post("/v1/clusters:estimate", headers=owner.headers, json=partial)).json()
    assert body["complete"] is False
    assert (body["min_usd_per_hour"], body["max_usd_per_hour"]) == (None, None)
    assert (body["priced_min_usd_per_hour"], body["priced_max_usd_per_hour"]) == (A100, round(3 * A100, 4))
    assert body["unpriced_vm_sizes"] == ["Standard_D4s_v5"]
    assert body["lines"][0]["usd_per_node_hour"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"head": {"vm_size": "Standard_D4_v5"}}, "body.head.vm_size"),
        ({"worker_groups": [{"name": "a", "vm_size": "Standard_Nope"}]}, "body.worker_groups.0.vm_size"),
        (
            {"worker_groups": [{"name": "a", "vm_size": "Standard_D2s_v5", "min_nodes": 3, "max_nodes": 1}]},
            "body.worker_groups.0.min_nodes",
        ),
        (
            {"worker_groups": [{"name": "a", "vm_size": "Standard_D2s_v5", "max_nodes": -1}]},
            "body.worker_groups.0.max_nodes",
        ),
    ],
)
async def test_estimate_validation_names_the_field(
    client: httpx.AsyncClient, owner: Actor, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/v1/clusters:estimate", headers=owner.headers, json=body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


async def test_estimate_is_not_shadowed_by_cluster_routes(client: httpx.AsyncClient, owner: Actor) -> None:
    # /v1/clusters/{cluster_id}:stop and friends need a "/" after "clusters": the estimate's
    # path can only reach the estimate route, and the cluster routes keep working beside it.
    cluster = await new_cluster(client, owner, "beside")
    estimate = await client.post("/v1/clusters:estimate", headers=owner.headers, json={})
    assert estimate.status_code == 200
    assert estimate.json()["lines"][0]["group"] == "head"
    assert (await client.get("/v1/clusters:estimate", headers=owner.headers)).status_code == 405
    assert (await client.post(f"/v1/clusters/{cluster}:stop", headers=owner.headers)).status_code == 202
    missing = await client.post("/v1/clusters/cls_00000000000000000000000000:stop", headers=owner.headers)
    assert missing.status_code == 404


async def test_budget_crud_with_etags(client: httpx.AsyncClient, owner: Actor) -> None:
    missing = await client.get("/v1/budget", headers=owner.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")

    put = await client.put("/v1/budget", headers=owner.headers, json={"amount_usd": 250.5, "hard_stop": True})
    assert put.status_code == 200, put.text
    body = put.json()
    assert (body["amount_usd"], body["alert_thresholds"], body["hard_stop"]) == (250.5, [50, 80, 100], True)
    assert body["spend"]["blocked"] is False
    assert body["blocked_reason"] is None
    etag = put.headers["etag"]

    got = await client.get("/v1/budget", headers=owner.headers)
    assert got.headers["etag"] == etag
    changed = await client.put(
        "/v1/budget",
        headers={**owner.headers, "If-Match": etag},
        json={"amount_usd": 300, "alert_thresholds": [90, 25]},
    )
    assert changed.status_code == 200
    assert changed.json()["alert_thresholds"] == [25, 90]
    stale = await client.put("/v1/budget", headers={**owner.headers, "If-Match": etag}, json={"amount_usd": 1})
    assert stale.status_code == 412
    assert (await client.delete("/v1/budget", headers={**owner.headers, "If-Match": etag})).status_code == 412
    assert (await client.delete("/v1/budget", headers=owner.headers)).status_code == 204
    assert (await client.delete("/v1/budget", headers=owner.headers)).status_code == 404

    audit = (await client.get("/v1/audit-log", headers=owner.headers)).json()["items"]
    done = [a["action"] for a in audit if a["result"] == "success"]
    assert done[:3] == ["budget.delete", "budget.put", "budget.put"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_usd": 0}, "body.amount_usd"),
        ({"amount_usd": "12.345"}, "body.amount_usd"),
        ({}, "body.amount_usd"),
        ({"amount_usd": 10, "alert_thresholds": [50, 50]}, "body.alert_thresholds"),
        ({"amount_usd": 10, "alert_thresholds": [0]}, "body.alert_thresholds"),
        ({"amount_usd": 10, "hard_stop": "maybe"}, "body.hard_stop"),
        ({"amount_usd": 10, "currency": "EUR"}, "body.currency"),
    ],
)
async def test_budget_validation_names_the_field(
    client: httpx.AsyncClient, owner: Actor, body: dict[str, Any], field: str
) -> None:
    r = await client.put("/v1/budget", headers=owner.headers, json=body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]
