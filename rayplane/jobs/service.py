"""Job use cases on the API side; the cluster is reached over Ray's Jobs REST API.

Submission: the row is inserted (and its unique submission id checked) before Ray is
called, so a Ray failure rolls everything back and the caller sees why. Afterwards the
workers keep the status current and keep the final logs, so a job outlives its cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.models import Cluster
from rayplane.clusters.service import get_cluster
from rayplane.clusters.states import State
from rayplane.common.errors import Conflict, InvalidInput, NotFound, Unavailable
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.identity.principal import Principal, Role
from rayplane.jobs.access import Auth, client_for
from rayplane.jobs.models import TERMINAL, Job
from rayplane.jobs.ray_api import RayJobsClient, RayUnavailable
from rayplane.jobs.repository import JobRepository
from rayplane.jobs.schemas import JobCreate

JOB_READY = frozenset({State.RUNNING, State.UPDATING, State.DEGRADED})
MAX_PACKAGE_BYTES = 100 * 1024 * 1024


def _endpoint(cluster: Cluster) -> str:
    if State(cluster.state) not in JOB_READY or not cluster.dashboard_url:
        raise Conflict(f"cluster {cluster.name!r} is {cluster.state}; jobs need a RUNNING cluster")
    return cluster.dashboard_url


async def submit_job(session: AsyncSession, principal: Principal, cluster_id: str, body: JobCreate) -> Job:
    principal.require(Role.MEMBER)
    cluster = await get_cluster(session, principal, cluster_id)
    url = _endpoint(cluster)
    job_id = new_id("job")
    submission_id = body.submission_id or f"rayplane-{job_id}"
    repo = JobRepository(session)
    if await repo.get_by_submission(cluster.id, submission_id) is not None:
        raise Conflict(f"a job with submission_id {submission_id!r} already exists on this cluster")
    runtime_env = body.runtime_env.model_dump(exclude_none=True, exclude_defaults=True)
    job = Job(
        id=job_id,
        tenant_id=cluster.tenant_id,
        cluster_id=cluster.id,
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
    client = await client_for(session, cluster, url)
    try:
        await client.submit(payload)
    except RayUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except ValueError as exc:
        raise InvalidInput.on("body", f"Ray refused the job: {exc}") from None
    finally:
        await client.aclose()
    return job


async def get_job(session: AsyncSession, principal: Principal, cluster_id: str, job_id: str) -> Job:
    cluster = await get_cluster(session, principal, cluster_id)
    job = await JobRepository(session).get(principal.tenant_id, cluster.id, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


async def list_jobs(
    session: AsyncSession, principal: Principal, cluster_id: str, *, cursor: str | None, limit: int
) -> Page[Job]:
    cluster = await get_cluster(session, principal, cluster_id)
    rows = await JobRepository(session).list(principal.tenant_id, cluster.id, after=decode_cursor(cursor), limit=limit)
    return page_of(rows, limit)


async def stop_job(session: AsyncSession, principal: Principal, cluster_id: str, job_id: str) -> Job:
    principal.require(Role.MEMBER)
    job = await get_job(session, principal, cluster_id, job_id)
    if job.status in TERMINAL:
        return job
    cluster = await get_cluster(session, principal, cluster_id)
    client = await client_for(session, cluster, _endpoint(cluster))
    try:
        await client.stop(job.submission_id)
    except RayUnavailable as exc:
        raise Unavailable(str(exc)) from None
    finally:
        await client.aclose()
    return job


async def current_logs(session: AsyncSession, principal: Principal, cluster_id: str, job_id: str) -> str:
    """Stored logs for a finished job, else the live ones (falling back to stored)."""
    job = await get_job(session, principal, cluster_id, job_id)
    if job.terminal and job.logs is not None:
        return job.logs
    cluster = await get_cluster(session, principal, cluster_id)
    if cluster.dashboard_url:
        client = await client_for(session, cluster, cluster.dashboard_url)
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


async def upload_package(session: AsyncSession, principal: Principal, cluster_id: str, data: bytes) -> tuple[str, int]:
    principal.require(Role.MEMBER)
    if not data:
        raise InvalidInput.on("body", "empty package")
    if len(data) > MAX_PACKAGE_BYTES:
        raise InvalidInput.on("body", f"package larger than {MAX_PACKAGE_BYTES // 2**20} MiB")
    if not data.startswith(b"PK"):
        raise InvalidInput.on("body", "not a zip archive")
    cluster = await get_cluster(session, principal, cluster_id)
    name = f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"
    client = await client_for(session, cluster, _endpoint(cluster), http_timeout=120)
    try:
        uri = await client.upload_package(name, data)
    except RayUnavailable as exc:
        raise Unavailable(str(exc)) from None
    finally:
        await client.aclose()
    return uri, len(data)
