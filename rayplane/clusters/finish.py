"""Bookkeeping the reconciler does after cloud work: job status and operations.

``sync_jobs`` runs with no transaction open (HTTP to the cluster); ``finish_jobs`` and
``settle_operations`` run in the locked apply phase.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from rayplane.clusters import store
from rayplane.clusters.models import Cluster
from rayplane.clusters.states import State, record_event
from rayplane.jobs.models import TERMINAL
from rayplane.jobs.ray_api import RayJobInfo, RayJobsSyncClient, RayUnavailable, tail


def sync_jobs(
    dashboard_url: str,
    jobs: dict[str, str],
    *,
    final: bool,
    auth: tuple[dict[str, str], str | bool] = ({}, True),
) -> dict[str, tuple[RayJobInfo | None, str | None]]:
    """Status (and, once finished or when ``final``, the logs) of each unfinished job."""
    client = RayJobsSyncClient(dashboard_url, timeout=5, headers=auth[0], verify=auth[1])
    found: dict[str, tuple[RayJobInfo | None, str | None]] = {}
    for job_id, submission_id in jobs.items():
        try:
            info = client.info(submission_id)
            logs = client.logs(submission_id) if info is None or info.status in TERMINAL or final else None
        except RayUnavailable:
            continue
        found[job_id] = (info, logs)
    return found


def finish_jobs(
    session: Session,
    cluster: Cluster,
    updates: dict[str, tuple[RayJobInfo | None, str | None]],
    now: datetime,
    *,
    cluster_gone: str | None = None,
) -> None:
    """Apply job updates; with ``cluster_gone``, end every still-unfinished job as STOPPED."""
    for job in store.jobs_by_ids(session, list(updates)):
        info, logs = updates[job.id]
        if logs is not None:
            job.logs, job.logs_truncated = tail(logs)
        if info is None:
            if job.status not in TERMINAL and job.submitted_at and (now - job.submitted_at).total_seconds() > 30:
                job.status, job.message, job.ended_at = "FAILED", "the job is no longer known to the cluster", now
            continue
        changed = info.status != job.status
        job.status, job.message, job.driver_exit_code = info.status, info.message, info.driver_exit_code
        job.started_at = info.started_at or job.started_at
        job.ended_at = info.ended_at or (now if info.status in TERMINAL else None)
        if changed and info.status in TERMINAL:
            record_event(session, cluster, "job_finished", f"job {job.id} {info.status}", detail={"job_id": job.id})
    if cluster_gone:
        for job in store.active_jobs(session, cluster.id):
            job.status, job.message, job.ended_at = "STOPPED", cluster_gone, now
    session.flush()


def _outcome(kind: str, cluster: Cluster, target_generation: int) -> str | None:
    """``Succeeded``/``Failed`` once the cluster's state answers the operation, else None."""
    state = State(cluster.state)
    if state == State.FAILED and kind in ("create", "start", "retry", "update"):
        return "Failed"
    reached = {
        "create": state == State.RUNNING,
        "start": state == State.RUNNING,
        "retry": state == State.RUNNING,
        "update": state == State.RUNNING and cluster.observed_generation >= target_generation,
        "stop": state == State.STOPPED,
        "delete": state == State.DELETED,
    }
    return "Succeeded" if reached.get(kind) else None


def settle_operations(session: Session, cluster: Cluster, now: datetime) -> None:
    """Mark running operations Succeeded or Failed from the cluster's current state."""
    for op in store.running_operations(session, cluster.id):
        done = _outcome(op.kind, cluster, op.target_generation)
        if done == "Failed":
            op.error_code, op.error_message = cluster.state_code, cluster.state_reason
        if done:
            op.status, op.completed_at = done, now
    session.flush()
