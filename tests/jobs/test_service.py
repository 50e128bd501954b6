"""Job use cases through the API, with a stand-in for the cluster's Ray dashboard: what Ray is
sent, what is kept when Ray refuses or does not answer, when Ray is not asked at all, and how
logs are served and followed."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.models import Cluster
from rayplane.clusters.values import State
from rayplane.common.errors import InvalidInput
from rayplane.common.principal import Role
from rayplane.jobs import service
from rayplane.jobs.models import Job
from rayplane.logs import configure_logging
from tests.jobs.fake_ray import FakeRay, fake_ray
from tests.support.factories import Actor, Factory

SPEC = {
    "name": "jobs",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
}


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def ray() -> Iterator[FakeRay]:
    with fake_ray() as running:
        yield running


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


async def running_cluster(client: httpx.AsyncClient, session: AsyncSession, actor: Actor, dashboard: str) -> str:
    """A cluster created through the API, then marked RUNNING at ``dashboard`` as the
    reconciler would once its head is up."""
    r = await client.post("/v1/clusters", headers=actor.headers, json=SPEC)
    assert r.status_code == 202, r.text
    cluster = await session.get(Cluster, r.json()["id"])
    assert cluster is not None
    cluster.state, cluster.dashboard_url = State.RUNNING, dashboard
    await session.commit()
    return cluster.id


@pytest.fixture
async def cid(client: httpx.AsyncClient, session: AsyncSession, owner: Actor, ray: FakeRay) -> str:
    return await running_cluster(client, session, owner, ray.url)


async def submit(client: httpx.AsyncClient, actor: Actor, cid: str, **body: Any) -> httpx.Response:
    return await client.post(f"/v1/clusters/{cid}/jobs", headers=actor.headers, json={"entrypoint": "true", **body})


async def job_ids(client: httpx.AsyncClient, actor: Actor, cid: str) -> list[str]:
    return [j["id"] for j in (await client.get(f"/v1/clusters/{cid}/jobs", headers=actor.headers)).json()["items"]]


# -- submission ----------------------------------------------------------------------------
async def test_submit_sends_ray_the_job_and_keeps_it(
    client: httpx.AsyncClient, owner: Actor, cid: str, ray: FakeRay
) -> None:
    r = await submit(
        client,
        owner,
        cid,
        entrypoint="python train.py",
        runtime_env={"env_vars": {"A": "1"}},
        metadata={"team": "ml"},
        entrypoint_num_cpus=0.5,
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["status"], job["submission_id"]) == ("PENDING", f"rayplane-{job['id']}")
    [sent] = ray.seen("POST", "/api/jobs/")
    assert sent.path == "/api/jobs/"
    assert ray.jobs[job["submission_id"]]["request"] == {
        "entrypoint": "python train.py",
        "submission_id": f"rayplane-{job['id']}",
        "runtime_env": {"env_vars": {"A": "1"}},
        "metadata": {"team": "ml", "rayplane_job_id": job["id"]},
        "entrypoint_num_cpus": 0.5,  # and no entrypoint_num_gpus: it was not asked for
    }
    assert await job_ids(client, owner, cid) == [job["id"]]


async def test_a_taken_submission_id_is_409_and_ray_is_not_asked(
    client: httpx.AsyncClient, owner: Actor, cid: str, ray: FakeRay
) -> None:
    assert (await submit(client, owner, cid, submission_id="nightly-1")).status_code == 201
    again = await submit(client, owner, cid, submission_id="nightly-1")
    assert again.status_code == 409, again.text
    assert len(ray.seen("POST", "/api/jobs/")) == 1
    assert len(await job_ids(client, owner, cid)) == 1


async def test_ray_refusing_the_job_is_422_and_keeps_nothing(
    client: httpx.AsyncClient, owner: Actor, cid: str, ray: FakeRay
) -> None:
    ray.job("made-outside-rayplane")
    r = await submit(client, owner, cid, submission_id="made-outside-rayplane")
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "body"
    assert "Ray refused the job" in error["message"]
    assert "already exists" in error["message"]
    assert await job_ids(client, owner, cid) == []


RAY_TRACEBACK = """Traceback (most recent call last):
  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/dashboard/modules/job/job_head.py", line 341, in submit_job
    resp = await job_agent_client.submit_job_internal(submit_request)
  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/_private/runtime_env/working_dir.py", line 88, in upload
    raise ValueError(f"{path} is not a valid URI")
