"""Liveness, readiness and Prometheus metrics (unauthenticated, for the platform)."""

from __future__ import annotations

import asyncio

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import app_state
from api.outage import RETRY_AFTER
from api.problems import problem
from api.routing import Router
from rayplane.billing import reports
from rayplane.clusters import metrics as cluster_metrics
from rayplane.db.base import utcnow
from rayplane.db.engine import ping
from rayplane.logs import get_logger

router = Router(tags=["health"])
log = get_logger("rayplane.api.health")

CHECK_TIMEOUT = 2.0


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and the broker answer",
    responses={503: {"description": "not ready; see Retry-After"}},
)
async def readyz(request: Request) -> Response:
    state = app_state(request)

    async def database() -> None:
        await ping(state.engine)

    async def broker() -> None:
        await state.redis.ping()  # type: ignore[misc]  # redis-py types ping() for both clients

    checks: dict[str, str] = {}
    for name, check in (("database", database), ("broker", broker)):
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its type
            checks[name] = f"unavailable ({type(exc).__name__})"
            log.warning("readiness_check_failed", check=name, error=type(exc).__name__)
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    return problem(503, f"not ready: {failing}", instance="/readyz", headers=RETRY_AFTER)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    state = app_state(request)
    try:
        # Billing gauges describe database state (metering hours near expiry, budget alerts):
        # re-read on each scrape, since the workers that change it serve no /metrics.
        async with state.sessions() as session:
            await asyncio.wait_for(reports.refresh_gauges(session, state.settings), CHECK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - the other metrics are still worth serving
        log.warning("billing_gauges_unavailable", error=type(exc).__name__)
    try:
        # Clusters per state, the reconcile backlog and the task queue: shared state too.
        async with state.sessions() as session:
            refresh = cluster_metrics.refresh(session, state.redis, state.settings.task_queue, utcnow())
            await asyncio.wait_for(refresh, CHECK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - as above
        log.warning("control_plane_gauges_unavailable", error=type(exc).__name__)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
