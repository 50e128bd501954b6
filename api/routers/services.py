"""``/v1/services``: Ray Serve services, with the cluster conventions (202 + operation,
ETag/If-Match, idempotency, events, audit). A service is a cluster of kind ``service``;
this adapter gives it its own wire shape, and ``/v1/clusters`` does not show it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from api.common import Cursor, Limit, ListPage, idempotent_create, problems, with_etag
from api.deps import Caller, IdempotencyKey, IfMatch, Session, after_commit, app_state, set_audit_target
from api.routers.clusters import policy
from api.routing import Router
from rayplane.clusters import service, serving
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.schemas import ClusterEventOut
from rayplane.clusters.service_schemas import ServiceCreate, ServiceOut, ServicePatch
from rayplane.clusters.values import ClusterKind

router = Router(tags=["services"])
SERVICE = ClusterKind.SERVICE


def accept(request: Request, row: Cluster, op: Operation) -> tuple[dict[str, object], dict[str, str]]:
    """The 202 body and headers (ETag, Location, Operation-Location); nudges after commit."""
    nudger = app_state(request).nudger
    row_id = row.id

    async def nudge() -> None:
        await nudger.reconcile(row_id)

    after_commit(request, nudge)
    set_audit_target(request, "service", row.id, operation=op.id)
    headers = {
        "ETag": row.etag,
        "Location": f"/v1/services/{row.id}",
        "Operation-Location": f"/v1/operations/{op.id}",
    }
    return ServiceOut.of(row).model_dump(mode="json"), headers


def accepted(request: Request, row: Cluster, op: Operation) -> JSONResponse:
    body, headers = accept(request, row, op)
    return JSONResponse(body, status_code=202, headers=headers)


@router.post(
    "/v1/services",
    name="services.create",
    status_code=202,
    response_model=ServiceOut,
    responses=problems(403, 409, 415, 422),
)
async def create_service(
    body: ServiceCreate, request: Request, session: Session, caller: Caller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Accept a new service: a Ray cluster, its Serve applications and a stable endpoint;
    follow ``Operation-Location`` (or the state) to RUNNING."""

    async def create() -> tuple[int, object, dict[str, str]]:
        row, op = await serving.create_service(session, caller, body, policy(request))
        payload, headers = accept(request, row, op)
        return 202, payload, headers

    return await idempotent_create(
        request,
        session,
        caller,
        idempotency_key,
        body,
        create,
        authorize=lambda: service.authorize_create(caller),
        target_type="service",
    )


@router.get("/v1/services", name="services.list", response_model=ListPage[ServiceOut], responses=problems(422))
async def list_services(
    session: Session,
    caller: Caller,
    limit: int = Limit,
    cursor: str | None = Cursor,
    state: list[str] | None = Query(None, description="Only these states (repeatable)"),
    cloud: str | None = Query(None, description="Cloud id or name"),
    label: list[str] | None = Query(None, description="key=value (repeatable; all must match)"),
) -> ListPage[ServiceOut]:
    page = await service.list_clusters(
        session, caller, cursor=cursor, limit=limit, states=state, cloud=cloud, labels=label, kind=SERVICE
    )
    return ListPage[ServiceOut](items=[ServiceOut.of(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/v1/services/{service_id}", name="services.get", response_model=ServiceOut, responses=problems(404))
async def get_service(service_id: str, session: Session, caller: Caller, response: Response) -> ServiceOut:
    row = await service.get_cluster(session, caller, service_id, kind=SERVICE)
    with_etag(response, row.etag)
    return ServiceOut.of(row)


@router.get(
    "/v1/services/{service_id}/events",
    name="services.events",
    response_model=ListPage[ClusterEventOut],
    responses=problems(404, 422),
)
async def list_events(
    service_id: str, session: Session, caller: Caller, limit: int = Limit, cursor: str | None = Cursor
) -> ListPage[ClusterEventOut]:
    """Oldest first; pass ``next_cursor`` to read on (also to poll for new events)."""
    page = await service.list_events(session, caller, service_id, cursor=cursor, limit=limit, kind=SERVICE)
    return ListPage[ClusterEventOut](
        items=[ClusterEventOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )


@router.patch(
    "/v1/services/{service_id}",
    name="services.update",
    status_code=202,
    response_model=ServiceOut,
    responses=problems(403, 404, 409, 412, 415, 422),
)
async def update_service(
    service_id: str, body: ServicePatch, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
) -> JSONResponse:
    """Change the Serve config (in place), or the Ray version, image or VM sizes (a new
    version on a new cluster, rolled out under the service's rollout policy)."""
    row, op = await serving.update_service(session, caller, service_id, body, policy(request), if_match=if_match)
    return accepted(request, row, op)


Action = Callable[..., Awaitable[tuple[Cluster, Operation]]]


def _action(name: str, call: Action, doc: str) -> None:
    async def endpoint(
        service_id: str, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
    ) -> JSONResponse:
        row, op = await call(request, session, caller, service_id, if_match)
        return accepted(request, row, op)

    endpoint.__doc__ = doc
    router.add_api_route(
        f"/v1/services/{{service_id}}:{name}",
        endpoint,
        methods=["POST"],
        name=f"services.{name}",
        status_code=202,
        response_model=ServiceOut,
        responses=problems(403, 404, 409, 412),
    )


_action(
    "stop",
    lambda r, s, c, sid, im: service.stop_cluster(s, c, sid, policy(r), if_match=im, of=SERVICE),
    "Remove the endpoint's route and stop every node; the spec is kept and no compute is billed.",
)
_action(
    "start",
    lambda r, s, c, sid, im: service.start_cluster(s, c, sid, policy(r), if_match=im, of=SERVICE),
    "Bring a stopped service back on the same endpoint.",
)
_action(
    "retry",
    lambda r, s, c, sid, im: service.retry_cluster(s, c, sid, policy(r), if_match=im, of=SERVICE),
    "Try a FAILED service again from provisioning.",
)
_action(
    "rollback",
    lambda r, s, c, sid, im: serving.rollback_service(s, c, sid, if_match=im),
    "Drop the version being rolled out; traffic stays on (or returns to) the serving version.",
)


@router.delete(
    "/v1/services/{service_id}",
    name="services.delete",
    status_code=202,
    response_model=ServiceOut,
    responses=problems(403, 404, 412),
)
async def delete_service(
    service_id: str, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
) -> JSONResponse:
    """Tear every version down and close the endpoint. The record and events stay as DELETED."""
    row, op = await service.delete_cluster(session, caller, service_id, if_match=if_match, of=SERVICE)
    return accepted(request, row, op)
