"""A cluster's (or service's) figures as charts: ``/console/clusters/{id}/metrics`` and the
JSON the charts poll, ``/console/clusters/{id}/metrics.json`` (``/console/services/{id}/
metrics.json`` for a service's requests, errors and latency).

The figures are ``GET /v1/clusters/{id}/metrics``'s: ``rayplane.metrics.service`` with the
member's principal (another tenant's id is a 404). A range of the picker (``RANGES``) is a
window ending now and a step that keeps about 120 points; the service then reads the finest
stored tier that still holds the window's start (15 s scrapes for the last hour, one-minute
means for 6 h and 2 d, fifteen-minute means for 30 d).

The charts' data is aligned on one time axis (one stamp per step from the window's start, a
``null`` where no scrape fell: uPlot draws a gap) and is in the page as a ``<script
type="application/json">`` block, which ``/static/metrics-chart.js`` draws with the vendored
uPlot and then refreshes by polling the JSON (no inline script under the CSP, no reload).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from api.deps import Session, app_state
from rayplane import catalog
from rayplane.clusters import service
from rayplane.clusters.models import Cluster
from rayplane.clusters.values import ClusterKind
from rayplane.common.principal import Principal
from rayplane.db.base import utcnow
from rayplane.metrics import service as metrics
from rayplane.metrics.schemas import MetricsOut
from rayplane.metrics.series import Figure
from rayplane.metrics.tiers import tiers
from web.forms import visitor
from web.pagekit import Member, member

router = APIRouter(include_in_schema=False)
#: The picker's ranges: the window and the step (about 120 points each).
RANGES: dict[str, tuple[str, timedelta, timedelta]] = {
    "1h": ("1 hour", timedelta(hours=1), timedelta(seconds=30)),
    "6h": ("6 hours", timedelta(hours=6), timedelta(minutes=3)),
    "2d": ("2 days", timedelta(days=2), timedelta(minutes=30)),
    "30d": ("30 days", timedelta(days=30), timedelta(hours=6)),
}
DEFAULT_RANGE = "1h"
REFRESH_SECONDS = 15  # the default scrape interval: polling faster shows nothing new
GIB = float(2**30)


@dataclass(frozen=True)
class Line:
    figure: Figure
    label: str
    scale: float = 1.0  # multiplies the stored value (bytes to GiB, a ratio to percent)


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    unit: str
    lines: tuple[Line, ...]
    gpu: bool = False  # shown only for a cluster with GPUs


CLUSTER_CHARTS = (
    Chart("nodes", "Nodes", "nodes", (Line(Figure.NODES_READY, "Ready"), Line(Figure.NODES_WANTED, "Wanted"))),
    Chart("cpu", "CPU", "% used", (Line(Figure.CPU_PERCENT, "CPU"),)),
    Chart(
        "memory",
        "Memory",
        "GiB",
        (Line(Figure.MEMORY_USED, "Used", 1 / GIB), Line(Figure.MEMORY_TOTAL, "Total", 1 / GIB)),
    ),
    Chart("gpu", "GPU", "% used", (Line(Figure.GPU_PERCENT, "GPU"),), gpu=True),
    Chart("object-store", "Object store", "GiB", (Line(Figure.OBJECT_STORE_USED, "Used", 1 / GIB),)),
    Chart(
        "work",
        "Tasks and actors",
        "count",
        (
            Line(Figure.TASKS_RUNNING, "Tasks running"),
            Line(Figure.TASKS_PENDING, "Tasks waiting"),
            Line(Figure.ACTORS_ALIVE, "Actors alive"),
            Line(Figure.ACTORS_PENDING, "Actors waiting"),
        ),
    ),
)
SERVICE_CHARTS = (
    Chart("requests", "Requests", "per second", (Line(Figure.REQUESTS_PER_SECOND, "Requests/s"),)),
    Chart("errors", "Errors", "% of requests", (Line(Figure.ERROR_RATIO, "Errors", 100.0),)),
    Chart(
        "latency",
        "Latency",
        "ms",
        (Line(Figure.LATENCY_P50, "Median (p50)"), Line(Figure.LATENCY_P99, "Slowest 1% (p99)")),
    ),
)


def has_gpus(cluster: Cluster) -> bool:
    sizes = [cluster.spec.head.vm_size, *(g.vm_size for g in cluster.spec.worker_groups)]
    return any((found := catalog.get(s)) is not None and found.gpus > 0 for s in sizes)


def pick_range(raw: str | None) -> str:
    """The picker's key; anything else is the default (a link, not an input to refuse)."""
    return raw if raw in RANGES else DEFAULT_RANGE


def latest(series: list[dict[str, Any]]) -> str:
    """The chart in words, for those who do not see it: each series' newest value."""
    said = []
    for s in series:
        value = next((v for v in reversed(s["values"]) if v is not None), None)
        if value is not None:
            said.append(f"{s['label']} {value:g}")
    return "Latest: " + ", ".join(said) if said else "No figures in this range."


