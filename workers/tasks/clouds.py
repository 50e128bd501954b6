"""Cloud tasks: validate an Azure cloud's access (nudged by the API after the create commits),
and remove shared node pools no cluster has needed for the grace period (beat)."""

from __future__ import annotations

import functools

from rayplane.clouds import pools
from rayplane.clouds.access import run_validation
from rayplane.providers.azure import AzureProvider
from rayplane.settings import get_settings
from workers.celery_app import app
from workers.db import sessions

VALIDATE = "rayplane.clouds.validate"
GC_POOLS = "rayplane.clouds.gc_pools"


@functools.lru_cache(maxsize=1)
def _azure() -> AzureProvider:
    return AzureProvider(get_settings())


@app.task(name=VALIDATE, acks_late=True)
def validate(cloud_id: str) -> str | None:
    return run_validation(sessions(), get_settings(), cloud_id)


@app.task(name=GC_POOLS)
def gc_pools() -> int:
    settings = get_settings()
    if not settings.azure_client_id:
        return 0
    removed = pools.collect(sessions(), _azure(), settings.azure_pool_grace_seconds)
    return sum(len(v) for v in removed.values())
