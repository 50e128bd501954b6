"""The services pages in process: the list and a service's page as the API shows it, a viewer
without write controls, forged posts refused, another tenant's service (or a plain cluster)
not found, stop and delete through the confirmation with the API's audit, and Serve's
figures in the service's charts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from api.state import AppState
from rayplane.audit.models import AuditEntry
from rayplane.clusters.models import Cluster
from rayplane.clusters.states import transition
from rayplane.clusters.values import State
from rayplane.common.principal import Role
from rayplane.db.base import utcnow
from rayplane.metrics import store
from rayplane.metrics.tiers import on_grid
from tests.web.pagekit import Org, api, organisation

SERVICE = {
    "name": "echo",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [],
    "serve": {"applications": [{"name": "echo", "import_path": "echo:app", "route_prefix": "/echo"}]},
}


@pytest.fixture
async def org(state: AppState, session: AsyncSession, redis_url: str) -> AsyncIterator[Org]:
    if not redis_url.startswith(("redis://", "rediss://")):
        pytest.skip("a service's head keeps its GCS in a TCP Redis; this run's is a unix socket")
    async with organisation(state, session) as found:
        yield found


async def call(state: AppState, org: Org, method: str, path: str, body: Any = None) -> Any:
    async with api(state)() as client:
        answer = await client.request(method, path, headers=org.api.headers, json=body)
    assert answer.status_code < 300, answer.text
    return answer.json()


async def test_the_list_and_the_page_for_a_viewer_and_an_owner(org: Org, state: AppState) -> None:
    svc = await call(state, org, "POST", "/v1/services", SERVICE)
    viewer, owner = org.people[Role.VIEWER], org.people[Role.OWNER]
    listing = await viewer.client.get("/console/services")
    assert listing.status_code == 200
    assert f'<a href="/console/services/{svc["id"]}">echo</a>' in listing.text
    assert 'data-state="PENDING"' in listing.text
    assert '<a href="/console/services">Services</a>' in listing.text  # in the nav
    assert "rayplane services deploy -f service.yaml" in listing.text
    rows = await viewer.client.get("/console/services/rows")
    assert f'id="row-{svc["id"]}"' in rows.text

    page = await viewer.client.get(f"/console/services/{svc['id']}")
    assert page.status_code == 200
    assert "<h1>Service echo</h1>" in page.text
    assert "data-application" not in page.text
    assert "None reported yet." in page.text
    assert "/confirm/" not in page.text  # no write controls for a viewer
    assert f'data-source="/console/services/{svc["id"]}/metrics.json?range=1h"' in page.text
    assert "<code>rayplane metrics --service echo --since 1h</code>" in page.text
    assert "kubernetes" not in page.text.lower()
    live = await viewer.client.get(f"/console/services/{svc['id']}/live")
    assert 'data-state="PENDING"' in live.text

    mine = await owner.client.get(f"/console/services/{svc['id']}")
    assert f'href="/console/services/{svc["id"]}/confirm/stop"' in mine.text
    assert f'href="/console/services/{svc["id"]}/confirm/delete"' in mine.text
    assert "confirm/rollback" not in mine.text  # nothing is rolling out
    confirm = await owner.client.get(f"/console/services/{svc['id']}/confirm/delete")
    assert "Yes, delete echo" in confirm.text
    assert (await viewer.client.get(f"/console/services/{svc['id']}/confirm/delete")).status_code == 403


async def test_forged_posts_are_refused_and_a_member_stops_and_deletes(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    svc = await call(state, org, "POST", "/v1/services", SERVICE)
    path = f"/console/services/{svc['id']}/confirm"
    viewer, member = org.people[Role.VIEWER], org.people[Role.MEMBER]
    assert (await viewer.post(f"{path}/stop")).status_code == 403
    assert (await member.post(f"{path}/stop", csrf=False)).status_code == 403
    assert (await call(state, org, "GET", f"/v1/services/{svc['id']}"))["desired_state"] == "running"
    refused = await member.post(f"{path}/rollback")
    assert refused.status_code == 409
    assert "no rollout under way" in refused.text

    stopped = await member.post(f"{path}/stop")
    assert (stopped.status_code, stopped.headers["location"]) == (303, f"/console/services/{svc['id']}")
    assert (await call(state, org, "GET", f"/v1/services/{svc['id']}"))["desired_state"] == "stopped"
    audit = await session.execute(
        select(AuditEntry.target_type, AuditEntry.result).where(
            AuditEntry.target_id == svc["id"], AuditEntry.action == "web.service_act"
        )
    )
    assert audit.all() == [("service", "success")]  # the forged and refused posts changed nothing
    assert (await member.post(f"{path}/delete")).status_code == 303
    assert (await call(state, org, "GET", f"/v1/services/{svc['id']}"))["desired_state"] == "deleted"


async def test_another_tenants_service_and_a_cluster_are_not_found(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    svc = await call(state, org, "POST", "/v1/services", SERVICE)
    cluster = await call(state, org, "POST", "/v1/clusters", {"name": "plain", "head": {"vm_size": "Standard_D2s_v5"}})
    owner = org.people[Role.OWNER]
    assert (await owner.client.get(f"/console/services/{cluster['id']}")).status_code == 404
    assert (await owner.post(f"/console/services/{cluster['id']}/confirm/stop")).status_code == 404
    async with organisation(state, session) as other:
        stranger = other.people[Role.OWNER]
        for path in ("", "/live", "/confirm/stop", "/metrics.json"):
            answer = await stranger.client.get(f"/console/services/{svc['id']}{path}")
            assert answer.status_code in (404, 200), path
            if path != "/live":
                assert answer.status_code == 404, path
            else:  # the polled fragment sends the browser to the page, which says 404
                assert answer.headers["hx-redirect"] == f"/console/services/{svc['id']}"
        assert (await stranger.post(f"/console/services/{svc['id']}/confirm/stop")).status_code == 404
        assert svc["id"] not in (await stranger.client.get("/console/services")).text


async def test_the_service_charts_have_serves_figures(org: Org, state: AppState, session: AsyncSession) -> None:
    svc = await call(state, org, "POST", "/v1/services", SERVICE)
    end = on_grid(utcnow(), timedelta(seconds=30)) - timedelta(minutes=1)
    figures = {"serve_requests_per_second": 12.5, "serve_error_ratio": 0.02, "serve_latency_p50_ms": 8.0}

    def write(s: Session) -> None:
        assert store.add(s, svc["id"], end - timedelta(seconds=30), figures, {})

    await session.run_sync(write)
    await session.commit()
    data = (await org.people[Role.VIEWER].client.get(f"/console/services/{svc['id']}/metrics.json")).json()
    charts = {c["key"]: c["series"] for c in data["charts"]}
    assert list(charts) == ["requests", "errors", "latency"]
    assert [v for v in charts["requests"][0]["values"] if v is not None] == [12.5]
    assert [v for v in charts["errors"][0]["values"] if v is not None] == [2.0]  # percent
    p50, p99 = charts["latency"]
    assert ([v for v in p50["values"] if v is not None], p99["label"]) == ([8.0], "Slowest 1% (p99)")


async def test_a_rollout_shows_its_split_versions_and_failure_and_rolls_back(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    svc = await call(state, org, "POST", "/v1/services", SERVICE)
    await call(state, org, "PATCH", f"/v1/services/{svc['id']}", {"image": "img:2"})  # a new version
    row = (await session.execute(select(Cluster).where(Cluster.id == svc["id"]))).scalar_one()
    await session.refresh(row)

    def roll_out(sync: Session) -> None:  # as the reconciler moves and observes it (the API never does)
        for to in (State.PROVISIONING, State.RUNNING, State.ROLLING_OUT):
            transition(sync, row, to, reason="test")
        up = {"head": {"alive": True}, "groups": {}}
        row.observed = {
            **(row.observed or {}),
            "service": {
                "endpoint_url": "http://127.0.0.1:8000/svc/echo",
                "active_version": 1,
                "pending_version": 2,
                "traffic_percent": 40,
                "applications": [
                    {"version": 1, "name": "echo", "status": "RUNNING", "message": ""},
                    {"version": 2, "name": "echo", "status": "DEPLOYING", "message": "replicas starting"},
                ],
                "failure": None,
            },
            "versions": {"1": up, "2": {"head": {"alive": False}, "groups": {}}},
        }
        sync.flush()

    await session.run_sync(roll_out)
    await session.commit()
    owner, viewer = org.people[Role.OWNER], org.people[Role.VIEWER]
    listing = await viewer.client.get("/console/services/rows")
    assert "60% v1 · 40% v2" in listing.text
    assert "http://127.0.0.1:8000/svc/echo" in listing.text
    page = await owner.client.get(f"/console/services/{svc['id']}")
    assert 'data-state="ROLLING_OUT"' in page.text
    assert 'data-traffic="40"' in page.text
    assert "40% of new requests on v2" in page.text
    assert '<tr data-version="1"><td>v1 (serving)</td><td>up</td>' in page.text
    assert '<tr data-version="2"><td>v2 (rolling out)</td><td>not up</td>' in page.text
    assert "replicas starting" in page.text
    assert f'href="/console/services/{svc["id"]}/confirm/rollback"' in page.text
    assert "confirm/rollback" not in (await viewer.client.get(f"/console/services/{svc['id']}")).text

    rolled = await owner.post(f"/console/services/{svc['id']}/confirm/rollback")
    assert rolled.status_code == 303
    await session.refresh(row)
    assert row.rollback_requested is True
