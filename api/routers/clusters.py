"""``/v1/clusters``: the Ray cluster lifecycle. Changes answer 202 with an operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from api.common import Cursor, Limit, ListPage, idempotent_create, problems, with_etag
from api.deps import (
    Caller,
    IdempotencyKey,
    IfMatch,
    Session,
    after_commit,
    app_state,
    audit_event,
    set_audit_target,
)
from api.routing import Router
from rayplane.audit.service import record
from rayplane.billing.guard import TenantRules
from rayplane.clusters import service
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.schemas import (
    ClusterCreate,
    ClusterEventOut,
    ClusterOut,
    ClusterPatch,
    OperationOut,
    RayTokenOut,
)
from rayplane.common.principal import Principal

router = Router(tags=["clusters"])


def policy(request: Request) -> service.ClusterPolicy:
    s = app_state(request).settings
    return service.ClusterPolicy(
        local_clouds=s.local_clouds_enabled,
        local_capacity=s.local_capacity(),
        quota_vcpus=s.default_quota_vcpus,
        quota_clusters=s.default_quota_clusters,
        guard=TenantRules(),
        served=s.served_providers(),
        local_gcs_redis=s.gcs_redis_url is not None,
    )


def accept(request: Request, cluster: Cluster, op: Operation) -> tuple[dict[str, object], dict[str, str]]:
    """The 202 body and headers (ETag, Location, Operation-Location); nudges after commit."""
    nudger = app_state(request).nudger
    cluster_id = cluster.id

    async def nudge() -> None:
        await nudger.reconcile(cluster_id)

    after_commit(request, nudge)
    set_audit_target(request, "cluster", cluster.id, operation=op.id)
    body = ClusterOut.model_validate(cluster).model_dump(mode="json")
    headers = {
        "ETag": cluster.etag,
        "Location": f"/v1/clusters/{cluster.id}",
        "Operation-Location": f"/v1/operations/{op.id}",
    }
    return body, headers


def accepted(request: Request, cluster: Cluster, op: Operation) -> JSONResponse:
    body, headers = accept(request, cluster, op)
    return JSONResponse(body, status_code=202, headers=headers)


@router.post(
    "/v1/clusters",
    name="clusters.create",
    status_code=202,
    response_model=ClusterOut,
    responses=problems(403, 409, 415, 422),
)
async def create_cluster(
    body: ClusterCreate, request: Request, session: Session, caller: Caller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Accept a new cluster; follow ``Operation-Location`` (or the cluster's state) to RUNNING."""

    async def create() -> tuple[int, object, dict[str, str]]:
        cluster, op = await service.create_cluster(session, caller, body, policy(request))
        payload, headers = accept(request, cluster, op)
        return 202, payload, headers

    return await idempotent_create(
        request,
        session,
        caller,
        idempotency_key,
        body,
        create,
        authorize=lambda: service.authorize_create(caller),
        target_type="cluster",
    )


