"""Cloud tasks: validate a cloud's access (nudged by the API after the create commits), and
remove shared node pools no cluster has needed for the grace period (beat)."""

from __future__ import annotations

from rayplane.clouds.validation import run_validation
from rayplane.clusters import pools
from rayplane.common.tasks import TaskName
from rayplane.settings import get_settings
from workers.celery_app import app
from workers.db import providers, sessions


@app.task(name=TaskName.VALIDATE_CLOUD, acks_late=True)
def validate(cloud_id: str) -> str | None:
    return run_validation(sessions(), providers(), cloud_id)


@app.task(name=TaskName.GC_POOLS)
def gc_pools() -> int:
    removed = pools.collect(sessions(), providers(), get_settings().azure_pool_grace_seconds)
    return sum(len(v) for v in removed.values())
