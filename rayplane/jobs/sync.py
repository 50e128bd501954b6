"""Keeping job records current from a cluster's Ray Jobs API (the worker side).

``fetch`` runs with no transaction open (HTTP to the cluster); ``apply`` runs in the
reconciler's locked apply phase and returns the jobs that finished in this pass, so the
caller can record them in the cluster's history. Both are idempotent: a job already
finished is only ever updated with what Ray says of it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from rayplane.jobs import store
from rayplane.jobs.models import TERMINAL
from rayplane.jobs.ray_api import RayJobInfo, RayJobsSyncClient, RayUnavailable, tail

Auth = tuple[dict[str, str], str | bool]
Updates = dict[str, tuple[RayJobInfo | None, str | None]]

# A job Ray has never heard of this long after submission is taken as lost.
UNKNOWN_AFTER_SECONDS = 30


@dataclass(frozen=True)
class Finished:
    job_id: str
    status: str


def fetch(dashboard_url: str, jobs: dict[str, str], *, final: bool, auth: Auth = ({}, True)) -> Updates:
    """Status (and, once finished or when ``final``, the logs) of each unfinished job,
    keyed by job id (``jobs`` maps job id to Ray submission id). A job Ray cannot be asked
    about now is left out, to be asked again next pass."""
    client = RayJobsSyncClient(dashboard_url, timeout=5, headers=auth[0], verify=auth[1])
    found: Updates = {}
    for job_id, submission_id in jobs.items():
        try:
            info = client.info(submission_id)
            logs = client.logs(submission_id) if info is None or info.status in TERMINAL or final else None
        except RayUnavailable:
            continue
        found[job_id] = (info, logs)
    return found


def apply(session: Session, updates: Updates, now: datetime) -> list[Finished]:
    """Write what ``fetch`` found; the jobs that reached a terminal status here."""
    finished: list[Finished] = []
    for job in store.by_ids(session, list(updates)):
        info, logs = updates[job.id]
        if logs is not None:
            job.logs, job.logs_truncated = tail(logs)
        if info is None:
            lost = job.submitted_at and (now - job.submitted_at).total_seconds() > UNKNOWN_AFTER_SECONDS
            if job.status not in TERMINAL and lost:
                job.status, job.message, job.ended_at = "FAILED", "the job is no longer known to the cluster", now
            continue
        changed = info.status != job.status
        job.status, job.message, job.driver_exit_code = info.status, info.message, info.driver_exit_code
        job.started_at = info.started_at or job.started_at
        job.ended_at = info.ended_at or (now if info.status in TERMINAL else None)
        if changed and info.status in TERMINAL:
            finished.append(Finished(job.id, info.status))
    session.flush()
    return finished
