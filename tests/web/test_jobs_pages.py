"""The jobs pages in process: the list and its polled rows, the submit form's field errors,
a finished job's page and log fragment, roles, forged posts, and another tenant's job."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import AppState
from rayplane.common.principal import Role
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.jobs.models import Job
from rayplane.jobs.repository import JobRepository
from tests.web.pagekit import Org, api, organisation
from web.jobs import parse_env

SPEC = {"name": "jobs-page", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}


@pytest.fixture
async def org(state: AppState, session: AsyncSession) -> AsyncIterator[Org]:
    async with organisation(state, session) as found:
        yield found


async def _cluster(state: AppState, org: Org) -> str:
    async with api(state)() as client:
        answer = await client.post("/v1/clusters", headers=org.api.headers, json=SPEC)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def _finished_job(session: AsyncSession, org: Org, cluster_id: str, logs: str) -> Job:
    """A job as the workers leave it once it ended (its log stored), added through the repository."""
    job = Job(
        id=new_id("job"),
        tenant_id=org.tenant.id,
        cluster_id=cluster_id,
        submission_id=f"sub-{new_id('x')}",
        entrypoint="python train.py",
        runtime_env={"env_vars": {"SEED": "1"}},
        status="SUCCEEDED",
        submitted_at=utcnow(),
        ended_at=utcnow(),
        logs=logs,
    )
    await JobRepository(session).add(job)
    await session.commit()
    return job


async def _count(session: AsyncSession, org: Org) -> int:
    return int(await session.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == org.tenant.id)) or 0)


def test_env_lines() -> None:
    assert parse_env("A=1\n\nB_2= x=y \n") == ({"A": "1", "B_2": " x=y "}, None)
    assert parse_env("A=1\nnot a pair")[1] == "line 2: write KEY=VALUE, KEY made of letters, digits and _"
    assert parse_env("1A=x")[1] is not None


async def test_the_list_the_job_page_and_its_log(org: Org, state: AppState, session: AsyncSession) -> None:
    cid = await _cluster(state, org)
    job = await _finished_job(session, org, cid, "epoch 1\nepoch 2\n")
    viewer = org.people[Role.VIEWER].client
    page = await viewer.get("/console/jobs")
    assert page.status_code == 200
    assert f'data-job="{job.id}"' in page.text
    assert 'hx-get="/console/jobs/rows"' in page.text
    rows = await viewer.get(f"/console/jobs/rows?cluster={cid}")
    assert 'data-status="SUCCEEDED"' in rows.text
    detail = await viewer.get(f"/console/jobs/{cid}/{job.id}")
    assert detail.status_code == 200
    assert f"/console/jobs/{cid}/{job.id}/log?offset=0" in detail.text
    log = await viewer.get(f"/console/jobs/{cid}/{job.id}/log?offset=0")
    assert 'hx-swap-oob="beforeend:#log"' in log.text
    assert "epoch 1\nepoch 2\n" in log.text
    assert 'data-done="true"' in log.text  # ended: the new poller polls no more
    tail = await viewer.get(f"/console/jobs/{cid}/{job.id}/log?offset=8")
    assert "epoch 2\n" in tail.text
    assert "epoch 1" not in tail.text
    assert 'hx-swap-oob="beforeend:#log"' in tail.text
    # An offset past the text (the page held another text): the whole log replaces the page's.
    reset = await viewer.get(f"/console/jobs/{cid}/{job.id}/log?offset=500")
    assert 'hx-swap-oob="innerHTML:#log"' in reset.text
    assert "epoch 1\nepoch 2\n" in reset.text


async def test_stopping_an_ended_job_changes_nothing_and_returns_to_it(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    cid = await _cluster(state, org)
    job = await _finished_job(session, org, cid, "done\n")
    member = org.people[Role.MEMBER]
    page = await member.client.get(f"/console/jobs/{cid}/{job.id}")
    assert "Stop this job" not in page.text  # an ended job has no stop control
    answer = await member.post(f"/console/jobs/{cid}/{job.id}/stop")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/jobs/{cid}/{job.id}"


async def test_a_viewer_sees_no_write_controls_and_forged_posts_are_refused(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    cid = await _cluster(state, org)
    job = await _finished_job(session, org, cid, "")
    viewer = org.people[Role.VIEWER]
    page = await viewer.client.get("/console/jobs")
    assert "Submit job" not in page.text
    assert 'action="/console/jobs"' not in page.text
    before = await _count(session, org)
    refused = await viewer.post("/console/jobs", {"cluster": cid, "entrypoint": "python x.py"})
    assert refused.status_code == 403
    assert (await viewer.post("/console/jobs", {})).status_code == 403  # the role before the input
    forged = await org.people[Role.OWNER].post("/console/jobs", {"cluster": cid, "entrypoint": "x"}, csrf=False)
    assert forged.status_code == 403
    assert "security token" in forged.text
    assert (await viewer.post(f"/console/jobs/{cid}/{job.id}/stop")).status_code == 403
    assert await _count(session, org) == before


async def test_bad_input_shows_field_errors_keeps_values_and_changes_nothing(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    cid = await _cluster(state, org)
    member = org.people[Role.MEMBER]
    before = await _count(session, org)
    answer = await member.post("/console/jobs", {"cluster": "", "entrypoint": "", "pip": "numpy", "env": "A=1\noops"})
    assert answer.status_code == 422
    for name in ("cluster", "entrypoint", "env"):
        assert f'id="{name}-error"' in answer.text, name
    assert "line 2: write KEY=VALUE" in answer.text
    assert ">numpy</textarea>" in answer.text
    assert "A=1\noops</textarea>" in answer.text
    # A well-formed job for a cluster that is not running yet: the reason is next to the cluster.
    pending = await member.post("/console/jobs", {"cluster": cid, "entrypoint": "python train.py"})
    assert pending.status_code == 422
    assert 'id="cluster-error"' in pending.text
    assert "jobs need a RUNNING cluster" in pending.text
    assert 'value="python train.py"' in pending.text
    assert await _count(session, org) == before


async def test_another_tenants_job_is_a_404_page(org: Org, state: AppState, session: AsyncSession) -> None:
    async with organisation(state, session) as other:
        cid = await _cluster(state, other)
        job = await _finished_job(session, other, cid, "secret output\n")
        owner = org.people[Role.OWNER]
        for path in (
            f"/console/jobs/{cid}/{job.id}",
            f"/console/jobs/{cid}/{job.id}/log",
            f"/console/jobs?cluster={cid}",
        ):
            answer = await owner.client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html")
            assert "secret output" not in answer.text
        assert (await owner.post(f"/console/jobs/{cid}/{job.id}/stop")).status_code == 404


async def test_anonymous_pages_go_to_sign_in(state: AppState) -> None:
    async with api(state)() as client:
        assert (await client.get("/console/jobs")).headers["location"] == "/auth/sign-in?next=/console/jobs"
        polled: httpx.Response = await client.get("/console/jobs/rows")
        assert polled.headers["hx-redirect"] == "/console/jobs"
