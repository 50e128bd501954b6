"""The Celery application and beat schedule.

Messages are nudges only: Postgres holds every desired state, so a lost message delays
work and loses none. Hence ``acks_late`` with ``reject_on_worker_lost`` (a task killed
mid-way is redelivered) and idempotent tasks.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import setup_logging

from rayplane.common.tasks import TaskName
from rayplane.logs import configure_logging
from rayplane.settings import broker_url, get_settings


@setup_logging.connect
def _json_logs(**_: Any) -> None:
    """Connected, so Celery leaves logging to us: the same JSON lines as the API."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


def make_celery() -> Celery:
    settings = get_settings()
    if not settings.redis_url:
        raise RuntimeError("RAYPLANE_REDIS_URL must be set for workers; `rayplane dev` sets it")
    app = Celery(
        "rayplane",
        broker=broker_url(settings.redis_url),
        include=[
            "workers.tasks.maintenance",
            "workers.tasks.clusters",
            "workers.tasks.clouds",
            "workers.tasks.marketplace",
            "workers.tasks.billing",
            "workers.tasks.metrics",
        ],
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        task_default_queue=settings.task_queue,
        beat_schedule={
            "sweep-due-clusters": {
                "task": TaskName.SWEEP.value,
                "schedule": settings.sweep_interval_seconds,
                "options": {"expires": settings.sweep_interval_seconds * 2},
            },
            "collect-unused-node-pools": {
                "task": TaskName.GC_POOLS.value,
                "schedule": settings.azure_pool_gc_interval_seconds,
                "options": {"queue": settings.task_queue, "expires": settings.azure_pool_gc_interval_seconds},
            },
            "resend-marketplace-events": {
                "task": TaskName.SWEEP_MARKETPLACE_EVENTS.value,
                "schedule": settings.marketplace_event_sweep_seconds,
                "options": {"queue": settings.task_queue, "expires": settings.marketplace_event_sweep_seconds * 2},
            },
            "close-expired-marketplace-tenants": {
                "task": TaskName.CLOSE_EXPIRED_TENANTS.value,
                "schedule": 3600.0,
                "options": {"queue": settings.task_queue},
            },
            # Ten minutes past each hour: the last hour is closed (RAYPLANE_METERING_DELAY_SECONDS).
            "meter-usage": {
                "task": TaskName.METER.value,
                "schedule": crontab(minute=10),
                "options": {"queue": settings.task_queue, "expires": 3000},
            },
            "check-budgets": {
                "task": TaskName.CHECK_BUDGETS.value,
                "schedule": settings.budget_check_interval_seconds,
                "options": {"queue": settings.task_queue, "expires": settings.budget_check_interval_seconds},
            },
            # Scrapes are worth nothing late: one that waited a whole interval is dropped.
            "scrape-cluster-metrics": {
                "task": TaskName.SCRAPE_METRICS.value,
                "schedule": settings.metrics_scrape_seconds,
                "options": {"queue": settings.task_queue, "expires": settings.metrics_scrape_seconds},
            },
            "roll-up-cluster-metrics": {
                "task": TaskName.METRICS_UPKEEP.value,
                "schedule": 60.0,
                "options": {"queue": settings.task_queue, "expires": 120.0},
            },
            "purge-old-logs": {
                "task": TaskName.PURGE_OLD_LOGS.value,
                "schedule": 3600.0,
                "options": {"queue": settings.task_queue, "expires": 3000},
            },
            "purge-idempotency-records": {
                "task": TaskName.PURGE_IDEMPOTENCY_RECORDS.value,
                "schedule": 600.0,
                "options": {"queue": settings.task_queue},
            },
        },
    )
    return app


app = make_celery()
