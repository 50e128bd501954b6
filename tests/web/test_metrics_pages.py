"""A cluster's metrics page and the JSON its charts poll, in process: figures seeded through the
metrics store as the scraper writes them, read back through the metrics service on one time
axis; the range picker's steps; no figures yet; roles and tenant isolation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from api.state import AppState
from rayplane.common.principal import Role
from rayplane.db.base import utcnow
from rayplane.metrics import store
from rayplane.metrics.schemas import MetricsOut
from rayplane.metrics.tiers import on_grid
from tests.web.pagekit import Org, api, organisation
from web.metrics_page import CLUSTER_CHARTS, chart_data

SPEC = {"name": "charts", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}
GIB = 2**30


@pytest.fixture
async def org(state: AppState, session: AsyncSession) -> AsyncIterator[Org]:
    async with organisation(state, session) as found:
        yield found


async def new_cluster(state: AppState, org: Org) -> str:
    async with api(state)() as client:
        answer = await client.post("/v1/clusters", headers=org.api.headers, json=SPEC)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def seed(session: AsyncSession, cid: str, scrapes: int) -> None:
    """``scrapes`` 15-second scrapes ending a minute ago, through the store's own write."""
    end = on_grid(utcnow(), timedelta(seconds=30)) - timedelta(minutes=1)
    rows = []
    for i in range(scrapes):
        figures = {
            "nodes_ready": 1.0,
            "nodes_wanted": 2.0,
            "cpu_utilization_percent": float(10 * (i % 2)),  # 0, 10, 0, 10: each 30 s means 5
            "cpu_utilization_percent/head": 99.0,  # a group's series is not charted
            "memory_used_bytes": 3.0 * GIB,
            "tasks_running": 4.0,
        }
        rows.append((end - timedelta(seconds=15 * (scrapes - i)), figures))

    def write(s: Session) -> None:
        for at, figures in rows:
            assert store.add(s, cid, at, figures, {})

    await session.run_sync(write)
    await session.commit()


def block(html: str) -> dict[str, Any]:
    opening = '<script type="application/json" id="metrics-data">'
    data: dict[str, Any] = json.loads(html.split(opening)[1].split("</script>")[0])
    return data


async def test_the_charts_json_has_the_seeded_figures_on_one_axis(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    cid = await new_cluster(state, org)
    await seed(session, cid, 8)  # two minutes
    viewer = org.people[Role.VIEWER]
    answer = await viewer.client.get(f"/console/clusters/{cid}/metrics.json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    data = answer.json()
    assert (data["range"], data["step_seconds"], data["empty"]) == ("1h", 30, False)
    assert len(data["x"]) == 120
    assert data["x"] == [data["x"][0] + 30 * i for i in range(120)]
    charts = {c["key"]: c for c in data["charts"]}
    assert list(charts) == ["nodes", "cpu", "memory", "object-store", "work"]  # no GPU on this size
    assert [s["label"] for s in charts["nodes"]["series"]] == ["Ready", "Wanted"]
    [cpu] = charts["cpu"]["series"]
    filled = [v for v in cpu["values"] if v is not None]
    assert filled == [5.0, 5.0, 5.0, 5.0]  # means of the whole cluster's series, never the head's 99
    assert cpu["values"][-1] is None
    assert cpu["values"][0] is None
    used, total = charts["memory"]["series"]
    assert {v for v in used["values"] if v is not None} == {3.0}  # GiB
    assert all(v is None for v in total["values"])
    assert [s["label"] for s in charts["work"]["series"]][:2] == ["Tasks running", "Tasks waiting"]
    assert (charts["cpu"]["latest"], charts["memory"]["latest"]) == ("Latest: CPU 5", "Latest: Used 3")

    # The page has the same data in its block, the picker, and what the script polls.
    page = await viewer.client.get(f"/console/clusters/{cid}/metrics")
    assert page.status_code == 200
    assert block(page.text)["charts"] == data["charts"]
    assert f'data-source="/console/clusters/{cid}/metrics.json?range=1h"' in page.text
    assert '<script src="/static/metrics-chart.js" defer></script>' in page.text
    assert 'id="metrics-empty" class="note" hidden' in page.text
    assert f'href="/console/clusters/{cid}/metrics?range=30d"' in page.text
    assert "<code>rayplane metrics charts --since 1h</code>" in page.text
    cluster_page = await viewer.client.get(f"/console/clusters/{cid}")
    assert f'href="/console/clusters/{cid}/metrics"' in cluster_page.text


async def test_ranges_map_to_steps_and_a_new_cluster_has_no_figures_yet(org: Org, state: AppState) -> None:
    cid = await new_cluster(state, org)
    owner = org.people[Role.OWNER]
    for key, step, points in (("6h", 180, 120), ("2d", 1800, 96), ("30d", 21600, 120), ("nonsense", 30, 120)):
        data = (await owner.client.get(f"/console/clusters/{cid}/metrics.json", params={"range": key})).json()
        assert (data["step_seconds"], len(data["x"])) == (step, points), key
        assert data["empty"] is True
    page = await owner.client.get(f"/console/clusters/{cid}/metrics", params={"range": "2d"})
    assert 'id="metrics-empty" class="note">No figures yet' in page.text
    assert '<p class="note latest" id="latest-cpu">No figures in this range.</p>' in page.text
    assert f'<a href="/console/clusters/{cid}/metrics?range=2d" aria-current="true">' in page.text


async def test_another_tenant_and_a_signed_out_poll_get_nothing(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    cid = await new_cluster(state, org)
    await seed(session, cid, 2)
    async with organisation(state, session) as other:
        stranger = other.people[Role.OWNER].client
        assert (await stranger.get(f"/console/clusters/{cid}/metrics")).status_code == 404
        assert (await stranger.get(f"/console/clusters/{cid}/metrics.json")).status_code == 404
    # A cluster is not a service, on the console as in the API.
    assert (await org.people[Role.OWNER].client.get(f"/console/services/{cid}/metrics.json")).status_code == 404
    async with api(state)() as anonymous:
        answer = await anonymous.get(f"/console/clusters/{cid}/metrics.json")
        assert answer.status_code == 401
        assert (await anonymous.get(f"/console/clusters/{cid}/metrics")).status_code == 303  # to sign in


def test_the_gpu_chart_is_drawn_only_for_a_cluster_with_gpus() -> None:
    start = on_grid(utcnow(), timedelta(minutes=1))
    out = MetricsOut.model_validate(
        {
            "cluster_id": "cls_x",
            "from": start,
            "to": start + timedelta(minutes=2),
            "step_seconds": 30,
            "resolution_seconds": 15,
            "series": [
                {"name": "gpu_utilization_percent", "group": None, "points": [(start + timedelta(seconds=30), 70.0)]},
                {"name": "gpu_utilization_percent", "group": "gpu", "points": [(start, 1.0)]},
            ],
        }
    )
    with_gpus = chart_data(out, CLUSTER_CHARTS, gpu=True, range_key="1h")
    [gpu] = [c for c in with_gpus["charts"] if c["key"] == "gpu"]
    assert gpu["series"][0]["values"] == [None, 70.0, None, None]
    assert "gpu" not in [c["key"] for c in chart_data(out, CLUSTER_CHARTS, gpu=False, range_key="1h")["charts"]]
