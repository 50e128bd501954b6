"""Budgets: each threshold alerts once a month; the hard stop stops clusters and refuses
starts (403 saying why) until the budget is raised or the month ends."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.audit.models import AuditEntry
from rayplane.billing.budget_check import check_budgets
from rayplane.billing.budgets import Spend, blocked_reason
from rayplane.billing.models import Budget
from rayplane.billing.periods import month_start
from rayplane.billing.pricing import Cost
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.usage.models import UsageInterval
from tests.billing.conftest import Logs, catalog_price
from tests.support.factories import Actor

A100 = catalog_price("Standard_NC24ads_A100_v4")  # USD/hour
NODES = 100


def spend(sessions: sessionmaker[Session], actor: Actor, cluster_id: str, usd: float) -> None:
    """Add ``usd`` of A100 usage this month: NODES nodes, closed a second ago."""
    now = utcnow()
    end = now - timedelta(seconds=1)
    start = end - timedelta(hours=usd / (A100 * NODES))
    assert start >= month_start(now), "too early in the month for this test's usage"
    with sessions() as s, s.begin():
        s.add(
            UsageInterval(
                id=new_id("use"),
                tenant_id=actor.tenant.id,
                cluster_id=cluster_id,
                group_name=new_id("g")[-8:],
                vm_size="Standard_NC24ads_A100_v4",
                spot=False,
                node_count=NODES,
                vcpus=24,
                gpus=1,
                started_at=start,
                ended_at=end,
            )
        )


async def create(client: httpx.AsyncClient, actor: Actor, name: str) -> httpx.Response:
    return await client.post("/v1/clusters", headers=actor.headers, json={"name": name})


def alerts_for(result_alerts: list[tuple[str, int]], tenant_id: str) -> list[int]:
    return [threshold for tenant, threshold in result_alerts if tenant == tenant_id]


async def test_thresholds_alert_once_each_then_hard_stop_blocks_until_raised(
    committed: tuple[httpx.AsyncClient, Actor], sync_sessions: sessionmaker[Session], logs: Logs
) -> None:
    client, actor = committed
    tid = actor.tenant.id
    one = (await create(client, actor, "one")).json()["id"]
    two = (await create(client, actor, "two")).json()["id"]
    put = await client.put("/v1/budget", headers=actor.headers, json={"amount_usd": 100, "hard_stop": True})
    assert put.status_code == 200, put.text

    spend(sync_sessions, actor, one, 60)
    assert alerts_for(check_budgets(sync_sessions).alerts, tid) == [50]
    assert alerts_for(check_budgets(sync_sessions).alerts, tid) == []  # once a month
    spend(sync_sessions, actor, one, 25)
    result = check_budgets(sync_sessions)
    assert alerts_for(result.alerts, tid) == [80]
    assert result.stopped == []

    spend(sync_sessions, actor, two, 20)  # 105 of 100
    result = check_budgets(sync_sessions)
    assert alerts_for(result.alerts, tid) == [100]
    assert result.blocked == [tid]
    assert sorted(result.stopped) == sorted([one, two])

    with sync_sessions() as s:
        for cid in (one, two):
            cluster = s.get(Cluster, cid)
            assert cluster is not None
            assert cluster.desired_state == "stopped"
            events = s.execute(select(ClusterEvent).where(ClusterEvent.cluster_id == cid)).scalars()
            stops = [e.reason for e in events if e.kind == "budget_stop"]
            assert len(stops) == 1
            assert "monthly budget of $100.00 reached" in (stops[0] or "")
            ops = s.execute(select(Operation).where(Operation.cluster_id == cid)).scalars()
            assert [o.kind for o in ops if o.kind == "stop"] == ["stop"]
        audit = s.execute(
            select(AuditEntry.action, AuditEntry.target_id).where(
                AuditEntry.tenant_id == tid, AuditEntry.actor_id == "system:budget"
            )
        ).all()
    assert sorted(a for a, _ in audit) == sorted(["budget.alert"] * 3 + ["budget.hard_stop"] + ["clusters.stop"] * 2)
    assert [w["threshold_percent"] for w in logs.events("budget_threshold_reached") if w["tenant_id"] == tid] == [
        50,
        80,
        100,
    ]
    assert [w["tenant_id"] for w in logs.events("budget_hard_stop")] == [tid]

    # Starts and creates are refused, saying why.
    refused = await client.post(f"/v1/clusters/{one}:start", headers=actor.headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "monthly budget of $100.00 is spent" in refused.json()["detail"]
    assert (await create(client, actor, "three")).status_code == 403
    view = (await client.get("/v1/budget", headers=actor.headers)).json()
    assert view["spend"]["blocked"] is True
    assert view["blocked_reason"].startswith("the tenant's monthly budget")
    assert [a["threshold"] for a in view["alerts"]] == [50, 80, 100]
    assert 104 < view["spend"]["month_to_date_usd"] < 106
    overview = (await client.get("/v1/overview", headers=actor.headers)).json()
    assert [a["threshold"] for a in overview["budget_alerts"]] == [50, 80, 100]
    assert (overview["spend"]["blocked"], overview["spend"]["budget_usd"]) == (True, 100.0)
    assert any(e["kind"] == "budget_stop" for e in overview["recent_events"])

    # The next check changes nothing: nothing runs, every alert was raised.
    again = check_budgets(sync_sessions)
    assert (alerts_for(again.alerts, tid), again.stopped) == ([], [])

    metrics = (await client.get("/metrics")).text
    assert _sample(metrics, "rayplane_budget_alerts_month") >= 3
    assert _sample(metrics, "rayplane_budget_blocked_tenants") >= 1

    # Raising the budget above the spend lifts the block at once.
    raised = await client.put("/v1/budget", headers=actor.headers, json={"amount_usd": 200, "hard_stop": True})
    assert raised.json()["spend"]["blocked"] is False
    assert (await client.post(f"/v1/clusters/{one}:start", headers=actor.headers)).status_code == 202
    assert check_budgets(sync_sessions).stopped == []
    with sync_sessions() as s:
        lifted = s.execute(
            select(AuditEntry.detail).where(AuditEntry.tenant_id == tid, AuditEntry.action == "budget.put")
        ).scalars()
        assert any((d or {}).get("lifted_hard_stop") for d in lifted)

    # Lowered below the spend again: refused at once, before any check runs.
    await client.put("/v1/budget", headers=actor.headers, json={"amount_usd": 100, "hard_stop": True})
    assert (await client.post(f"/v1/clusters/{two}:start", headers=actor.headers)).status_code == 403


def test_a_new_month_lifts_the_block() -> None:
    now = utcnow()
    this_month = month_start(now)
    budget = Budget(
        id="bgt_x",
        tenant_id="ten_x",
        amount_usd=100,
        alert_thresholds=[],
        hard_stop=True,
        blocked_month=this_month.date(),
    )
    spent = Spend(Cost(usd=105.0, priced_node_hours=1.0), 105.0)
    assert blocked_reason(budget, spent, now) is not None
    next_month = (this_month + timedelta(days=32)).replace(day=1, hour=1)
    assert blocked_reason(budget, Spend(Cost(), 0.0), next_month) is None


async def test_without_hard_stop_spend_over_budget_only_alerts(
    committed: tuple[httpx.AsyncClient, Actor], sync_sessions: sessionmaker[Session]
) -> None:
    client, actor = committed
    cid = (await create(client, actor, "soft")).json()["id"]
    await client.put("/v1/budget", headers=actor.headers, json={"amount_usd": 10, "alert_thresholds": [100, 150]})
    spend(sync_sessions, actor, cid, 20)
    result = check_budgets(sync_sessions)
    assert alerts_for(result.alerts, actor.tenant.id) == [100, 150]
    assert result.stopped == []
    assert (await create(client, actor, "another")).status_code == 202


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
