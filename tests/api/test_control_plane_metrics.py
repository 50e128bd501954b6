"""``/metrics`` re-reads the control plane's shared state on each scrape: clusters per kind
and state (zeros included), the reconcile backlog and the task queue's depth."""

from __future__ import annotations

from datetime import timedelta

import httpx
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import AppState
from rayplane.clusters.models import Cluster
from rayplane.clusters.values import State
from rayplane.db.base import utcnow
from tests.support.factories import Factory


def sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[1])
    raise AssertionError(f"{series} not in /metrics")


def body(name: str) -> dict[str, object]:
    return {
        "name": name,
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 2}],
    }


async def test_clusters_per_state_the_reconcile_lag_and_the_queue(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, state: AppState, redis: Redis
) -> None:
    actor = await factory.actor()
    ids = []
    for name in ("a", "b", "c"):
        r = await client.post("/v1/clusters", headers=actor.headers, json=body(name))
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    now = utcnow()
    # One waits 90 s past its reconcile time, one 10 s; the third is not due for a minute.
    waits = (now - timedelta(seconds=90), now - timedelta(seconds=10), now + timedelta(minutes=1))
    for cid, due in zip(ids, waits, strict=True):
        await session.execute(update(Cluster).where(Cluster.id == cid).values(next_reconcile_at=due))
    await session.execute(update(Cluster).where(Cluster.id == ids[2]).values(state=State.FAILED))
    await session.flush()

    text = (await client.get("/metrics")).text
    assert sample(text, 'rayplane_clusters{kind="cluster",state="PENDING"}') == 2
    assert sample(text, 'rayplane_clusters{kind="cluster",state="FAILED"}') == 1
    assert sample(text, 'rayplane_clusters{kind="service",state="RUNNING"}') == 0  # zeros are reported
    assert 'state="DELETED"' not in text
    assert sample(text, "rayplane_reconcile_due") == 2
    assert 90 <= sample(text, "rayplane_reconcile_lag_seconds") < 120
    queue = state.settings.task_queue
    assert sample(text, f'rayplane_task_queue_depth{{queue="{queue}"}}') == await redis.llen(queue)  # type: ignore[misc]

    # The next scrape tells the new story: the failed cluster is deleted, nothing is due.
    await session.execute(update(Cluster).where(Cluster.id == ids[2]).values(state=State.DELETED))
    await session.execute(update(Cluster).values(next_reconcile_at=None))
    await session.flush()
    text = (await client.get("/metrics")).text
    assert sample(text, 'rayplane_clusters{kind="cluster",state="FAILED"}') == 0
    assert (sample(text, "rayplane_reconcile_due"), sample(text, "rayplane_reconcile_lag_seconds")) == (0, 0)