ValueError: /tmp/ray/session_2026-11-27/runtime_resources/nope.zip is not a valid URI
"""


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []


async def test_ray_s_traceback_is_one_line_without_paths_and_the_whole_goes_to_the_log(
    client: httpx.AsyncClient, owner: Actor, cid: str, ray: FakeRay, json_logs: io.StringIO
) -> None:
    ray.refuse_submit = RAY_TRACEBACK
    r = await client.post(
        f"/v1/clusters/{cid}/jobs",
        headers={**owner.headers, "X-Request-ID": "req-ray-refused"},
        json={"entrypoint": "true"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "body: Ray refused the job: ValueError: <path> is not a valid URI"
    assert "Traceback" not in r.text
    assert "/home/ray" not in r.text
    assert "/tmp/ray" not in r.text
    [line] = [json.loads(x) for x in json_logs.getvalue().splitlines() if "ray_refused_job" in x]
    assert line["level"] == "warning"
    assert line["request_id"] == "req-ray-refused"
    assert "site-packages/ray/dashboard" in line["error"]
    assert await job_ids(client, owner, cid) == []


async def test_ray_not_answering_is_503_and_keeps_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor
) -> None:
    down = await running_cluster(client, session, owner, closed_url())
    r = await submit(client, owner, down)
    assert r.status_code == 503, r.text
    assert "did not answer" in r.json()["detail"]
    assert await job_ids(client, owner, down) == []


async def test_a_cluster_that_is_not_running_takes_no_job(
    client: httpx.AsyncClient, owner: Actor, ray: FakeRay
) -> None:
    pending = (await client.post("/v1/clusters", headers=owner.headers, json=SPEC)).json()["id"]
    r = await submit(client, owner, pending)
    assert r.status_code == 409, r.text
    assert "jobs need a RUNNING cluster" in r.json()["detail"]
    assert ray.requests == []
    assert await job_ids(client, owner, pending) == []


async def test_viewers_cannot_submit_stop_or_upload(
    client: httpx.AsyncClient, factory: Factory, owner: Actor, cid: str, ray: FakeRay
) -> None:
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    job = (await submit(client, owner, cid)).json()
    asked = len(ray.requests)
    assert (await submit(client, viewer, cid)).status_code == 403
    stop = await client.post(f"/v1/clusters/{cid}/jobs/{job['id']}:stop", headers=viewer.headers)
    assert stop.status_code == 403
    up = await client.post(
        f"/v1/clusters/{cid}/packages", headers={**viewer.headers, "Content-Type": "application/zip"}, content=b"PK"
    )
    assert up.status_code == 403
    assert len(ray.requests) == asked
    # and reading is theirs
    assert (await client.get(f"/v1/clusters/{cid}/jobs/{job['id']}", headers=viewer.headers)).status_code == 200


# -- stop ----------------------------------------------------------------------------------
async def test_stop_asks_ray_unless_the_job_has_ended(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor, cid: str, ray: FakeRay
) -> None:
    job = (await submit(client, owner, cid)).json()
    r = await client.post(f"/v1/clusters/{cid}/jobs/{job['id']}:stop", headers=owner.headers)
    assert r.status_code == 202, r.text
    assert [s.path for s in ray.seen("POST", "/api/jobs/rayplane-")] == [f"/api/jobs/{job['submission_id']}/stop"]
    assert ray.jobs[job["submission_id"]]["status"] == "STOPPED"

    row = await session.get(Job, job["id"])
    assert row is not None
    row.status = "STOPPED"  # what the worker records once Ray reports it
    await session.commit()
    again = await client.post(f"/v1/clusters/{cid}/jobs/{job['id']}:stop", headers=owner.headers)
    assert again.status_code == 202
    assert again.json()["status"] == "STOPPED"
    assert len(ray.seen("POST", "/api/jobs/rayplane-")) == 1  # Ray was not asked again


async def test_stop_with_ray_not_answering_is_503(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor, cid: str
) -> None:
    job = (await submit(client, owner, cid)).json()
    cluster = await session.get(Cluster, cid)
    assert cluster is not None
    cluster.dashboard_url = closed_url()  # the head went away after the submission
    await session.commit()
    r = await client.post(f"/v1/clusters/{cid}/jobs/{job['id']}:stop", headers=owner.headers)
    assert r.status_code == 503, r.text


# -- logs ----------------------------------------------------------------------------------
async def test_logs_are_ray_s_while_it_answers_then_the_stored_ones(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor, cid: str, ray: FakeRay
) -> None:
    job = (await submit(client, owner, cid)).json()
    url = f"/v1/clusters/{cid}/jobs/{job['id']}/logs"
    ray.logs[job["submission_id"]] = "live line\n"
    assert (await client.get(url, headers=owner.headers)).text == "live line\n"

    row = await session.get(Job, job["id"])
    cluster = await session.get(Cluster, cid)
    assert row is not None
    assert cluster is not None
    row.logs = "kept by the worker\n"
    cluster.dashboard_url = closed_url()
    await session.commit()
    assert (await client.get(url, headers=owner.headers)).text == "kept by the worker\n"  # Ray is down

    cluster.dashboard_url = ray.url
    row.status = "SUCCEEDED"
    await session.commit()
    asked = len(ray.seen("GET"))
    assert (await client.get(url, headers=owner.headers)).text == "kept by the worker\n"  # ended: stored
    assert len(ray.seen("GET")) == asked


async def test_follow_logs_yields_what_is_new_until_the_job_ends(ray: FakeRay) -> None:
    ray.job("s1", status="RUNNING", logs="one\n")
    chunks: list[str] = []
    async for chunk in service.follow_logs(ray.url, "s1", poll_seconds=0.01):
        chunks.append(chunk)
        if len(chunks) == 1:
            ray.logs["s1"] += "two\n"
        elif len(chunks) == 2:
            ray.logs["s1"] += "three\n"
            ray.jobs["s1"]["status"] = "SUCCEEDED"
    assert chunks == ["one\n", "two\n", "three\n"]


async def test_follow_logs_ends_when_the_job_is_unknown_or_ray_stays_down(ray: FakeRay) -> None:
    assert [c async for c in service.follow_logs(ray.url, "never-submitted", poll_seconds=0.01)] == []
    assert [c async for c in service.follow_logs(closed_url(), "s1", poll_seconds=0.01)] == []


# -- packages ------------------------------------------------------------------------------
def zipped(**files: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return out.getvalue()


async def test_packages_are_checked_then_uploaded_under_their_hash(
    client: httpx.AsyncClient, owner: Actor, cid: str, ray: FakeRay
) -> None:
    url = f"/v1/clusters/{cid}/packages"
    headers = {**owner.headers, "Content-Type": "application/zip"}
    for bad, why in ((b"", "empty package"), (b"not a zip", "not a zip archive")):
        r = await client.post(url, headers=headers, content=bad)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["message"] == why
    assert ray.packages == {}
    data = zipped(**{"main.py": "print('hi')\n"})
    r = await client.post(url, headers=headers, content=data)
    assert r.status_code == 201, r.text
    name = f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"
    assert r.json() == {"uri": f"gcs://{name}", "size_bytes": len(data)}
    assert ray.packages == {name: data}


def declaring(size: int) -> bytes:
    """A small, valid zip whose central directory declares one entry of ``size`` bytes."""
    data = zipped(**{"big.bin": "x"})
    central = data.rindex(b"PK\x01\x02")  # the central directory's only entry
    at = central + 24  # its uncompressed size (4 bytes, little-endian)
    return data[:at] + size.to_bytes(4, "little") + data[at + 4 :]


def test_a_zip_is_judged_by_its_central_directory_only() -> None:
    limits = service.PackageLimits(uncompressed_bytes=2**30, compression_ratio=200)
    size, sha = service.inspect_package(io.BytesIO(good := zipped(**{"main.py": "print('hi')\n"})), limits)
    assert (size, sha) == (len(good), hashlib.sha256(good).hexdigest())
    # Declared over the limit: refused without decompressing anything.
    with pytest.raises(InvalidInput, match="unpacks to 3221225472 bytes, over the limit of 1073741824"):
        service.inspect_package(io.BytesIO(declaring(3 * 2**30)), limits)
    # 32 MiB of zeros is a few KiB zipped: an absurd ratio.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * (32 * 2**20))
    with pytest.raises(InvalidInput, match="over the limit of 200x"):
        service.inspect_package(io.BytesIO(out.getvalue()), limits)
    # A damaged central directory is not a zip this cluster can use.
    with pytest.raises(InvalidInput, match="not a readable zip archive"):
        service.inspect_package(io.BytesIO(b"PK\x03\x04" + b"\0" * 100), limits)


async def test_a_zip_bomb_is_refused_before_ray_sees_it(
    client: httpx.AsyncClient, owner: Actor, cid: str, ray: FakeRay
) -> None:
    r = await client.post(
        f"/v1/clusters/{cid}/packages",
        headers={**owner.headers, "Content-Type": "application/zip"},
        content=declaring(2**31),
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body"
    assert ray.packages == {}
