"""The console: the tenant's clusters with live state (an htmx-polled fragment), stop/start.

Every read and write calls the same core services as ``/v1/clusters`` (list, stop, start,
with the API's ``ClusterPolicy`` and its after-commit nudge and audit), with the signed-in
member's principal; roles are the API's (a viewer gets no write controls, and a write it
forges anyway is refused by the service with 403). The session is the API's unit of work
(``api.deps.Session``): the change and its audit row commit together before the redirect.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from api.deps import Session, app_state
from api.routers.clusters import Action, accept, policy
from rayplane.clusters import service
from rayplane.clusters.schemas import ClusterOut
from rayplane.common.principal import Principal, Role
from rayplane.settings import Settings
from rayplane.tenants.service import require_writable
from web.forms import Visitor, checked_form, simulation_enabled, to_sign_in, visitor
from web.render import error_page, page

router = APIRouter(include_in_schema=False)
POLL_SECONDS = 2
STOPPABLE = {"PENDING", "PROVISIONING", "RUNNING", "UPDATING", "DEGRADED", "STARTING"}


def _group(group: dict[str, Any]) -> str:
    return f"{group['name']}: {group['min_nodes']}-{group['max_nodes']} of {group['vm_size']}"


def _rows(clusters: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for cluster in clusters:
        out = ClusterOut.model_validate(cluster)
        groups = out.spec.get("worker_groups", [])
        rows.append(
            {
                "id": out.id,
                "name": out.name,
                "state": out.state.value,
                "reason": out.state_reason or "",
                "desired": out.desired_state.value,
                "workers": ", ".join(_group(g) for g in groups) or "none (head only)",
                "stoppable": out.state.value in STOPPABLE and out.desired_state.value == "running",
                "startable": out.state.value == "STOPPED",
                "updated": out.updated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            }
        )
    return rows


async def _clusters(db: Session, principal: Principal) -> list[dict[str, Any]]:
    found = await service.list_clusters(db, principal, cursor=None, limit=100, states=None, cloud=None, labels=None)
    return _rows(list(found.items))


def _context(who: Visitor, settings: Settings) -> dict[str, Any]:
    principal = who.principal
    return {
        "user": who.user,
        "csrf": who.session.csrf,
        "role": principal.role.value if principal else None,
        "can_write": principal is not None and principal.role.at_least(Role.MEMBER),
        "simulate": simulation_enabled(settings),
    }


@router.get("/", name="web.home")
async def home(request: Request) -> Response:
    return RedirectResponse("/console", status_code=303)


@router.get("/console", name="web.console")
async def console(request: Request, db: Session) -> Response:
    who = await visitor(request, db)
    if who.user is None:
        return to_sign_in(request)
    if who.principal is None:
        response = error_page(request, 403, who.no_tenant or "no access", title="No Rayplane tenant")
    else:
        clusters = await _clusters(db, who.principal)
        response = page(
            request, "console.html", clusters=clusters, poll=POLL_SECONDS, **_context(who, app_state(request).settings)
        )
    await who.store.save(who.session, response)
    return response


@router.get("/console/clusters/rows", name="web.cluster_rows")
async def cluster_rows(request: Request, db: Session) -> Response:
    """The clusters table's body, polled by htmx every ``POLL_SECONDS``."""
    who = await visitor(request, db)
    if who.principal is None:
        # The session ended (or lost its access) while the page was open: htmx navigates to
        # the console, which says why or signs in again (HX-Redirect; a 4xx would only log).
        return Response(status_code=200, headers={"HX-Redirect": "/console"})
    clusters = await _clusters(db, who.principal)
    return page(request, "cluster_rows.html", clusters=clusters, **_context(who, app_state(request).settings))


async def _power(request: Request, db: Session, cluster_id: str, fn: Action) -> Response:
    who = await visitor(request, db)
    await checked_form(request, who.session)  # 403 before anything else on a forged form
    if who.principal is None:  # signed in, but no member (anonymous forms failed the CSRF check)
        return error_page(request, 403, who.no_tenant or "you are not signed in")
    await require_writable(db, who.principal.tenant_id)  # a suspended tenant reads only, as in the API
    cluster, op = await fn(db, who.principal, cluster_id, policy(request), if_match=None)
    accept(request, cluster, op)  # the API's after-commit nudge and audit target
    return RedirectResponse("/console", status_code=303)


@router.post("/console/clusters/{cluster_id}/stop", name="web.cluster_stop")
async def stop(cluster_id: str, request: Request, db: Session) -> Response:
    return await _power(request, db, cluster_id, service.stop_cluster)


@router.post("/console/clusters/{cluster_id}/start", name="web.cluster_start")
async def start(cluster_id: str, request: Request, db: Session) -> Response:
    return await _power(request, db, cluster_id, service.start_cluster)
