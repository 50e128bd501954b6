"""Removing shared node pools no cluster has needed for a grace period (sync; a beat task).

For every READY cloud whose provider shares node pools between clusters, the cloud's demand
(``store.pool_demand``: what its clusters that should be running may use) goes to the
provider's ``collect_unused_pools``, and what the provider wants remembered between runs
(when a pool was first seen unneeded, deletions under way) is kept in the cloud's
``provider_state``. No transaction is open during cloud calls.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from rayplane.clouds import store as cloud_store
from rayplane.clusters import store
from rayplane.db.base import utcnow
from rayplane.logs import get_logger
from rayplane.providers.base import Provider, ProviderError

log = get_logger("rayplane.clusters.pools")


def collect(
    sessions: sessionmaker[Session],
    providers: dict[str, Provider],
    grace_seconds: int,
    now: datetime | None = None,
) -> dict[str, list[str]]:
    """One pass over every READY cloud with shared pools; the pools deleted (or being
    deleted) per cloud."""
    now = now or utcnow()
    removed: dict[str, list[str]] = {}
    for kind, provider in providers.items():
        if not provider.shares_node_pools:
            continue
        with sessions() as session, session.begin():
            clouds = cloud_store.ready_clouds(session, kind)
        for cloud_id, _ in clouds:
            try:
                removed[cloud_id] = _collect_one(sessions, provider, cloud_id, grace_seconds, now)
            except ProviderError as exc:
                log.warning("pool_gc_failed", cloud_id=cloud_id, code=exc.code, error=exc.message[:300])
    return removed


def _collect_one(
    sessions: sessionmaker[Session], provider: Provider, cloud_id: str, grace_seconds: int, now: datetime
) -> list[str]:
    with sessions() as session, session.begin():
        cloud = cloud_store.load(session, cloud_id)
        if cloud is None:
            return []
        config, memo = dict(cloud.config), dict(cloud.provider_state or {})
        demand = store.pool_demand(session, cloud_id)
    removed, memo = provider.collect_unused_pools(config, demand, memo, grace_seconds=grace_seconds, now=now)
    with sessions() as session, session.begin():
        cloud = cloud_store.load(session, cloud_id, lock=True)
        if cloud is not None:
            cloud.provider_state = {**(cloud.provider_state or {}), **memo}
    return removed
