"""``/v1/clusters/{id}/jobs``: Ray jobs, their logs, and working-dir packages."""

from __future__ import annotations

import tempfile

from fastapi import Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from api.common import Cursor, Limit, ListPage, idempotent_create, problems
from api.deps import Caller, IdempotencyKey, Session, app_state, jobs_access, set_audit_target
from api.routing import Router
from rayplane.clusters.service import job_target
from rayplane.common.principal import Role
from rayplane.jobs import service
from rayplane.jobs.schemas import JobCreate, JobOut, PackageOut
from rayplane.jobs.service import PackageLimits

router = Router(prefix="/v1/clusters/{cluster_id}", tags=["jobs"])
ZIP_SCHEMA = {"type": "string", "format": "binary"}
#: How much of an upload stays in memory before its temporary file goes to disk.
SPOOL_BYTES = 1024 * 1024


@router.post(
    "/jobs", name="jobs.submit", status_code=201, response_model=JobOut, responses=problems(403, 404, 409, 415, 422)
)
async def submit_job(
    cluster_id: str,
    body: JobCreate,
    request: Request,
    session: Session,
    caller: Caller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Submit through Ray's Jobs API. Upload a working dir first with ``POST …/packages``."""

    async def create() -> tuple[int, object, dict[str, str]]:
        target = await job_target(session, caller, cluster_id)
        job = await service.submit_job(session, caller, target, body, jobs_access(request))
        set_audit_target(request, "job", job.id)
        return 201, JobOut.model_validate(job), {"Location": f"/v1/clusters/{cluster_id}/jobs/{job.id}"}

    return await idempotent_create(
        request,
        session,
        caller,
        idempotency_key,
        body,
        create,
        authorize=lambda: service.authorize_submit(caller),
        target_type="job",
    )


@router.get("/jobs", name="jobs.list", response_model=ListPage[JobOut], responses=problems(404, 422))
async def list_jobs(
    cluster_id: str, session: Session, caller: Caller, limit: int = Limit, cursor: str | None = Cursor
) -> ListPage[JobOut]:
    target = await job_target(session, caller, cluster_id)
    page = await service.list_jobs(session, caller, target, cursor=cursor, limit=limit)
    return ListPage[JobOut](items=[JobOut.model_validate(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/jobs/{job_id}", name="jobs.get", response_model=JobOut, responses=problems(404))
async def get_job(cluster_id: str, job_id: str, session: Session, caller: Caller) -> JobOut:
    target = await job_target(session, caller, cluster_id)
    return JobOut.model_validate(await service.get_job(session, caller, target, job_id))


@router.get(
    "/jobs/{job_id}/logs",
    name="jobs.logs",
    response_class=PlainTextResponse,
    responses={**problems(404), 200: {"content": {"text/plain": {}}, "description": "The job's output"}},
)
async def job_logs(
    cluster_id: str,
    job_id: str,
    request: Request,
    session: Session,
    caller: Caller,
    follow: bool = Query(False, description="Stream new output until the job ends"),
) -> Response:
    """The whole log, or (``follow=true``) a stream that ends when the job does."""
    target = await job_target(session, caller, cluster_id)
    access = jobs_access(request)
    job = await service.get_job(session, caller, target, job_id)
    if not follow or job.terminal:
        return PlainTextResponse(await service.current_logs(session, caller, target, job_id, access))
    if not target.dashboard_url:
        return PlainTextResponse(job.logs or "")
    auth = await access.auth_for(target)
    return StreamingResponse(
        service.follow_logs(target.dashboard_url, job.submission_id, auth=auth), media_type="text/plain"
    )


@router.post(
    "/jobs/{job_id}:stop", name="jobs.stop", status_code=202, response_model=JobOut, responses=problems(404, 409)
)
async def stop_job(cluster_id: str, job_id: str, request: Request, session: Session, caller: Caller) -> JobOut:
    set_audit_target(request, "job", job_id)
    target = await job_target(session, caller, cluster_id)
    return JobOut.model_validate(await service.stop_job(session, caller, target, job_id, jobs_access(request)))


@router.post(
    "/packages",
    name="jobs.upload_package",
    status_code=201,
    response_model=PackageOut,
    responses=problems(403, 404, 409, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_package(cluster_id: str, request: Request, session: Session, caller: Caller) -> PackageOut:
    """Upload a zipped working directory (``Content-Type: application/zip``) for ``runtime_env.working_dir``.

    Up to ``RAYPLANE_MAX_PACKAGE_BYTES`` (413 beyond, cut while it streams); refused with 422
    when its central directory declares more than ``RAYPLANE_MAX_PACKAGE_UNCOMPRESSED_BYTES``
    or an absurd compression ratio."""
    # The role and the cluster are checked before the body is read; the body then streams to
    # a temporary file (in memory up to SPOOL_BYTES), never whole into memory.
    caller.require(Role.MEMBER)
    target = await job_target(session, caller, cluster_id)
    settings = app_state(request).settings
    limits = PackageLimits(settings.max_package_uncompressed_bytes, settings.max_package_compression_ratio)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as archive:
        async for chunk in request.stream():
            archive.write(chunk)
        uri, size = await service.upload_package(caller, target, archive, jobs_access(request), limits)
    set_audit_target(request, "package", uri)
    return PackageOut(uri=uri, size_bytes=size)
