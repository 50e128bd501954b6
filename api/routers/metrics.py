"""``/v1/clusters/{id}/metrics`` and ``/v1/services/{id}/metrics``: a cluster's figures as
time series, for charts (``rayplane.metrics``)."""

from __future__ import annotations

from fastapi import Query, Request

from api.common import IsoDateTime, problems
from api.deps import Caller, Session, app_state
from api.routing import Router
from rayplane.clusters.values import ClusterKind
from rayplane.db.base import utcnow
from rayplane.metrics import service
from rayplane.metrics.schemas import MetricsOut
from rayplane.metrics.series import Figure
from rayplane.metrics.tiers import tiers

router = Router(tags=["metrics"])
NAMES = Query(
    None,
    description="Comma-separated figures (default: all): " + ", ".join(f.value for f in Figure),
)
FROM = Query(None, alias="from", description="Start (ISO 8601; no offset means UTC). Default: an hour before `to`")
TO = Query(None, description="End, exclusive (ISO 8601). Default: now")
STEP = Query(
    None, ge=1, le=86400, description="Seconds per point (at least the scrape interval). Default: about 120 points"
)


async def _metrics(
    request: Request,
    session: Session,
    caller: Caller,
    cluster_id: str,
    kind: ClusterKind,
    names: str | None,
    frm: IsoDateTime | None,
    to: IsoDateTime | None,
    step: int | None,
) -> MetricsOut:
    settings = app_state(request).settings
    all_tiers = tiers(settings.metrics_scrape_seconds, settings.metrics_retention_days)
    now = utcnow()
    figures = service.parse_names(names)
    lo, hi, width = service.window(frm, to, step, now, all_tiers[0].resolution)
    return await service.cluster_metrics(
        session, caller, cluster_id, kind=kind, names=figures, lo=lo, hi=hi, step=width, tiers=all_tiers, now=now
    )


@router.get(
    "/v1/clusters/{cluster_id}/metrics",
    name="clusters.metrics",
    response_model=MetricsOut,
    response_model_by_alias=True,
    responses=problems(404, 422),
)
async def cluster_metrics(
    request: Request,
    cluster_id: str,
    session: Session,
    caller: Caller,
    names: str | None = NAMES,
    frm: IsoDateTime | None = FROM,
    to: IsoDateTime | None = TO,
    step: int | None = STEP,
) -> MetricsOut:
    """Nodes ready and wanted, CPU, memory, GPU and object store use, tasks, actors and jobs,
    per worker group and for the whole cluster, scraped from Ray every 15 s."""
    return await _metrics(request, session, caller, cluster_id, ClusterKind.CLUSTER, names, frm, to, step)


@router.get(
    "/v1/services/{service_id}/metrics",
    name="services.metrics",
    response_model=MetricsOut,
    response_model_by_alias=True,
    responses=problems(404, 422),
)
async def service_metrics(
    request: Request,
    service_id: str,
    session: Session,
    caller: Caller,
    names: str | None = NAMES,
    frm: IsoDateTime | None = FROM,
    to: IsoDateTime | None = TO,
    step: int | None = STEP,
) -> MetricsOut:
    """A cluster's figures, and Serve's: requests per second, the error ratio, and the p50
    and p99 latency at the service's endpoint."""
    return await _metrics(request, session, caller, service_id, ClusterKind.SERVICE, names, frm, to, step)
