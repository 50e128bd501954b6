"""Job use cases on the API side; the cluster is reached over Ray's Jobs REST API.

Submission: the row is inserted (and its unique submission id checked) before Ray is
called, so a Ray failure rolls everything back and the caller sees why. Afterwards the
workers keep the status current and keep the final logs, so a job outlives its cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import Conflict, InvalidInput, Unavailable, found
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.common.principal import Principal, Role
from rayplane.common.upstream import one_line
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.jobs.access import Auth, JobsAccess
from rayplane.jobs.models import TERMINAL, Job
from rayplane.jobs.ray_api import RayJobsClient, RayUnavailable
from rayplane.jobs.repository import JobRepository
from rayplane.jobs.schemas import JobCreate
from rayplane.jobs.target import JobTarget
from rayplane.logs import get_logger

log = get_logger("rayplane.jobs")


def authorize_submit(principal: Principal) -> None:
    """The role a submission needs; checked before an idempotent replay too."""
    principal.require(Role.MEMBER)


async def submit_job(
    session: AsyncSession, principal: Principal, cluster: JobTarget, body: JobCreate, access: JobsAccess
) -> Job:
    authorize_submit(principal)
    url = cluster.endpoint()
    job_id = new_id("job")
    submission_id = body.submission_id or f"rayplane-{job_id}"
    repo = JobRepository(session)
    if await repo.get_by_submission(cluster.cluster_id, submission_id) is not None:
        raise Conflict(f"a job with submission_id {submission_id!r} already exists on this cluster")
    runtime_env = body.runtime_env.model_dump(exclude_none=True, exclude_defaults=True)
    job = Job(
        id=job_id,
        tenant_id=cluster.tenant_id,
        cluster_id=cluster.cluster_id,
        submission_id=submission_id,
        entrypoint=body.entrypoint,
        runtime_env=runtime_env,
        job_metadata=body.metadata,
        entrypoint_num_cpus=body.entrypoint_num_cpus,
        entrypoint_num_gpus=body.entrypoint_num_gpus,
        status="PENDING",
        submitted_at=utcnow(),
    )
    await repo.add(job)
    payload: dict[str, object] = {
        "entrypoint": body.entrypoint,
        "submission_id": submission_id,
        "runtime_env": runtime_env,
        "metadata": {**body.metadata, "rayplane_job_id": job_id},
    }
    if body.entrypoint_num_cpus is not None:
        payload["entrypoint_num_cpus"] = body.entrypoint_num_cpus
    if body.entrypoint_num_gpus is not None:
        payload["entrypoint_num_gpus"] = body.entrypoint_num_gpus
    client = await access.client_for(cluster, url)
    try:
        await client.submit(payload)
    except RayUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except ValueError as exc:
        # The client gets one line of Ray's answer; the whole text (a traceback with the
        # head's paths) goes to the log, tied to the answer by the bound request id.
        log.warning("ray_refused_job", cluster_id=cluster.cluster_id, submission_id=submission_id, error=str(exc))
        raise InvalidInput.on("body", f"Ray refused the job: {one_line(str(exc))}") from None
    finally:
        await client.aclose()
    return job


async def get_job(session: AsyncSession, principal: Principal, cluster: JobTarget, job_id: str) -> Job:
    return found(await JobRepository(session).get(principal.tenant_id, cluster.cluster_id, job_id), "job", job_id)


async def list_jobs(
    session: AsyncSession, principal: Principal, cluster: JobTarget, *, cursor: str | None, limit: int
) -> Page[Job]:
    repo = JobRepository(session)
    rows = await repo.list(principal.tenant_id, cluster.cluster_id, after=decode_cursor(cursor), limit=limit)
    return page_of(rows, limit)


async def stop_job(
    session: AsyncSession, principal: Principal, cluster: JobTarget, job_id: str, access: JobsAccess
) -> Job:
    principal.require(Role.MEMBER)
    job = await get_job(session, principal, cluster, job_id)
    if job.status in TERMINAL:
        return job
    client = await access.client_for(cluster, cluster.endpoint())
    try:
        await client.stop(job.submission_id)
    except RayUnavailable as exc:
        raise Unavailable(str(exc)) from None
    finally:
        await client.aclose()
    return job


async def current_logs(
    session: AsyncSession, principal: Principal, cluster: JobTarget, job_id: str, access: JobsAccess
) -> str:
    """Stored logs for a finished job, else the live ones (falling back to stored)."""
    job = await get_job(session, principal, cluster, job_id)
    if job.terminal and job.logs is not None:
        return job.logs
    if cluster.dashboard_url:
        client = await access.client_for(cluster, cluster.dashboard_url)
        try:
            logs = await client.logs(job.submission_id)
            if logs is not None:
                return logs
        except RayUnavailable:
            pass
        finally:
            await client.aclose()
    return job.logs or ""


async def follow_logs(
    dashboard_url: str, submission_id: str, poll_seconds: float = 1.0, auth: Auth = ({}, True)
) -> AsyncIterator[str]:
    """Yield new log text as it appears, until the job finishes (then the rest, and stop)."""
    import asyncio

    client = RayJobsClient(dashboard_url, headers=auth[0], verify=auth[1])
    sent = 0
    misses = 0
    try:
        while True:
            try:
                logs = await client.logs(submission_id) or ""
                info = await client.info(submission_id)
                misses = 0
            except RayUnavailable:
                misses += 1
                if misses > 10:
                    return
                await asyncio.sleep(poll_seconds)
                continue
            if len(logs) > sent:
                yield logs[sent:]
                sent = len(logs)
            if info is None or info.status in TERMINAL:
                return
            await asyncio.sleep(poll_seconds)
    finally:
        await client.aclose()


@dataclass(frozen=True)
class PackageLimits:
    """What a working-dir zip may declare (``RAYPLANE_MAX_PACKAGE_UNCOMPRESSED_BYTES`` and
    ``RAYPLANE_MAX_PACKAGE_COMPRESSION_RATIO``); its own size is cut by the API as it streams."""

    uncompressed_bytes: int = 1024**3
    compression_ratio: float = 200.0


#: Below this many declared bytes the compression ratio is not judged: a few small, very
#: repetitive files compress far beyond any sensible ratio and harm nobody.
RATIO_FLOOR_BYTES = 16 * 1024 * 1024
_BLOCK = 1024 * 1024


def inspect_package(archive: IO[bytes], limits: PackageLimits) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a zip fit to upload, else ``InvalidInput`` on ``body``.

    Reads only the archive's end and its central directory (``zipfile`` seeks there), never
    decompresses: a zip bomb is refused from what it declares, the sum of its entries'
    uncompressed sizes (overlapping entries each count in full), against a limit and against
    a ratio to the archive's own size. Blocking file I/O: run it in a thread."""
    archive.seek(0, io.SEEK_END)
    size = archive.tell()
    if size == 0:
        raise InvalidInput.on("body", "empty package")
    archive.seek(0)
    if archive.read(2) != b"PK":
        raise InvalidInput.on("body", "not a zip archive")
    try:
        with zipfile.ZipFile(archive) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise InvalidInput.on("body", "not a readable zip archive (its central directory is damaged)") from None
    if declared > limits.uncompressed_bytes:
        raise InvalidInput.on(
            "body", f"the archive unpacks to {declared} bytes, over the limit of {limits.uncompressed_bytes}"
        )
    if declared > RATIO_FLOOR_BYTES and declared > limits.compression_ratio * size:
        raise InvalidInput.on(
            "body",
            f"the archive unpacks to {declared // size}x its size, over the limit of "
            f"{limits.compression_ratio:g}x (a zip bomb?)",
        )
    digest = hashlib.sha256()
    archive.seek(0)
    while block := archive.read(_BLOCK):
        digest.update(block)
    return size, digest.hexdigest()


async def upload_package(
    principal: Principal, cluster: JobTarget, archive: IO[bytes], access: JobsAccess, limits: PackageLimits
) -> tuple[str, int]:
    """Check the zip in ``archive`` (``inspect_package``) and upload it to the cluster's Ray
    under its hash, streamed from the file. The caller must not use ``archive`` meanwhile."""
    principal.require(Role.MEMBER)
    size, sha = await asyncio.to_thread(inspect_package, archive, limits)
    name = f"_ray_pkg_{sha[:32]}.zip"
    client = await access.client_for(cluster, cluster.endpoint(), http_timeout=120)
    try:
        uri = await client.upload_package(name, archive, size)
    except RayUnavailable as exc:
        raise Unavailable(str(exc)) from None
    finally:
        await client.aclose()
    return uri, size
