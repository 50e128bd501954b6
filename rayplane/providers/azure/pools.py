"""Removing shared node pools that no cluster has needed for a grace period.

A pool is *needed* while any cluster of the cloud that should be running uses its VM size
and priority (``demand``, the same figures that size pools). An unneeded pool is remembered
in ``memo`` with the time it was first seen so, and deleted once ``grace_seconds`` have
passed; a pool needed again before then is simply forgotten. Deletion is an LRO resumed from
its token (also in ``memo``) on later runs, so the caller never waits on Azure.

Race: a cluster created while its pool is being deleted finds the pool ``Deleting`` and
waits, then creates it again; nothing is lost, only time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from rayplane.logs import get_logger
from rayplane.providers.azure.manifests import PoolKey

log = get_logger("rayplane.providers.azure.pools")


def needed_names(demand: Mapping[str, int]) -> set[str]:
    names = set()
    for key, count in demand.items():
        size, _, spot = key.rpartition("|")
        if count > 0:
            names.add(PoolKey(size, spot == "true").name)
    return names


def collect(
    existing: list[str],
    demand: Mapping[str, int],
    memo: dict[str, Any],
    delete_pool: Callable[[str, str | None], str | None],
    *,
    grace_seconds: int,
    now: datetime,
) -> tuple[list[str], dict[str, Any]]:
    """Delete (or go on deleting) the ``existing`` pools unneeded for ``grace_seconds``.

    ``delete_pool(name, token)`` starts or resumes one deletion and returns its LRO token
    while under way, None once the pool is gone. Returns the pools touched and the new memo.
    """
    needed = needed_names(demand)
    unused: dict[str, str] = dict(memo.get("unused_since", {}))
    deleting: dict[str, str] = dict(memo.get("deleting", {}))
    removed = []
    for name in existing:
        if name in needed:
            unused.pop(name, None)
            continue
        since = datetime.fromisoformat(unused.setdefault(name, now.isoformat()))
        if name in deleting or now - since >= timedelta(seconds=grace_seconds):
            token = delete_pool(name, deleting.get(name))
            removed.append(name)
            if token:
                deleting[name] = token
            else:
                deleting.pop(name, None)
                unused.pop(name, None)
            log.info("pool_deleted" if token is None else "pool_deleting", pool=name)
    for name in list(unused):
        if name not in existing:
            unused.pop(name)
    for name in list(deleting):
        if name not in existing:
            deleting.pop(name)
    return removed, {**memo, "unused_since": unused, "deleting": deleting}
