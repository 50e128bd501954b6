"""SQL of the metrics API (async): one series query over a cluster's points of one tier."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Means per step-wide bucket of the figures whose name (before "/group") is asked for, over
# the primary key (cluster, tier, at).
_SERIES = text(
    """
    SELECT date_bin(:step, p.at, :origin) AS bucket, f.key, avg(f.value::float8) AS value
    FROM metric_points p, jsonb_each_text(p.figures) AS f(key, value)
    WHERE p.cluster_id = :cluster_id AND p.tier = :tier AND p.at >= :lo AND p.at < :hi
      AND split_part(f.key, '/', 1) = ANY(:names)
    GROUP BY bucket, f.key
    ORDER BY f.key, bucket
    """
)


class MetricsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def series(
        self, cluster_id: str, tier: int, lo: datetime, hi: datetime, step: timedelta, names: list[str]
    ) -> list[tuple[datetime, str, float]]:
        params = {
            "cluster_id": cluster_id,
            "tier": tier,
            "lo": lo,
            "hi": hi,
            "step": step,
            "origin": lo,
            "names": names,
        }
        rows = (await self.session.execute(_SERIES, params)).all()
        return [(r[0], str(r[1]), float(r[2])) for r in rows]
