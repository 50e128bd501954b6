"""The console's cluster page: ``/console/clusters/{id}``, its live fragment, scaling, and
stop/start/delete behind a confirmation page.

Reads and writes are ``/v1/clusters``'s service calls with the signed-in member's principal:
``get_cluster`` and ``list_events`` (another tenant's id is a 404, shown as the HTML error
page), ``update_cluster`` for a group's size and ``stop``/``start``/``delete_cluster`` with
the API's ``ClusterPolicy``, audit target and after-commit nudge (``accept``). A viewer gets
no write controls, and a write it forges anyway is refused by the service (403).

The state, the groups' ready/wanted nodes and the events are one fragment that htmx polls
every ``POLL_SECONDS``; the scale forms sit outside it, so a poll never replaces what is
being typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from api.deps import Session, app_state
from api.routers.clusters import Action, accept, policy
from rayplane.clusters import service
from rayplane.clusters.models import Cluster, ClusterEvent
from rayplane.clusters.schemas import ClusterPatch, WorkerGroupSpec
from rayplane.common.errors import InvalidInput, NotFound
from rayplane.common.principal import Principal, Role
from rayplane.tenants.service import require_writable
from web.cluster_form import refused
from web.console import POLL_SECONDS, STOPPABLE, _context
from web.forms import Visitor, checked_form, visitor
from web.pagekit import member
from web.render import error_page, page
from web.wording import EXPLAIN, plain

router = APIRouter(include_in_schema=False)
EVENTS_SHOWN = 50
EVENT_PAGES = 10  # events are read oldest first, 100 a page; the newest EVENTS_SHOWN are shown
DASHBOARD_STATES = {"RUNNING", "UPDATING", "DEGRADED"}

ACTIONS: dict[str, tuple[Action | None, str, str]] = {
    "stop": (service.stop_cluster, "Stop", "Every node stops; the settings are kept and no compute is billed."),
    "start": (service.start_cluster, "Start", "The nodes start again with the same settings."),
    "delete": (None, "Delete", "The cluster is torn down for good. Its history stays readable."),
}


@dataclass(frozen=True)
class EventRow:
    at: str
    what: str
    reason: str
    explanation: str | None


def event_rows(rows: list[ClusterEvent]) -> list[EventRow]:
    out = []
    for e in reversed(rows[-EVENTS_SHOWN:]):
        kind = e.kind.replace("_", " ")
        what = kind
        if e.to_state:
            what = f"{e.from_state} → {e.to_state}" if e.from_state else f"{kind}: {e.to_state}"
        at = e.at.strftime("%Y-%m-%d %H:%M:%S UTC")
        out.append(EventRow(at, what, plain(e.reason or ""), EXPLAIN.get(e.code or "")))
    return out


async def _all_events(db: AsyncSession, principal: Principal, cluster_id: str) -> list[ClusterEvent]:
    rows: list[ClusterEvent] = []
    cursor = None
    for _ in range(EVENT_PAGES):
        found = await service.list_events(db, principal, cluster_id, cursor=cursor, limit=100)
        rows += found.items
        cursor = found.next_cursor
        if cursor is None:
            break
    return rows


def _view(cluster: Cluster) -> dict[str, Any]:
    state = cluster.state.value
    observed = (cluster.observed or {}).get("groups") or {}
    groups = [
        {
            "name": g.name,
            "vm_size": g.vm_size,
            "min_nodes": g.min_nodes,
            "max_nodes": g.max_nodes,
            "spot": g.spot,
            "ready": observed.get(g.name, {}).get("ready", 0),
            "wanted": observed.get(g.name, {}).get("wanted", g.min_nodes),
        }
        for g in cluster.spec.worker_groups
    ]
    running = cluster.desired_state.value == "running"
    return {
        "id": cluster.id,
        "name": cluster.name,
        "state": state,
        "reason": plain(cluster.state_reason or ""),
        "desired": cluster.desired_state.value,
        "head_size": cluster.spec.head.vm_size,
        "head_alive": bool(((cluster.observed or {}).get("head") or {}).get("alive")),
        "groups": groups,
        "stoppable": state in STOPPABLE and running,
        "startable": state == "STOPPED",
        "deletable": cluster.desired_state.value != "deleted",
        "dashboard": state in DASHBOARD_STATES and bool(cluster.dashboard_url),
        "updated": cluster.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


async def _detail(
    request: Request, db: AsyncSession, who: Visitor, cluster_id: str, *, status: int = 200, **extra: Any
) -> Response:
    assert who.principal is not None
    cluster = await service.get_cluster(db, who.principal, cluster_id)
    events = event_rows(await _all_events(db, who.principal, cluster.id))
    context = _context(who, app_state(request).settings)
    return page(
        request,
        "cluster.html",
        status_code=status,
        c=_view(cluster),
        events=events,
        poll=POLL_SECONDS,
        **context,
        **extra,
    )


@router.get("/console/clusters/{cluster_id}", name="web.cluster")
async def detail(cluster_id: str, request: Request, db: Session) -> Response:
    found = await member(request, db)
    if isinstance(found, Response):
        return found  # sign-in, or the page for someone with no tenant
    who = found.who
    response = await _detail(request, db, who, cluster_id)
    await who.store.save(who.session, response)
    return response


@router.get("/console/clusters/{cluster_id}/live", name="web.cluster_live")
async def live(cluster_id: str, request: Request, db: Session) -> Response:
    """The polled fragment: state, groups' ready/wanted nodes, events (newest first)."""
    who = await visitor(request, db)
    if who.principal is None:
        return Response(status_code=200, headers={"HX-Redirect": f"/console/clusters/{cluster_id}"})
    try:
        cluster = await service.get_cluster(db, who.principal, cluster_id)
    except NotFound:  # deleted meanwhile and purged, or never this tenant's: the page says so
        return Response(status_code=200, headers={"HX-Redirect": f"/console/clusters/{cluster_id}"})
    events = event_rows(await _all_events(db, who.principal, cluster.id))
    context = _context(who, app_state(request).settings)
    return page(request, "cluster_live.html", c=_view(cluster), events=events, **context)


