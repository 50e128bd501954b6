"""The usage page in process: the chart's data from usage seeded through the usage store,
month to date against the budget, the estimate, and the budget form with the API's roles."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from api.state import AppState
from rayplane import catalog
from rayplane.billing.repository import BillingRepository
from rayplane.common.principal import Role
from rayplane.db.base import utcnow
from rayplane.usage.store import GroupUsage, record_observation
from tests.web.pagekit import Org, api, organisation
from web.usage import month_estimate

SIZE = "Standard_D2s_v5"
SPEC = {"name": "usage-page", "head": {"vm_size": SIZE}, "worker_groups": []}


@pytest.fixture
async def org(state: AppState, session: AsyncSession) -> AsyncIterator[Org]:
    async with organisation(state, session) as found:
        yield found


async def seed(state: AppState, session: AsyncSession, org: Org, *, nodes: int, hours: float) -> datetime:
    """``nodes`` nodes of ``SIZE`` observed running for ``hours``, ending an hour ago, written
    by the usage store as the reconciler writes them. Returns the start."""
    async with api(state)() as client:
        answer = await client.post("/v1/clusters", headers=org.api.headers, json=SPEC)
    assert answer.status_code == 202, answer.text
    cid = answer.json()["id"]
    end = utcnow() - timedelta(hours=1)
    start = end - timedelta(hours=hours)
    up = [GroupUsage("head", SIZE, False, nodes, catalog.get(SIZE))]

    def observe(s: Session) -> None:
        record_observation(s, tenant_id=org.tenant.id, cluster_id=cid, groups=up, at=start)
        record_observation(s, tenant_id=org.tenant.id, cluster_id=cid, groups=[], at=end)

    await session.run_sync(observe)
    await session.commit()
    return start


def chart(html: str) -> dict[str, object]:
    block = html.split('<script type="application/json" id="usage-data">')[1].split("</script>")[0]
    data: dict[str, object] = json.loads(block)
    return data


def test_the_estimate_is_a_straight_line_through_the_month() -> None:
    assert month_estimate(10.0, datetime(2026, 11, 16, tzinfo=UTC)) == 20.0  # half of November
    assert month_estimate(None, datetime(2026, 11, 16, tzinfo=UTC)) is None
    assert month_estimate(5.0, datetime(2026, 11, 1, 0, 30, tzinfo=UTC)) is None  # too early


async def test_the_chart_has_the_seeded_usage(org: Org, state: AppState, session: AsyncSession) -> None:
    await seed(state, session, org, nodes=3, hours=2)
    answer = await org.people[Role.VIEWER].client.get("/console/usage")
    assert answer.status_code == 200
    data = chart(answer.text)
    series = data["series"]
    assert isinstance(series, list)
    assert [s["label"] for s in series] == ["vCPU hours", "GPU hours", "Node hours"]
    vcpu, _, node = (s["values"] for s in series)
    assert len(vcpu) == len(data["x"]) == 30  # type: ignore[arg-type]
    assert sum(vcpu) == pytest.approx(3 * 2 * 2, abs=0.01)  # 3 nodes x 2 vCPUs x 2 hours
    assert sum(node) == pytest.approx(6, abs=0.01)
    assert '<script src="/static/usage-chart.js" defer></script>' in answer.text
    assert "no budget set" in answer.text


async def test_a_viewer_sees_no_write_controls_and_forged_posts_are_refused(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    viewer, member = org.people[Role.VIEWER], org.people[Role.MEMBER]
    for who in (viewer, member):
        page = await who.client.get("/console/usage")
        assert 'action="/console/usage/budget"' not in page.text
    good = {"amount": "100", "thresholds": "50, 80"}
    assert (await viewer.post("/console/usage/budget", good)).status_code == 403
    assert (await member.post("/console/usage/budget", good)).status_code == 403  # admins only, as the API
    assert (await member.post("/console/usage/budget", {"amount": "lots"})).status_code == 403  # role first
    forged = await org.people[Role.OWNER].post("/console/usage/budget", good, csrf=False)
    assert forged.status_code == 403
    assert await BillingRepository(session).budget(org.tenant.id) is None


async def test_bad_input_shows_field_errors_and_a_good_budget_is_shown(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    admin = org.people[Role.ADMIN]
    for fields, error in (
        ({"amount": "lots", "thresholds": "50"}, "amount-error"),
        ({"amount": "-5", "thresholds": "50"}, "amount-error"),
        ({"amount": "100", "thresholds": "50, half"}, "thresholds-error"),
        ({"amount": "100", "thresholds": "50, 5000"}, "thresholds-error"),
    ):
        answer = await admin.post("/console/usage/budget", fields)
        assert answer.status_code == 422, fields
        assert f'id="{error}"' in answer.text, fields
        assert f'value="{fields["amount"]}"' in answer.text  # what was typed stays
    assert await BillingRepository(session).budget(org.tenant.id) is None

    saved = await admin.post("/console/usage/budget", {"amount": "1,250.50", "thresholds": "80 50"})
    assert saved.status_code == 303
    page = await org.people[Role.VIEWER].client.get("/console/usage")
    assert "$1,250.50" in page.text
    assert "alerts at 50%, 80%" in page.text
    budget = await BillingRepository(session).budget(org.tenant.id)
    assert budget is not None
    assert float(budget.amount_usd) == 1250.5
