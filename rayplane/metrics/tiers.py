"""How long each resolution of the metrics is kept, and which one answers a query.

Tier 0 holds every scrape (every ``RAYPLANE_METRICS_SCRAPE_SECONDS``, 15 s by default) for
3 hours; tier 1 one-minute means for 2 days; tier 2 fifteen-minute means for the retention
(``RAYPLANE_METRICS_RETENTION_DAYS``, 30 by default). A cluster that runs all month keeps
720 + 2,880 + 2,880 rows at most, whatever its age: the store is bounded per cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Tier:
    number: int
    resolution: timedelta
    keep: timedelta


def tiers(scrape_seconds: float, retention_days: int) -> tuple[Tier, Tier, Tier]:
    return (
        Tier(0, timedelta(seconds=scrape_seconds), timedelta(hours=3)),
        Tier(1, timedelta(minutes=1), timedelta(days=2)),
        Tier(2, timedelta(minutes=15), timedelta(days=retention_days)),
    )


def choose(all_tiers: tuple[Tier, ...], lo: datetime, now: datetime) -> Tier:
    """The finest tier that still holds ``lo`` (the coarsest when none does). Finest, not
    the coarsest that fits the step: a coarser tier is written a bucket after its time, so
    it would leave the last minutes of a recent window out; tier 0 holds at most 3 hours
    (720 rows a cluster) for the query to average into steps."""
    holding = [t for t in all_tiers if now - t.keep <= lo]
    return holding[0] if holding else all_tiers[-1]


def on_grid(at: datetime, resolution: timedelta) -> datetime:
    """``at`` rounded down to the resolution's grid (from the Unix epoch)."""
    seconds = resolution.total_seconds()
    stamp = at.timestamp()
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=at.tzinfo)