def chart_data(out: MetricsOut, charts: tuple[Chart, ...], *, gpu: bool, range_key: str) -> dict[str, Any]:
    """The charts' columns on one axis: a stamp per step from ``from``, ``None`` for a gap.
    Only whole-cluster series (``group`` null) are drawn; ``empty`` when none has a point."""
    step = out.step_seconds
    lo = int(out.from_.timestamp())
    count = max(int((out.to - out.from_).total_seconds()) // step, 1)
    by_name = {s.name: s for s in out.series if s.group is None}
    empty = True
    drawn = []
    for chart in charts:
        if chart.gpu and not gpu:
            continue
        series = []
        for line in chart.lines:
            values: list[float | None] = [None] * count
            found = by_name.get(line.figure)
            for at, value in found.points if found else ():
                index = (int(at.timestamp()) - lo) // step
                if 0 <= index < count:
                    values[index] = round(value * line.scale, 4)
                    empty = False
            series.append({"label": line.label, "values": values})
        drawn.append(
            {"key": chart.key, "title": chart.title, "unit": chart.unit, "series": series, "latest": latest(series)}
        )
    return {
        "range": range_key,
        "step_seconds": step,
        "from": out.from_.isoformat(),
        "to": out.to.isoformat(),
        "x": [lo + i * step for i in range(count)],
        "charts": drawn,
        "empty": empty,
    }


async def figures(
    request: Request, db: AsyncSession, principal: Principal, cluster: Cluster, range_key: str, now: datetime
) -> dict[str, Any]:
    """``cluster``'s charts over the range ending ``now`` (a service's are Serve's figures)."""
    settings = app_state(request).settings
    all_tiers = tiers(settings.metrics_scrape_seconds, settings.metrics_retention_days)
    _, span, step = RANGES[range_key]
    is_service = cluster.kind == ClusterKind.SERVICE
    charts = SERVICE_CHARTS if is_service else CLUSTER_CHARTS
    names = [line.figure for chart in charts for line in chart.lines]
    # Never finer than the scrape interval (the service refuses that); whole steps from a
    # step-aligned start, so consecutive polls keep their stamps.
    seconds = max(int(step.total_seconds()), int(all_tiers[0].resolution.total_seconds()))
    hi = datetime.fromtimestamp(now.timestamp() - now.timestamp() % seconds + seconds, tz=now.tzinfo)
    lo, hi, width = metrics.window(hi - span, hi, seconds, now, all_tiers[0].resolution)
    out = await metrics.cluster_metrics(
        db, principal, cluster.id, kind=cluster.kind, names=names, lo=lo, hi=hi, step=width, tiers=all_tiers, now=now
    )
    return chart_data(out, charts, gpu=has_gpus(cluster), range_key=range_key)


def ranges(current: str) -> list[dict[str, Any]]:
    return [{"key": k, "label": label, "current": k == current} for k, (label, _, _) in RANGES.items()]


@router.get("/console/clusters/{cluster_id}/metrics", name="web.cluster_metrics")
async def cluster_page(cluster_id: str, request: Request, db: Session, range: str | None = None) -> Response:
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    cluster = await service.get_cluster(db, who.principal, cluster_id)
    key = pick_range(range)
    data = await figures(request, db, who.principal, cluster, key, utcnow())
    return await who.render(
        request,
        "cluster_metrics.html",
        c={"id": cluster.id, "name": cluster.name, "state": cluster.state.value},
        chart=data,
        ranges=ranges(key),
        source=f"/console/clusters/{cluster.id}/metrics.json?range={key}",
        refresh=REFRESH_SECONDS,
    )


async def _json(request: Request, db: AsyncSession, cluster_id: str, kind: ClusterKind, raw: str | None) -> Response:
    """The polled data: 401 once the session is gone (the script stops and says so)."""
    who = await visitor(request, db)
    if who.principal is None:
        return JSONResponse({"detail": "signed out"}, status_code=401)
    cluster = await service.get_cluster(db, who.principal, cluster_id, kind=kind)
    data = await figures(request, db, who.principal, cluster, pick_range(raw), utcnow())
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


@router.get("/console/clusters/{cluster_id}/metrics.json", name="web.cluster_metrics_json")
async def cluster_json(cluster_id: str, request: Request, db: Session, range: str | None = None) -> Response:
    return await _json(request, db, cluster_id, ClusterKind.CLUSTER, range)


@router.get("/console/services/{service_id}/metrics.json", name="web.service_metrics_json")
async def service_json(service_id: str, request: Request, db: Session, range: str | None = None) -> Response:
    return await _json(request, db, service_id, ClusterKind.SERVICE, range)
