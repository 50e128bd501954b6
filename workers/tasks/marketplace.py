"""Marketplace tasks: process one webhook event (nudged by the API after its intake commits),
re-send events no worker finished (beat), and close tenants whose retention period ended (beat).

``process_event`` runs with ``acks_late``: a worker killed mid-way gets the message redelivered,
and the processing itself is idempotent (see ``rayplane.marketplace.processing``). Clusters it
stopped or deleted are nudged after its transaction committed; the cluster sweep would find
them anyway, since they are due at once.
"""

from __future__ import annotations

import functools
from datetime import timedelta

from rayplane.common.tasks import TaskName
from rayplane.logs import get_logger
from rayplane.marketplace import store
from rayplane.marketplace.client import FulfillmentClient
from rayplane.marketplace.processing import EventProcessor, close_expired
from rayplane.marketplace.token import MarketplaceTokenError
from rayplane.settings import get_settings
from workers.celery_app import app
from workers.db import sessions, unit_of_work

log = get_logger("rayplane.workers.marketplace")


@functools.lru_cache(maxsize=1)
def processor() -> EventProcessor:
    return EventProcessor(sessions(), FulfillmentClient(get_settings()))


@app.task(name=TaskName.PROCESS_MARKETPLACE_EVENT, acks_late=True)
def process_event(operation_id: str) -> str:
    try:
        worker = processor()
    except MarketplaceTokenError as exc:
        # The event stays received; the sweep sends it again once the settings are fixed.
        log.error("marketplace_unconfigured", operation_id=operation_id, error=str(exc))
        return "unconfigured"
    outcome = worker.process(operation_id)
    queue = get_settings().task_queue
    for cluster_id in outcome.clusters:
        app.send_task(TaskName.RECONCILE, args=[cluster_id], queue=queue)
    return outcome.status


@app.task(name=TaskName.SWEEP_MARKETPLACE_EVENTS)
def sweep_events(limit: int = 200) -> int:
    settings = get_settings()
    with unit_of_work() as session:
        # Held longer than a pass can take, so a slow worker is not raced by its own resend.
        due = store.claim_due_events(session, limit=limit, hold_seconds=60)
    for operation_id in due:
        process_event.apply_async(args=(operation_id,), queue=settings.task_queue)
    if due:
        log.info("marketplace_events_resent", count=len(due))
    return len(due)


@app.task(name=TaskName.CLOSE_EXPIRED_TENANTS)
def close_expired_tenants() -> int:
    retention = timedelta(days=get_settings().marketplace_retention_days)
    with unit_of_work() as session:
        closed = close_expired(session, retention=retention)
    return len(closed)
