"""Cluster tasks: reconcile one cluster (a nudge), and the periodic sweep of due clusters.

A reconcile that leaves its cluster busy (provisioning, updating, ...) schedules its own
next look after ``reconcile_busy_seconds``; the sweep is the safety net that finds every
due row even when messages were lost (worker killed, Redis flushed or restarted).
"""

from __future__ import annotations

import functools
import os
import socket

from celery import Task

from rayplane.clusters import store
from rayplane.clusters.reconcile import Reconciler
from rayplane.clusters.values import Action
from rayplane.common.tasks import TaskName
from rayplane.db.base import utcnow
from rayplane.logs import get_logger
from rayplane.settings import get_settings
from workers.celery_app import app
from workers.db import providers, sessions, unit_of_work

log = get_logger("rayplane.workers.clusters")


@functools.lru_cache(maxsize=1)
def reconciler() -> Reconciler:
    settings = get_settings()
    owner = f"{socket.gethostname()}:{os.getpid()}"
    return Reconciler(sessions(), providers(), settings, owner)


@app.task(name=TaskName.RECONCILE, bind=True, acks_late=True)
def reconcile(self: Task, cluster_id: str) -> str:  # type: ignore[type-arg]
    outcome = reconciler().reconcile(cluster_id)
    if outcome not in ("busy", "gone", Action.NONE):
        with unit_of_work() as session:
            cluster = store.load(session, cluster_id)
            due = cluster.next_reconcile_at if cluster else None
        settings = get_settings()
        if due is not None:
            delay = (due - utcnow()).total_seconds()
            if delay <= settings.sweep_interval_seconds:
                self.apply_async(args=(cluster_id,), countdown=max(delay, 0), queue=settings.task_queue)
    return outcome


@app.task(name=TaskName.SWEEP)
def sweep(limit: int = 500) -> int:
    settings = get_settings()
    with unit_of_work() as session:
        due = store.claim_due(session, limit=limit, hold_seconds=settings.sweep_hold_seconds)
    for cluster_id in due:
        reconcile.apply_async(args=(cluster_id,), queue=settings.task_queue)
    if due:
        log.info("sweep_enqueued", count=len(due))
    return len(due)
