"""The console's services: ``/console/services`` (live list) and ``/console/services/{id}``
(state, versions with their nodes, applications, rollout, events, Serve's figures), with
stop/start/delete and rollback behind a confirmation page.

Reads and writes are ``/v1/services``'s core calls with the signed-in member's principal:
``list_clusters``/``get_cluster``/``list_events`` with ``kind=service`` (another tenant's id,
or a plain cluster's, is a 404 page), ``stop``/``start``/``delete_cluster`` with ``of=service``
and the API's ``ClusterPolicy``, and ``serving.rollback_service``; each through the API's
``accept`` (audit target ``service``, the reconciler nudged after commit). A viewer gets no
write controls; a write it forges anyway is refused (CSRF first, then the service's role
check, 403).

Creating or changing a service is left to ``rayplane service create/update -f service.yaml``
(a Serve config reads better as a file); the page says so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from api.deps import Session
from api.routers.clusters import policy
from api.routers.services import accept
from rayplane.clusters import service, serving
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.clusters.service_schemas import ServiceOut
from rayplane.clusters.values import ClusterKind, State
from rayplane.common.errors import NotFound
from rayplane.common.principal import Principal, Role
from rayplane.db.base import utcnow
from web.cluster_detail import EVENT_PAGES, event_rows
from web.console import POLL_SECONDS
from web.forms import visitor
from web.metrics_page import REFRESH_SECONDS, figures, pick_range, ranges
from web.pagekit import Member, member, writer
from web.render import error_page, page
from web.wording import plain

router = APIRouter(include_in_schema=False)
SERVICE = ClusterKind.SERVICE
STOPPABLE = {"PENDING", "PROVISIONING", "RUNNING", "UPDATING", "DEGRADED", "STARTING", "DEPLOYING", "ROLLING_OUT"}
ROLLABLE = {s.value for s in serving.ROLLABLE}

Act = Callable[[Request, AsyncSession, Principal, str], Awaitable[tuple[Cluster, Operation]]]


async def _stop(r: Request, db: AsyncSession, p: Principal, sid: str) -> tuple[Cluster, Operation]:
    return await service.stop_cluster(db, p, sid, policy(r), if_match=None, of=SERVICE)


async def _start(r: Request, db: AsyncSession, p: Principal, sid: str) -> tuple[Cluster, Operation]:
    return await service.start_cluster(db, p, sid, policy(r), if_match=None, of=SERVICE)


async def _delete(r: Request, db: AsyncSession, p: Principal, sid: str) -> tuple[Cluster, Operation]:
    return await service.delete_cluster(db, p, sid, if_match=None, of=SERVICE)


async def _rollback(r: Request, db: AsyncSession, p: Principal, sid: str) -> tuple[Cluster, Operation]:
    return await serving.rollback_service(db, p, sid, if_match=None)


ACTIONS: dict[str, tuple[Act, str, str]] = {
    "stop": (_stop, "Stop", "The endpoint stops answering and every node stops; the settings are kept."),
    "start": (_start, "Start", "The service comes back on the same endpoint with the same settings."),
    "rollback": (
        _rollback,
        "Roll back",
        "The version being rolled out is dropped; all traffic stays on (or returns to) the serving version.",
    ),
    "delete": (_delete, "Delete", "Every version is torn down and the endpoint closed for good. Its history stays."),
}


def split(active: int | None, pending: int | None, traffic: int) -> str:
    """The traffic between the serving and the rolling-out version, in words."""
    if active is None:
        return "no traffic yet"
    if pending is None:
        return f"100% v{active}"
    return f"{100 - traffic}% v{active} · {traffic}% v{pending}"


def _role(number: int, out: ServiceOut) -> str:
    return {out.active_version: "serving", out.pending_version: "rolling out"}.get(number, "")


def view(row: Cluster) -> dict[str, Any]:
    """What the list and the page show of a service (``ServiceOut``, the API's shape)."""
    out = ServiceOut.of(row)
    state = out.state.value
    running = out.desired_state.value == "running"
    versions = []
    for number, nodes in sorted(out.nodes.items(), key=lambda kv: int(kv[0])):
        groups = nodes.get("groups") or {}
        versions.append(
            {
                "number": int(number),
                "role": _role(int(number), out),
                "head_up": bool((nodes.get("head") or {}).get("alive")),
                "groups": [
                    {"name": name, "ready": g.get("ready", 0), "wanted": g.get("wanted", 0)}
                    for name, g in sorted(groups.items())
                ],
            }
        )
    pending = out.pending_version
    return {
        "id": out.id,
        "name": out.name,
        "state": state,
        "reason": plain(out.state_reason or ""),
        "desired": out.desired_state.value,
        "endpoint": out.endpoint_url,
        "version": out.version,
        "active": out.active_version,
        "pending": pending,
        "traffic": out.traffic_percent,
        "split": split(out.active_version, pending, out.traffic_percent),
        "strategy": str(out.rollout.get("strategy", "")).replace("_", "-"),
        "applications": [a.model_dump() for a in out.applications],
        "failure": plain(out.failure or ""),
        "versions": versions,
        "stoppable": state in STOPPABLE and running,
        "startable": state == State.STOPPED.value,
        "rollbackable": pending is not None and running and state in ROLLABLE,
        "deletable": out.desired_state.value != "deleted",
        "updated": out.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


async def _services(db: AsyncSession, principal: Principal) -> list[dict[str, Any]]:
    found = await service.list_clusters(
        db, principal, cursor=None, limit=100, states=None, cloud=None, labels=None, kind=SERVICE
    )
    return [view(row) for row in found.items]


async def _events_of(db: AsyncSession, principal: Principal, service_id: str) -> list[ClusterEvent]:
    rows: list[ClusterEvent] = []
    cursor = None
    for _ in range(EVENT_PAGES):
        found = await service.list_events(db, principal, service_id, cursor=cursor, limit=100, kind=SERVICE)
        rows += found.items
        cursor = found.next_cursor
        if cursor is None:
            break
    return rows


@router.get("/console/services", name="web.services")
async def services_page(request: Request, db: Session) -> Response:
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    rows = await _services(db, who.principal)
    return await who.render(request, "services.html", services=rows, poll=POLL_SECONDS)


@router.get("/console/services/rows", name="web.service_rows")
async def service_rows(request: Request, db: Session) -> Response:
    """The list's body, polled by htmx every ``POLL_SECONDS``."""
    who = await visitor(request, db)
    if who.principal is None:
        return Response(status_code=200, headers={"HX-Redirect": "/console/services"})
    rows = await _services(db, who.principal)
    return page(request, "service_rows.html", services=rows)


@router.get("/console/services/{service_id}", name="web.service")
async def service_page(service_id: str, request: Request, db: Session, range: str | None = None) -> Response:
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    row = await service.get_cluster(db, who.principal, service_id, kind=SERVICE)
    key = pick_range(range)
    return await who.render(
        request,
        "service.html",
        s=view(row),
        events=event_rows(await _events_of(db, who.principal, row.id)),
        poll=POLL_SECONDS,
        chart=await figures(request, db, who.principal, row, key, utcnow()),
        ranges=ranges(key),
        source=f"/console/services/{row.id}/metrics.json?range={key}",
        refresh=REFRESH_SECONDS,
    )


@router.get("/console/services/{service_id}/live", name="web.service_live")
async def service_live(service_id: str, request: Request, db: Session) -> Response:
    """The polled fragment: state, traffic, versions, applications, events."""
    who = await visitor(request, db)
    back = Response(status_code=200, headers={"HX-Redirect": f"/console/services/{service_id}"})
    if who.principal is None:
        return back
    try:
        row = await service.get_cluster(db, who.principal, service_id, kind=SERVICE)
    except NotFound:  # gone meanwhile, or never this tenant's: the page itself says so
        return back
    events = event_rows(await _events_of(db, who.principal, row.id))
    return page(request, "service_live.html", s=view(row), events=events)


@router.get("/console/services/{service_id}/confirm/{action}", name="web.service_confirm")
async def confirm(service_id: str, action: str, request: Request, db: Session) -> Response:
    """ "Are you sure?" for stop, start, rollback and delete: a page with the form that does it."""
    if action not in ACTIONS:
        return error_page(request, 404, f"There is no page at {request.url.path}.")
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    row = await service.get_cluster(db, who.principal, service_id, kind=SERVICE)
    if not who.at_least(Role.MEMBER):
        return error_page(request, 403, "viewers cannot change services")
    _, label, meaning = ACTIONS[action]
    return await who.render(request, "service_confirm.html", s=view(row), action=action, label=label, meaning=meaning)


@router.post("/console/services/{service_id}/confirm/{action}", name="web.service_act")
async def act(service_id: str, action: str, request: Request, db: Session) -> Response:
    if action not in ACTIONS:
        return error_page(request, 404, f"There is no page at {request.url.path}.")
    who, _ = await writer(request, db)  # CSRF, a member of a writable tenant
    row, op = await ACTIONS[action][0](request, db, who.principal, service_id)
    accept(request, row, op)  # the API's audit target and after-commit nudge
    return RedirectResponse(f"/console/services/{row.id}", status_code=303)
