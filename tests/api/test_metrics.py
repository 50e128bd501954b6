"""``GET /v1/clusters/{id}/metrics`` over stored points, and the tiers' upkeep: means per
step, the tier that answers, every field error at once, tenant isolation, and rollups that
write each bucket once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.db.base import utcnow
from rayplane.metrics import store
from rayplane.metrics.models import MetricPoint
from rayplane.metrics.tiers import on_grid, tiers
from tests.support.factories import Actor, Factory

TIERS = tiers(15, 30)


async def cluster(client: httpx.AsyncClient, actor: Actor) -> str:
    body = {"name": "m", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}
    r = await client.post("/v1/clusters", headers=actor.headers, json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def test_means_per_step_by_group_from_the_finest_tier(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    actor = await factory.actor()
    cid = await cluster(client, actor)
    start = on_grid(utcnow(), timedelta(minutes=1)) - timedelta(minutes=10)
    for i in range(40):  # ten minutes of 15-second scrapes
        figures = {"cpu_utilization_percent": float(i), "cpu_utilization_percent/cpu": 2.0 * i, "nodes_ready": 1.0}
        session.add(MetricPoint(cluster_id=cid, tier=0, at=start + timedelta(seconds=15 * i), figures=figures))
    await session.flush()
    params: dict[str, Any] = {"names": "cpu_utilization_percent", "from": start.isoformat(), "step": 60}
    r = await client.get(f"/v1/clusters/{cid}/metrics", headers=actor.headers, params=params)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["step_seconds"], out["resolution_seconds"]) == (60, 15)
    series = {(s["name"], s["group"]): s["points"] for s in out["series"]}
    assert set(series) == {("cpu_utilization_percent", None), ("cpu_utilization_percent", "cpu")}
    whole = series[("cpu_utilization_percent", None)]
    assert len(whole) == 10
    assert [v for _, v in whole[:2]] == [1.5, 5.5]  # the mean of 0..3, then of 4..7
    assert series[("cpu_utilization_percent", "cpu")][0][1] == 3.0

    # Every figure by default; another tenant's cluster is not found, nor a cluster as a service.
    r = await client.get(f"/v1/clusters/{cid}/metrics", headers=actor.headers, params={"from": start.isoformat()})
    assert {s["name"] for s in r.json()["series"]} == {"cpu_utilization_percent", "nodes_ready"}
    other = await factory.actor()
    assert (await client.get(f"/v1/clusters/{cid}/metrics", headers=other.headers)).status_code == 404
    assert (await client.get(f"/v1/services/{cid}/metrics", headers=actor.headers)).status_code == 404


async def test_every_bad_parameter_at_once(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    cid = await cluster(client, actor)
    now = utcnow()
    params: dict[str, Any] = {"names": "cpu_utilization_percent,gpu_fun,x", "from": now.isoformat(), "step": 5}
    params["to"] = (now - timedelta(hours=1)).isoformat()
    r = await client.get(f"/v1/clusters/{cid}/metrics", headers=actor.headers, params=params)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    [names] = [e for e in r.json()["errors"] if e["field"] == "query.names"]
    assert "gpu_fun, x" in names["message"]
    r = await client.get(
        f"/v1/clusters/{cid}/metrics", headers=actor.headers, params={"to": params["to"], "from": now.isoformat()}
    )
    assert [e["field"] for e in r.json()["errors"]] == ["query.to"]
    week: dict[str, Any] = {"from": (now - timedelta(days=7)).isoformat(), "step": 60}
    r = await client.get(f"/v1/clusters/{cid}/metrics", headers=actor.headers, params=week)
    assert [e["field"] for e in r.json()["errors"]] == ["query.step"]  # 10,080 points
    r = await client.get(f"/v1/clusters/{cid}/metrics", headers=actor.headers, params={"step": 0})
    assert r.status_code == 422


async def test_rollups_write_each_bucket_once_and_pruning_bounds_each_tier(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    actor = await factory.actor()
    cid = await cluster(client, actor)
    now = on_grid(utcnow(), timedelta(minutes=15))
    for i in range(20):  # five minutes, 20 to 15 minutes ago
        at = now - timedelta(minutes=20) + timedelta(seconds=15 * i)
        session.add(MetricPoint(cluster_id=cid, tier=0, at=at, figures={"tasks_running": float(i % 4)}))
    session.add(MetricPoint(cluster_id=cid, tier=0, at=now - timedelta(hours=4), figures={"tasks_running": 9.0}))
    await session.flush()

    def upkeep(s: Any) -> tuple[int, int, int]:
        first = store.roll_up(s, TIERS[0], TIERS[1], now)
        again = store.roll_up(s, TIERS[0], TIERS[1], now)
        return first, again, store.prune(s, TIERS[0], now)

    first, again, pruned = await session.run_sync(upkeep)
    assert (again, pruned) == (0, 1)
    minutes = (
        await session.execute(
            select(MetricPoint.at, MetricPoint.figures).where(MetricPoint.cluster_id == cid, MetricPoint.tier == 1)
        )
    ).all()
    # The 4-hour-old scrape was beyond tier 0's three hours and the rollup's start.
    assert first == len(minutes) == 5
    assert {f["tasks_running"] for _, f in minutes} == {1.5}
    left = await session.scalar(
        select(func.count()).select_from(MetricPoint).where(MetricPoint.cluster_id == cid, MetricPoint.tier == 0)
    )
    assert left == 20
    # A week's window answers from the 15-minute tier.
    r = await client.get(
        f"/v1/clusters/{cid}/metrics",
        headers=actor.headers,
        params={"from": (now - timedelta(days=3)).isoformat(), "step": 3600},
    )
    assert r.json()["resolution_seconds"] == 900
