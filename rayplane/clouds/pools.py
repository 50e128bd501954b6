"""Removing shared node pools that no cluster has needed for a grace period (sync; a beat task).

A pool is *needed* while any cluster of the cloud that should be running uses its VM size
and priority (the same demand query that sizes pools). An unneeded pool is remembered with
the time it was first seen so, and deleted once ``azure_pool_grace_seconds`` have passed;
a pool needed again before then is simply forgotten. Deletion is an LRO resumed from its
token on later runs, so the task never waits on Azure.

Race: a cluster created while its pool is being deleted finds the pool ``Deleting`` and
waits, then creates it again; nothing is lost, only time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from rayplane.clouds import store as cloud_store
from rayplane.clusters import store
from rayplane.db.base import utcnow
from rayplane.logs import get_logger
from rayplane.providers.azure.manifests import PoolKey
from rayplane.providers.azure.provider import AzureProvider
from rayplane.providers.base import ProviderError

log = get_logger("rayplane.clouds.pools")


def _needed_names(demand: dict[str, int]) -> set[str]:
    names = set()
    for key, count in demand.items():
        size, _, spot = key.rpartition("|")
        if count > 0:
            names.add(PoolKey(size, spot == "true").name)
    return names


def collect(
    sessions: sessionmaker[Session], provider: AzureProvider, grace_seconds: int, now: datetime | None = None
) -> dict[str, list[str]]:
    """One pass over every READY Azure cloud; the pools deleted (or being deleted) per cloud."""
    now = now or utcnow()
    with sessions() as session, session.begin():
        clouds = cloud_store.ready_clouds(session, "azure")
    removed: dict[str, list[str]] = {}
    for cloud_id, config in clouds:
        try:
            removed[cloud_id] = _collect_one(sessions, provider, cloud_id, config, grace_seconds, now)
        except ProviderError as exc:
            log.warning("pool_gc_failed", cloud_id=cloud_id, code=exc.code, error=exc.message[:300])
    return removed


def _collect_one(
    sessions: sessionmaker[Session],
    provider: AzureProvider,
    cloud_id: str,
    config: dict[str, Any],
    grace_seconds: int,
    now: datetime,
) -> list[str]:
    existing = provider.managed_pools(config)
    with sessions() as session, session.begin():
        cloud = cloud_store.load(session, cloud_id)
        if cloud is None:
            return []
        needed = _needed_names(store.pool_demand(session, cloud_id))
        state = dict(cloud.provider_state or {})
    unused: dict[str, str] = dict(state.get("unused_since", {}))
    deleting: dict[str, str] = dict(state.get("deleting", {}))
    removed = []
    for name in existing:
        if name in needed:
            unused.pop(name, None)
            continue
        since = datetime.fromisoformat(unused.setdefault(name, now.isoformat()))
        if name in deleting or now - since >= timedelta(seconds=grace_seconds):
            token = provider.delete_pool(config, name, deleting.get(name))
            removed.append(name)
            if token:
                deleting[name] = token
            else:
                deleting.pop(name, None)
                unused.pop(name, None)
            log.info("pool_deleted" if token is None else "pool_deleting", cloud_id=cloud_id, pool=name)
    for name in list(unused):
        if name not in existing:
            unused.pop(name)
    for name in list(deleting):
        if name not in existing:
            deleting.pop(name)
    with sessions() as session, session.begin():
        cloud = cloud_store.load(session, cloud_id, lock=True)
        if cloud is not None:
            cloud.provider_state = {**(cloud.provider_state or {}), "unused_since": unused, "deleting": deleting}
    return removed
