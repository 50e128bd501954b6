"""SQL of the metrics worker (sync): what to scrape, the previous scrape, the new row, and
the rollups and pruning that keep the series bounded (``rayplane.metrics.tiers``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from rayplane.clouds.models import Cloud
from rayplane.clusters.models import Cluster
from rayplane.clusters.values import State
from rayplane.jobs.models import Job
from rayplane.metrics.models import MetricPoint
from rayplane.metrics.tiers import Tier, on_grid

# States in which a cluster's nodes may run and be worth a chart.
SCRAPED = (State.RUNNING, State.DEGRADED, State.UPDATING, State.DEPLOYING, State.ROLLING_OUT, State.ROLLING_BACK)
# Means over a source tier's rows, one per cluster and bucket of the target's resolution.
_ROLL_UP = text(
    """
    INSERT INTO metric_points (cluster_id, tier, at, figures)
    SELECT cluster_id, :target, bucket, jsonb_object_agg(key, value)
    FROM (
        SELECT p.cluster_id, date_bin(:resolution, p.at, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
               f.key, avg(f.value::float8) AS value
        FROM metric_points p, jsonb_each_text(p.figures) AS f(key, value)
        WHERE p.tier = :source AND p.at >= :lo AND p.at < :hi
        GROUP BY p.cluster_id, bucket, f.key
    ) means
    GROUP BY cluster_id, bucket
    ON CONFLICT (cluster_id, tier, at) DO NOTHING
    """
)


@dataclass(frozen=True)
class Scrapable:
    cluster_id: str
    provider: str
    provider_state: dict[str, Any]
    observed: dict[str, Any]
    jobs: dict[str, int]
    cloud_config: dict[str, Any] = field(default_factory=dict)


def scrapable(session: Session) -> list[Scrapable]:
    """Clusters and services whose nodes may run, with their cloud's kind and config (how a
    provider reaches the nodes, e.g. an AKS cluster's API server), what the reconciler last
    observed, and their PENDING and RUNNING jobs (over ``ix_jobs_active``)."""
    rows = session.execute(
        select(Cluster.id, Cloud.provider, Cluster.provider_state, Cluster.observed, Cloud.config)
        .join(Cloud, Cloud.id == Cluster.cloud_id)
        .where(Cluster.state.in_(SCRAPED))
    ).all()
    ids = [r[0] for r in rows]
    jobs: dict[str, dict[str, int]] = {}
    if ids:
        for cid, status, n in session.execute(
            select(Job.cluster_id, Job.status, func.count())
            .where(Job.cluster_id.in_(ids), Job.status.in_(("PENDING", "RUNNING")))
            .group_by(Job.cluster_id, Job.status)
        ).all():
            jobs.setdefault(cid, {})[str(status).lower()] = int(n)
    return [
        Scrapable(cid, prov, dict(state or {}), dict(obs or {}), jobs.get(cid, {}), dict(config or {}))
        for cid, prov, state, obs, config in rows
    ]


def previous(session: Session, cluster_id: str, before: datetime) -> tuple[datetime, dict[str, Any]] | None:
    """The latest scrape before ``before`` and its counters (over the primary key)."""
    row = session.execute(
        select(MetricPoint.at, MetricPoint.counters)
        .where(MetricPoint.cluster_id == cluster_id, MetricPoint.tier == 0, MetricPoint.at < before)
        .order_by(MetricPoint.at.desc())
        .limit(1)
    ).first()
    return None if row is None else (row[0], dict(row[1] or {}))


def add(session: Session, cluster_id: str, at: datetime, figures: dict[str, float], counters: dict[str, float]) -> bool:
    """Write a scrape; False when one is already there for that time (another worker's)."""
    stmt = (
        insert(MetricPoint)
        .values(cluster_id=cluster_id, tier=0, at=at, figures=figures, counters=counters)
        .on_conflict_do_nothing(index_elements=["cluster_id", "tier", "at"])
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def roll_up(session: Session, source: Tier, target: Tier, now: datetime) -> int:
    """Means of ``source`` rows into ``target`` buckets that have ended (with one source
    interval to spare for a late scrape), from the bucket after the last one written. Each
    bucket is written once (``ON CONFLICT DO NOTHING``), so a rerun or two workers at once
    change nothing; a run that was missed is caught up while ``source`` still holds the rows."""
    last = session.execute(select(func.max(MetricPoint.at)).where(MetricPoint.tier == target.number)).scalar()
    hi = on_grid(now - source.resolution, target.resolution)
    lo = last + target.resolution if last is not None else now - source.keep
    if lo >= hi:
        return 0
    params = {"target": target.number, "source": source.number, "resolution": target.resolution, "lo": lo, "hi": hi}
    return int(session.execute(_ROLL_UP, params).rowcount)  # type: ignore[attr-defined]


def prune(session: Session, tier: Tier, now: datetime) -> int:
    """Delete the tier's rows older than it keeps (over ``ix_metric_points_tier_at``)."""
    stmt = delete(MetricPoint).where(MetricPoint.tier == tier.number, MetricPoint.at < now - tier.keep)
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
