"""SQL on ``jobs`` for the worker side (sync sessions): what the reconciler and the state
machine read and end. The API side's queries are in ``rayplane.jobs.repository``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rayplane.jobs.models import ACTIVE, Job


def active(session: Session, cluster_id: str) -> list[Job]:
    """The cluster's jobs not yet finished (over the partial index ``ix_jobs_active``)."""
    stmt = select(Job).where(Job.cluster_id == cluster_id, Job.status.in_(ACTIVE))
    return list(session.execute(stmt).scalars())


def by_ids(session: Session, ids: list[str]) -> list[Job]:
    if not ids:
        return []
    return list(session.execute(select(Job).where(Job.id.in_(ids))).scalars())


def end_unfinished(session: Session, cluster_id: str, *, status: str, message: str, at: datetime) -> list[str]:
    """End every unfinished job of the cluster with ``status``; the ids of those ended."""
    ended = []
    for job in active(session, cluster_id):
        job.status, job.message, job.ended_at = status, message, at
        ended.append(job.id)
    session.flush()
    return ended
