"""Console jobs: the list with live status, the submit form, a job's page with a log that
follows, and stop.

Reads and writes call the same core as ``/v1/clusters/{id}/jobs`` (``job_target``, then
``rayplane.jobs.service``), with the signed-in member's principal; another tenant's cluster or
job is a 404 page, as the API's 404. Writes go through :func:`web.pagekit.writer` (CSRF, then
member, then the service's role check) and the request's unit of work, audited under the job.

The log view polls ``…/log?offset=N``: the answer appends the text after character ``N`` to
the page's log (an htmx out-of-band ``beforeend`` swap) and replaces the poller with one at
the new offset; once the job has ended and its whole log was sent, the poller it returns no
longer polls. Ray's Jobs API answers the whole log each time (``current_logs``), which only
grows, so a character offset is stable, and a finished job's stored log is the same text
unless it was cut to its size limit: a log shorter than ``N`` replaces the page's whole.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from api.deps import Session, jobs_access, set_audit_target
from rayplane.clusters import service as clusters
from rayplane.clusters.schemas import ClusterOut
from rayplane.common.errors import Conflict, InvalidInput, Unavailable
from rayplane.common.principal import Principal
from rayplane.jobs import service
from rayplane.jobs.models import Job
from rayplane.jobs.schemas import JobCreate
from web.pagekit import FormErrors, Member, member, refuse, writer

router = APIRouter(include_in_schema=False)
POLL_SECONDS = 2
LOG_POLL_SECONDS = 1
MAX_CLUSTERS = 100
JOBS_PER_CLUSTER = 50
#: The form's fields for each part of ``JobCreate`` a validation error may name.
FIELDS = {
    "entrypoint": "entrypoint",
    "runtime_env.pip": "pip",
    "runtime_env.env_vars": "env",
    "runtime_env": "env",
    "body": "form",
}


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def job_row(job: Job, cluster_name: str) -> dict[str, Any]:
    return {
        "id": job.id,
        "cluster_id": job.cluster_id,
        "cluster": cluster_name,
        "status": job.status,
        "entrypoint": job.entrypoint,
        "message": job.message or "",
        "submitted": _time(job.submitted_at),
        "ended": _time(job.ended_at),
        "terminal": job.terminal,
    }


async def _clusters(db: Session, principal: Principal) -> list[ClusterOut]:
    found = await clusters.list_clusters(
        db, principal, cursor=None, limit=MAX_CLUSTERS, states=None, cloud=None, labels=None
    )
    return [ClusterOut.model_validate(c) for c in found.items]


async def _jobs(db: Session, principal: Principal, only: str | None) -> list[dict[str, Any]]:
    """The newest jobs of the tenant's clusters (or of cluster ``only``), newest first."""
    rows: list[dict[str, Any]] = []
    ids = [only] if only else [c.id for c in await _clusters(db, principal)]
    for cluster_id in ids:
        target = await clusters.job_target(db, principal, cluster_id)  # 404 for another tenant's
        page = await service.list_jobs(db, principal, target, cursor=None, limit=JOBS_PER_CLUSTER)
        rows.extend(job_row(j, target.name) for j in page.items)
    rows.sort(key=lambda r: r["submitted"], reverse=True)
    return rows


def parse_env(text: str) -> tuple[dict[str, str], str | None]:
    """``KEY=VALUE`` lines (blank lines skipped) as a dict, or the first bad line's message."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            return env, f"line {number}: write KEY=VALUE, KEY made of letters, digits and _"
        env[key] = value
    return env, None


def parse_form(fields: dict[str, str]) -> tuple[JobCreate | None, FormErrors]:
    """The form as the API's ``JobCreate``, or the errors per field."""
    errors = FormErrors()
    if not fields.get("cluster"):
        errors.add("cluster", "choose a cluster")
    env, env_error = parse_env(fields.get("env", ""))
    if env_error:
        errors.add("env", env_error)
    pip = [p for p in fields.get("pip", "").split() if p]
    body: dict[str, Any] = {"entrypoint": fields.get("entrypoint", "").strip(), "runtime_env": {"env_vars": env}}
    if pip:
        body["runtime_env"]["pip"] = pip
    try:
        job = JobCreate.model_validate(body)
    except ValidationError as exc:
        for name, message in FormErrors.of_validation(exc, FIELDS).by_field.items():
            errors.add(name, message)
        return None, errors
    return (None if errors else job), errors


