"""The Ray Jobs API clients (async for the API, sync for the workers) against a stand-in for
Ray's dashboard over real HTTP: parsing, 404s, errors, headers and TLS trust."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from emulators.azure.tls import ensure_tls
from rayplane.jobs.ray_api import (
    MAX_LOG_BYTES,
    RayJobInfo,
    RayJobsClient,
    RayJobsSyncClient,
    RayUnavailable,
    parse_info,
    tail,
)
from tests.jobs.fake_ray import FakeRay, fake_ray


@pytest.fixture
def ray() -> Iterator[FakeRay]:
    with fake_ray() as running:
        yield running


@pytest.fixture
def closed_port_url() -> str:
    """A URL nothing listens on (a port bound and closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- parsing -------------------------------------------------------------------------------
def test_parse_info_reads_ray_job_details() -> None:
    info = parse_info(
        {
            "submission_id": "sub-1",
            "job_id": "02000000",
            "status": "FAILED",
            "message": "exit 3",
            "driver_exit_code": 3,
            "start_time": 1_700_000_000_123,
            "end_time": 1_700_000_060_000,
        }
    )
    assert info == RayJobInfo(
        submission_id="sub-1",
        status="FAILED",
        message="exit 3",
        driver_exit_code=3,
        started_at=datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        ended_at=datetime(2023, 11, 14, 22, 14, 20, tzinfo=UTC),
    )


def test_parse_info_defaults_for_a_job_just_submitted() -> None:
    info = parse_info({"job_id": "02000000", "start_time": 0, "end_time": None})
    assert (info.submission_id, info.status, info.message, info.driver_exit_code) == ("02000000", "PENDING", None, None)
    assert (info.started_at, info.ended_at) == (None, None)


def test_tail_keeps_short_logs_and_the_end_of_long_ones() -> None:
    assert tail("short\n") == ("short\n", False)
    exact = "x" * MAX_LOG_BYTES
    assert tail(exact) == (exact, False)
    long = "HEAD" + "y" * MAX_LOG_BYTES + "the end\n"
    kept, cut = tail(long)
    assert cut
    assert kept.endswith("the end\n")
    assert not kept.startswith("HEAD")
    assert len(kept.encode()) == MAX_LOG_BYTES


def test_tail_never_splits_a_character() -> None:
    kept, cut = tail("é" * MAX_LOG_BYTES + "!")  # two bytes each, so the cut falls inside one
    assert cut
    assert kept == "é" * ((MAX_LOG_BYTES - 2) // 2) + "!"  # the half character is dropped


# -- the async client ----------------------------------------------------------------------
async def test_submit_info_logs_stop_and_upload(ray: FakeRay) -> None:
    client = RayJobsClient(ray.url + "/", headers={"X-Test": "yes"})
    try:
        assert await client.submit({"entrypoint": "python x.py", "submission_id": "s1"}) == "s1"
        info = await client.info("s1")
        assert info is not None
        assert (info.submission_id, info.status) == ("s1", "PENDING")
        ray.logs["s1"] = "line 1\n"
        assert await client.logs("s1") == "line 1\n"
        assert await client.stop("s1") is True
        assert await client.stop("s1") is False  # already stopped: Ray says so
        assert (
            await client.upload_package("_ray_pkg_abc.zip", io.BytesIO(b"PK\x03\x04zip"), 7) == "gcs://_ray_pkg_abc.zip"
        )
    finally:
        await client.aclose()
    assert ray.packages == {"_ray_pkg_abc.zip": b"PK\x03\x04zip"}
    assert [r.path for r in ray.requests][:2] == ["/api/jobs/", "/api/jobs/s1"]  # the trailing / trimmed once
    assert all(r.headers.get("X-Test") == "yes" for r in ray.requests)


async def test_unknown_jobs_are_none_or_false(ray: FakeRay) -> None:
    client = RayJobsClient(ray.url)
    try:
        assert await client.info("nope") is None
        assert await client.logs("nope") is None
        assert await client.stop("nope") is False
    finally:
        await client.aclose()


async def test_ray_refusing_a_submission_is_a_value_error_with_its_reason(ray: FakeRay) -> None:
    ray.job("taken")
    client = RayJobsClient(ray.url)
    try:
        with pytest.raises(ValueError, match="already exists"):
            await client.submit({"entrypoint": "true", "submission_id": "taken"})
    finally:
        await client.aclose()


async def test_an_unreachable_dashboard_is_ray_unavailable(closed_port_url: str) -> None:
    client = RayJobsClient(closed_port_url, timeout=2)
    try:
        for call in (client.info("a"), client.logs("a"), client.stop("a"), client.submit({"submission_id": "a"})):
            with pytest.raises(RayUnavailable, match="did not answer"):
                await call
        with pytest.raises(RayUnavailable):
            await client.upload_package("p.zip", io.BytesIO(b"PK"), 2)
    finally:
        await client.aclose()


async def test_server_errors_are_http_errors_and_a_refusal_on_submit(ray: FakeRay) -> None:
    """A 5xx from a dashboard that answers is not RayUnavailable (that means no answer at
    all): reads raise httpx's status error, a submission reads as refused."""
    ray.job("s1")
    ray.fail_with = 503
    client = RayJobsClient(ray.url)
    try:
        upload = client.upload_package("p.zip", io.BytesIO(b"PK"), 2)
        for call in (client.info("s1"), client.logs("s1"), client.stop("s1"), upload):
            with pytest.raises(httpx.HTTPStatusError) as caught:
                await call
            assert caught.value.response.status_code == 503
        with pytest.raises(ValueError, match="injected"):
            await client.submit({"submission_id": "s2"})
    finally:
        await client.aclose()


async def test_a_given_http_client_is_used_and_left_open(ray: FakeRay) -> None:
    async with httpx.AsyncClient(headers={"Authorization": "Bearer shared"}) as shared:
        client = RayJobsClient(ray.url, client=shared)
        ray.job("s1", status="SUCCEEDED")
        info = await client.info("s1")
        assert info is not None
        assert info.status == "SUCCEEDED"
        await client.aclose()
        assert not shared.is_closed
    assert ray.requests[-1].headers["Authorization"] == "Bearer shared"


# -- the sync client -----------------------------------------------------------------------
def test_sync_client_reads_status_and_logs_with_headers(ray: FakeRay) -> None:
    ray.job("s1", status="RUNNING", logs="tick 0\n", start_time=1_700_000_000_000)
    client = RayJobsSyncClient(ray.url, headers={"Authorization": "Bearer k8s"})
    info = client.info("s1")
    assert info is not None
    assert (info.status, info.started_at) == ("RUNNING", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))
    assert client.logs("s1") == "tick 0\n"
    assert client.info("gone") is None
    assert client.logs("gone") is None
    assert {r.headers["Authorization"] for r in ray.requests} == {"Bearer k8s"}


def test_sync_client_unreachable_and_server_errors(ray: FakeRay, closed_port_url: str) -> None:
    down = RayJobsSyncClient(closed_port_url, timeout=2)
    with pytest.raises(RayUnavailable):
        down.info("s1")
    with pytest.raises(RayUnavailable):
        down.logs("s1")
    ray.fail_with = 500
    with pytest.raises(httpx.HTTPStatusError):
        RayJobsSyncClient(ray.url).info("s1")


# -- TLS trust (the Kubernetes service proxy of an AKS cluster is HTTPS with its own CA) ---
@pytest.fixture
def tls_ray(tmp_path: Path) -> Iterator[tuple[FakeRay, Path]]:
    material = ensure_tls(tmp_path / "tls")
    with fake_ray(tls=(material.cert_path, material.key_path)) as running:
        yield running, material.ca_path


async def test_a_ca_bundle_is_trusted_and_nothing_else_is(tls_ray: tuple[FakeRay, Path]) -> None:
    ray, ca = tls_ray
    ray.job("s1", status="SUCCEEDED")
    trusted = RayJobsClient(ray.url, verify=str(ca))
    system = RayJobsClient(ray.url)  # the system store does not know the cluster's CA
    unchecked = RayJobsClient(ray.url, verify=False)
    try:
        assert (await trusted.info("s1")) is not None
        with pytest.raises(RayUnavailable):
            await system.info("s1")
        assert (await unchecked.info("s1")) is not None
    finally:
        for c in (trusted, system, unchecked):
            await c.aclose()
    assert RayJobsSyncClient(ray.url, verify=str(ca)).logs("s1") == ""
    with pytest.raises(RayUnavailable):
        RayJobsSyncClient(ray.url).logs("s1")
