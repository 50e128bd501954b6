"""Prometheus gauges of the control plane's own health: clusters per state, the reconcile
backlog and the task queue.

Like the billing gauges (``rayplane.billing.metrics``), they describe shared state (Postgres
and the broker), so the API re-reads them on every scrape of ``/metrics`` and every replica
reports the same figures; Celery's workers serve no HTTP.

- ``rayplane_clusters{kind, state}``: clusters and services not deleted, per state. Every
  state of ``State`` is reported, 0 included, so a series does not vanish when its last
  cluster leaves the state (an alert on ``FAILED > 0`` must see it drop to 0).
- ``rayplane_reconcile_due`` and ``rayplane_reconcile_lag_seconds``: clusters whose next
  reconcile time has passed, and how long the oldest of them has waited. A lag that grows
  means the workers do not keep up (or none runs); a pass normally takes the due rows within
  a second of their time. Read over the sweep's partial index, so the cost follows the due
  rows, not the table.
- ``rayplane_task_queue_depth{queue}``: tasks waiting in the broker for a worker (the Redis
  list Celery's transport keeps per queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.repository import ClusterRepository
from rayplane.clusters.values import ClusterKind, State

CLUSTERS = Gauge("rayplane_clusters", "Clusters and services not deleted, per kind and state", ["kind", "state"])
RECONCILE_DUE = Gauge("rayplane_reconcile_due", "Clusters whose next reconcile time has passed")
RECONCILE_LAG = Gauge(
    "rayplane_reconcile_lag_seconds", "How long the longest-waiting due cluster has waited for its reconcile"
)
QUEUE_DEPTH = Gauge("rayplane_task_queue_depth", "Tasks waiting in the broker for a worker", ["queue"])


@dataclass(frozen=True)
class ControlPlaneGauges:
    clusters: dict[tuple[ClusterKind, State], int]
    due: int
    oldest_due: datetime | None
    queue: str
    queue_depth: int | None  # None: the broker did not answer (the gauge keeps its value)

    def publish(self, now: datetime) -> None:
        for kind in ClusterKind:
            for state in State:
                if state != State.DELETED:
                    CLUSTERS.labels(kind=kind.value, state=state.value).set(self.clusters.get((kind, state), 0))
        RECONCILE_DUE.set(self.due)
        lag = (now - self.oldest_due).total_seconds() if self.oldest_due is not None else 0.0
        RECONCILE_LAG.set(max(lag, 0.0))
        if self.queue_depth is not None:
            QUEUE_DEPTH.labels(queue=self.queue).set(self.queue_depth)


async def refresh(session: AsyncSession, redis: Redis, queue: str, now: datetime) -> ControlPlaneGauges:
    """Read the figures (one grouped count, one index range, one ``LLEN``) and set the gauges
    of this process. A broker that does not answer leaves the queue gauge as it was; the
    database's figures are still set."""
    repo = ClusterRepository(session)
    counts = await repo.state_counts()
    due, oldest = await repo.reconcile_due(now)
    try:
        depth: int | None = int(await redis.llen(queue))  # type: ignore[misc]  # typed for both clients
    except RedisError:
        depth = None
    gauges = ControlPlaneGauges(counts, due, oldest, queue, depth)
    gauges.publish(now)
    return gauges
