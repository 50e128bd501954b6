"""Reading a cluster's metrics for charts: which figures, over which window, at which step.

Defaults: the last hour, at a step that gives about 120 points (never finer than the scrape
interval). At most ``MAX_POINTS`` points per series; a window older than the retention
answers from the coarsest tier (empty once that is gone too). Tenant isolation is the
cluster's: another tenant's cluster is a 404, as everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.service import get_cluster
from rayplane.clusters.values import ClusterKind
from rayplane.common.errors import FieldError, InvalidInput, invalid
from rayplane.common.principal import Principal
from rayplane.metrics.repository import MetricsRepository
from rayplane.metrics.schemas import MetricsOut, Series
from rayplane.metrics.series import Figure
from rayplane.metrics.tiers import Tier, choose

DEFAULT_WINDOW = timedelta(hours=1)
TARGET_POINTS = 120
MAX_POINTS = 2000


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_names(raw: str | None) -> list[Figure]:
    """``names`` as a comma-separated list (every figure when absent); every unknown name is
    reported at once."""
    if raw is None or not raw.strip():
        return list(Figure)
    asked = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in asked if n not in Figure.__members__.values()]
    if unknown:
        known = ", ".join(f.value for f in Figure)
        raise InvalidInput.on("query.names", f"unknown: {', '.join(unknown)} (known: {known})")
    return [Figure(n) for n in dict.fromkeys(asked)]


def window(
    frm: datetime | None, to: datetime | None, step: int | None, now: datetime, scrape: timedelta
) -> tuple[datetime, datetime, timedelta]:
    hi = _utc(to) if to is not None else now
    try:
        lo = _utc(frm) if frm is not None else hi - DEFAULT_WINDOW
    except OverflowError:
        raise InvalidInput.on("query.to", "give from with a to this early") from None
    errors: list[FieldError] = []
    if hi <= lo:
        errors.append(FieldError("query.to", f"must be after from ({lo.isoformat()})"))
    span = max((hi - lo).total_seconds(), 1.0)
    if step is None:
        seconds = max(scrape.total_seconds(), span / TARGET_POINTS)
    elif step < scrape.total_seconds():
        errors.append(FieldError("query.step", f"at least the scrape interval, {int(scrape.total_seconds())} s"))
        seconds = scrape.total_seconds()
    else:
        seconds = float(step)
    if span / seconds > MAX_POINTS:
        errors.append(FieldError("query.step", f"too small for the window: at most {MAX_POINTS} points per series"))
    if errors:
        raise invalid(errors)
    return lo, hi, timedelta(seconds=int(seconds))


async def cluster_metrics(
    session: AsyncSession,
    principal: Principal,
    cluster_id: str,
    *,
    kind: ClusterKind,
    names: list[Figure],
    lo: datetime,
    hi: datetime,
    step: timedelta,
    tiers: tuple[Tier, ...],
    now: datetime,
) -> MetricsOut:
    cluster = await get_cluster(session, principal, cluster_id, kind=kind)
    tier = choose(tiers, lo, now)
    rows = await MetricsRepository(session).series(cluster.id, tier.number, lo, hi, step, [n.value for n in names])
    by_key: dict[str, list[tuple[datetime, float]]] = {}
    for at, key, value in rows:
        by_key.setdefault(key, []).append((at, value))
    series = []
    for key, points in by_key.items():
        name, _, group = key.partition("/")
        series.append(Series(name=Figure(name), group=group or None, points=points))
    order = {f: i for i, f in enumerate(Figure)}
    series.sort(key=lambda s: (order[s.name], s.group or ""))
    return MetricsOut.model_validate(
        {
            "cluster_id": cluster.id,
            "from": lo,
            "to": hi,
            "step_seconds": int(step.total_seconds()),
            "resolution_seconds": int(tier.resolution.total_seconds()),
            "series": series,
        }
    )