async def _writer(request: Request, db: AsyncSession) -> tuple[Visitor, Principal, dict[str, str]] | Response:
    who = await visitor(request, db)
    fields = await checked_form(request, who.session)  # 403 before anything else on a forged form
    if who.principal is None:
        return error_page(request, 403, who.no_tenant or "you are not signed in")
    await require_writable(db, who.principal.tenant_id)  # a suspended tenant reads only, as in the API
    return who, who.principal, fields


@router.post("/console/clusters/{cluster_id}/scale", name="web.cluster_scale")
async def scale(cluster_id: str, request: Request, db: Session) -> Response:
    """One group's fewest and most nodes (``PATCH /v1/clusters/{id}`` with the whole list)."""
    found = await _writer(request, db)
    if isinstance(found, Response):
        return found
    who, principal, fields = found
    cluster = await service.get_cluster(db, principal, cluster_id)
    name = fields.get("group", "")
    groups = []
    index = None
    for i, group in enumerate(cluster.spec.to_json()["worker_groups"]):
        values: dict[str, Any] = dict(group)  # the stored group as the API writes it
        if values["name"] == name:
            index = i
            for key in ("min_nodes", "max_nodes"):
                text = fields.get(key, "").strip()
                if not text.isdigit():
                    return await _detail(
                        request, db, who, cluster_id, status=422, scale_error=(name, f"{key}: a whole number, please")
                    )
                values[key] = int(text)
        groups.append(values)
    if index is None:
        raise InvalidInput.on("body.group", f"cluster {cluster.name!r} has no group {name!r}")
    try:
        patch = ClusterPatch(worker_groups=[WorkerGroupSpec.model_validate(g) for g in groups])
        cluster, op = await service.update_cluster(db, principal, cluster_id, patch, policy(request), if_match=None)
    except (InvalidInput, ValueError) as exc:
        await refused(request, db, principal, 422)
        detail = exc.detail if isinstance(exc, InvalidInput) else str(exc)
        message = detail.replace(f"body.worker_groups.{index}.", "").replace("body.", "")
        return await _detail(request, db, who, cluster_id, status=422, scale_error=(name, message))
    accept(request, cluster, op)
    return RedirectResponse(f"/console/clusters/{cluster.id}", status_code=303)


@router.get("/console/clusters/{cluster_id}/confirm/{action}", name="web.cluster_confirm")
async def confirm(cluster_id: str, action: str, request: Request, db: Session) -> Response:
    """ "Are you sure?" for stop, start and delete: a page with the form that does it."""
    if action not in ACTIONS:
        return error_page(request, 404, f"There is no page at {request.url.path}.")
    found = await member(request, db)
    if isinstance(found, Response):
        return found  # sign-in, or the page for someone with no tenant
    who = found.who
    assert who.principal is not None
    cluster = await service.get_cluster(db, who.principal, cluster_id)
    if not who.principal.role.at_least(Role.MEMBER):
        return error_page(request, 403, "viewers cannot stop, start or delete clusters")
    _, label, meaning = ACTIONS[action]
    context = _context(who, app_state(request).settings)
    response = page(
        request, "cluster_confirm.html", c=_view(cluster), action=action, label=label, meaning=meaning, **context
    )
    await who.store.save(who.session, response)
    return response


@router.post("/console/clusters/{cluster_id}/confirm/{action}", name="web.cluster_act")
async def act(cluster_id: str, action: str, request: Request, db: Session) -> Response:
    if action not in ACTIONS:
        return error_page(request, 404, f"There is no page at {request.url.path}.")
    found = await _writer(request, db)
    if isinstance(found, Response):
        return found
    _, principal, _ = found
    fn = ACTIONS[action][0]
    if fn is None:
        cluster, op = await service.delete_cluster(db, principal, cluster_id, if_match=None)
    else:
        cluster, op = await fn(db, principal, cluster_id, policy(request), if_match=None)
    accept(request, cluster, op)  # the API's after-commit nudge and audit target
    return RedirectResponse(f"/console/clusters/{cluster.id}", status_code=303)