async def _list_page(
    request: Request,
    db: Session,
    who: Member,
    only: str | None,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    found = await _clusters(db, who.principal)
    return await who.render(
        request,
        "jobs.html",
        status_code=status_code,
        jobs=await _jobs(db, who.principal, only),
        clusters=[{"id": c.id, "name": c.name, "state": c.state.value} for c in found],
        only=only,
        poll=POLL_SECONDS,
        values=values or {"cluster": only or ""},
        errors=errors or FormErrors(),
    )


@router.get("/console/jobs", name="web.jobs")
async def jobs_page(request: Request, db: Session, cluster: str | None = Query(None, max_length=64)) -> Response:
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    return await _list_page(request, db, who, cluster or None)


@router.get("/console/jobs/rows", name="web.job_rows")
async def job_rows(request: Request, db: Session, cluster: str | None = Query(None, max_length=64)) -> Response:
    """The jobs table's body, polled by htmx every ``POLL_SECONDS``."""
    who = await member(request, db)
    if not isinstance(who, Member):
        return Response(status_code=200, headers={"HX-Redirect": "/console/jobs"})
    return await who.render(request, "job_rows.html", jobs=await _jobs(db, who.principal, cluster or None))


@router.post("/console/jobs", name="web.job_submit")
async def submit(request: Request, db: Session) -> Response:
    who, fields = await writer(request, db)
    service.authorize_submit(who.principal)  # a viewer is refused before its input is read
    values = {k: fields.get(k, "") for k in ("cluster", "entrypoint", "pip", "env")}
    body, errors = parse_form(fields)
    if body is not None:
        target = await clusters.job_target(db, who.principal, values["cluster"])
        try:
            job = await service.submit_job(db, who.principal, target, body, jobs_access(request))
        except (Conflict, Unavailable) as exc:  # the cluster cannot take jobs now
            errors.add("cluster", exc.detail)
        except InvalidInput as exc:  # Ray refused it
            errors = FormErrors.of_domain(exc, FIELDS)
        else:
            set_audit_target(request, "job", job.id)
            return RedirectResponse(f"/console/jobs/{job.cluster_id}/{job.id}", status_code=303)
    await refuse(request, db)  # the job row a refused submission flushed does not stay
    return await _list_page(request, db, who, None, values=values, errors=errors, status_code=422)


@router.get("/console/jobs/{cluster_id}/{job_id}", name="web.job")
async def job_page(cluster_id: str, job_id: str, request: Request, db: Session) -> Response:
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    target = await clusters.job_target(db, who.principal, cluster_id)
    job = await service.get_job(db, who.principal, target, job_id)
    return await who.render(
        request,
        "job.html",
        job=job_row(job, target.name),
        runtime_env=job.runtime_env,
        poll=LOG_POLL_SECONDS,
    )


@router.get("/console/jobs/{cluster_id}/{job_id}/log", name="web.job_log")
async def job_log(
    cluster_id: str, job_id: str, request: Request, db: Session, offset: int = Query(0, ge=0, le=2**31)
) -> Response:
    """The log after character ``offset``, appended out of band, and the next poller."""
    who = await member(request, db)
    if not isinstance(who, Member):
        return Response(status_code=200, headers={"HX-Redirect": f"/console/jobs/{cluster_id}/{job_id}"})
    target = await clusters.job_target(db, who.principal, cluster_id)
    job = await service.get_job(db, who.principal, target, job_id)
    ended = job.terminal  # read before the log: a job that ends meanwhile gets one more poll
    text = await service.current_logs(db, who.principal, target, job_id, jobs_access(request))
    # Shorter than what the page holds: not the same text (a stored log, cut to its limit,
    # replaced the live one), so the page's log is replaced rather than appended to.
    reset = len(text) < offset
    return await who.render(
        request,
        "job_log.html",
        job=job_row(job, target.name),
        new=text if reset else text[offset:],
        reset=reset,
        offset=len(text),
        follow=not ended,
        poll=LOG_POLL_SECONDS,
    )


@router.post("/console/jobs/{cluster_id}/{job_id}/stop", name="web.job_stop")
async def stop(cluster_id: str, job_id: str, request: Request, db: Session) -> Response:
    who, _ = await writer(request, db)
    set_audit_target(request, "job", job_id)
    target = await clusters.job_target(db, who.principal, cluster_id)
    await service.stop_job(db, who.principal, target, job_id, jobs_access(request))
    return RedirectResponse(f"/console/jobs/{cluster_id}/{job_id}", status_code=303)