@router.get("/v1/clusters", name="clusters.list", response_model=ListPage[ClusterOut], responses=problems(422))
async def list_clusters(
    session: Session,
    caller: Caller,
    limit: int = Limit,
    cursor: str | None = Cursor,
    state: list[str] | None = Query(None, description="Only these states (repeatable)"),
    cloud: str | None = Query(None, description="Cloud id or name"),
    label: list[str] | None = Query(None, description="key=value (repeatable; all must match)"),
) -> ListPage[ClusterOut]:
    page = await service.list_clusters(
        session, caller, cursor=cursor, limit=limit, states=state, cloud=cloud, labels=label
    )
    return ListPage[ClusterOut](items=[ClusterOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/v1/clusters/{cluster_id}", name="clusters.get", response_model=ClusterOut, responses=problems(404))
async def get_cluster(cluster_id: str, session: Session, caller: Caller, response: Response) -> ClusterOut:
    cluster = await service.get_cluster(session, caller, cluster_id)
    with_etag(response, cluster.etag)
    return ClusterOut.model_validate(cluster)


@router.get(
    "/v1/clusters/{cluster_id}/events",
    name="clusters.events",
    response_model=ListPage[ClusterEventOut],
    responses=problems(404, 422),
)
async def list_events(
    cluster_id: str, session: Session, caller: Caller, limit: int = Limit, cursor: str | None = Cursor
) -> ListPage[ClusterEventOut]:
    """Oldest first; pass ``next_cursor`` to read on (also to poll for new events)."""
    page = await service.list_events(session, caller, cluster_id, cursor=cursor, limit=limit)
    return ListPage[ClusterEventOut](
        items=[ClusterEventOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )


@router.patch(
    "/v1/clusters/{cluster_id}",
    name="clusters.update",
    status_code=202,
    response_model=ClusterOut,
    responses=problems(403, 404, 409, 412, 415, 422),
)
async def update_cluster(
    cluster_id: str, body: ClusterPatch, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
) -> JSONResponse:
    """Resize, add or remove worker groups (send the whole list), change labels or the idle timeout."""
    cluster, op = await service.update_cluster(session, caller, cluster_id, body, policy(request), if_match=if_match)
    return accepted(request, cluster, op)


Action = Callable[..., Awaitable[tuple[Cluster, Operation]]]


def _action(name: str, fn: Action, doc: str) -> None:
    async def endpoint(
        cluster_id: str, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
    ) -> JSONResponse:
        principal: Principal = caller
        cluster, op = await fn(session, principal, cluster_id, policy(request), if_match=if_match)
        return accepted(request, cluster, op)

    endpoint.__doc__ = doc
    router.add_api_route(
        f"/v1/clusters/{{cluster_id}}:{name}",
        endpoint,
        methods=["POST"],
        name=f"clusters.{name}",
        status_code=202,
        response_model=ClusterOut,
        responses=problems(403, 404, 409, 412),
    )


_action("stop", service.stop_cluster, "Stop every node; the spec is kept and no compute is billed.")
_action("start", service.start_cluster, "Bring a stopped cluster back.")
_action("retry", service.retry_cluster, "Try a FAILED cluster again from provisioning.")


@router.delete(
    "/v1/clusters/{cluster_id}",
    name="clusters.delete",
    status_code=202,
    response_model=ClusterOut,
    responses=problems(403, 404, 412),
)
async def delete_cluster(
    cluster_id: str, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
) -> JSONResponse:
    """Tear the cluster down. Its record, events and jobs stay readable as DELETED."""
    cluster, op = await service.delete_cluster(session, caller, cluster_id, if_match=if_match)
    return accepted(request, cluster, op)


@router.get(
    "/v1/clusters/{cluster_id}/ray-token",
    name="clusters.ray_token",
    response_model=RayTokenOut,
    responses=problems(403, 404, 409, 503),
)
async def get_ray_token(cluster_id: str, request: Request, session: Session, caller: Caller) -> JSONResponse:
    """The cluster's Ray token, for its dashboard, Jobs API and Ray clients (members and above).

    Every call is audited, granted or refused; the answer is never cached."""
    set_audit_target(request, "cluster", cluster_id)
    request.state.audit_read = True  # a refusal is audited by the middleware, after the rollback
    cluster, token = await service.ray_token(session, caller, cluster_id, app_state(request).hashing_key)
    await _audit_read(request, caller, 200)
    body = RayTokenOut(token=token, dashboard_url=cluster.dashboard_url).model_dump(mode="json")
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _audit_read(request: Request, caller: Principal, status: int) -> None:
    """Reads are not audited by the unit of work (it may run on a read replica), so a read
    that hands out a secret writes its entry in a transaction of its own on the primary,
    before the answer is sent: no token leaves without its record."""
    async with app_state(request).sessions() as session, session.begin():
        await record(session, caller, audit_event(request, status))


@router.get(
    "/v1/operations/{operation_id}", name="operations.get", response_model=OperationOut, responses=problems(404)
)
async def get_operation(operation_id: str, session: Session, caller: Caller) -> OperationOut:
    return OperationOut.model_validate(await service.get_operation(session, caller, operation_id))
