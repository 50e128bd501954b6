"""Usage intervals from observations (the billing ground truth).

``record_observation`` is called with what was *observed* running per group; when a group's
count differs from its open interval, that interval is closed at ``at`` and, if nodes still
run, a new one opens at the same instant, so intervals tile time without gaps or overlap.
A partial unique index allows one open interval per (cluster, group): a duplicate delivery
or a retried pass cannot open a second one. Each interval carries the per-node vCPUs and GPUs
of its VM size from the catalog, as billing aggregates them (0 for a size the catalog lacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rayplane import catalog
from rayplane.db.ids import new_id
from rayplane.usage.models import UsageInterval


@dataclass(frozen=True)
class GroupUsage:
    """What was observed of one group: ``count`` nodes of ``vm_size`` (``size`` resolved
    from the catalog by the spec; None for a size the catalog lacks)."""

    group: str
    vm_size: str
    spot: bool
    count: int
    size: catalog.VmSize | None


def open_intervals(session: Session, cluster_id: str) -> dict[str, UsageInterval]:
    stmt = select(UsageInterval).where(UsageInterval.cluster_id == cluster_id, UsageInterval.ended_at.is_(None))
    return {u.group_name: u for u in session.execute(stmt).scalars()}


def record_observation(
    session: Session, *, tenant_id: str, cluster_id: str, groups: list[GroupUsage], at: datetime
) -> list[str]:
    """Close and open intervals so they match ``groups``; returns a line per change."""
    current = open_intervals(session, cluster_id)
    changes: list[str] = []
    seen = set()
    for g in groups:
        seen.add(g.group)
        interval = current.get(g.group)
        same = interval is not None and (interval.node_count, interval.vm_size, interval.spot) == (
            g.count,
            g.vm_size,
            g.spot,
        )
        if same:
            continue
        if interval is not None:
            interval.ended_at = at
            session.flush()  # the open-interval index must see it closed before a new one opens
        if g.count > 0:
            size = g.size
            session.add(
                UsageInterval(
                    id=new_id("use"),
                    tenant_id=tenant_id,
                    cluster_id=cluster_id,
                    group_name=g.group,
                    vm_size=g.vm_size,
                    spot=g.spot,
                    node_count=g.count,
                    vcpus=size.vcpus if size else 0,
                    gpus=size.gpus if size else 0,
                    started_at=at,
                )
            )
        changes.append(f"{g.group}: {interval.node_count if interval else 0} -> {g.count} x {g.vm_size}")
    for name, interval in current.items():
        if name not in seen:
            interval.ended_at = at
            changes.append(f"{name}: {interval.node_count} -> 0 x {interval.vm_size}")
    session.flush()
    return changes


def close_all(session: Session, cluster_id: str, at: datetime) -> None:
    for interval in open_intervals(session, cluster_id).values():
        interval.ended_at = at
    session.flush()
