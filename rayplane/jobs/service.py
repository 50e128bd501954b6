"""Job use cases on the API side; the cluster is reached over Ray's Jobs REST API.

Submission: the row is inserted (and its unique submission id checked) before Ray is
called, so a Ray failure rolls everything back and the caller sees why. Afterwards the
workers keep the status current and keep the final logs, so a job outlives its cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

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

MAX_PACKAGE_BYTES = 100 * 1024 * 1024

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


async def upload_package(principal: Principal, cluster: JobTarget, data: bytes, access: JobsAccess) -> tuple[str, int]:
    principal.require(Role.MEMBER)
    if not data:
        raise InvalidInput.on("body", "empty package")
    if len(data) > MAX_PACKAGE_BYTES:
        raise InvalidInput.on("body", f"package larger than {MAX_PACKAGE_BYTES // 2**20} MiB")
    if not data.startswith(b"PK"):
        raise InvalidInput.on("body", "not a zip archive")
    name = f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"
    client = await access.client_for(cluster, cluster.endpoint(), http_timeout=120)
    try:
        uri = await client.upload_package(name, data)
    except RayUnavailable as exc:
        raise Unavailable(str(exc)) from None
    finally:
        await client.aclose()
    return uri, len(data)
