"""``/v1/clouds``: where clusters run."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.common import Cursor, Limit, ListPage, idempotent_create, problems, with_etag
from api.deps import Caller, IdempotencyKey, IfMatch, Session, app_state, set_audit_target
from rayplane.clouds import service
from rayplane.clouds.schemas import CloudCreate, CloudOut

router = APIRouter(prefix="/v1/clouds", tags=["clouds"])


@router.get("", name="clouds.list", response_model=ListPage[CloudOut], responses=problems(422))
async def list_clouds(
    request: Request, session: Session, caller: Caller, limit: int = Limit, cursor: str | None = Cursor
) -> ListPage[CloudOut]:
    """In dev mode the tenant's ``local`` cloud is created on first use."""
    settings = app_state(request).settings
    if settings.local_clouds_enabled and cursor is None:
        await service.ensure_local_cloud(session, caller.tenant_id, settings.local_capacity())
    page = await service.list_clouds(session, caller, cursor=cursor, limit=limit)
    return ListPage[CloudOut](items=[CloudOut.model_validate(c) for c in page.items], next_cursor=page.next_cursor)


@router.post("", name="clouds.create", status_code=201, response_model=CloudOut, responses=problems(403, 409, 415, 422))
async def create_cloud(
    body: CloudCreate, request: Request, session: Session, caller: Caller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    settings = app_state(request).settings

    async def create() -> tuple[int, object, dict[str, str]]:
        cloud = await service.create_cloud(
            session, caller, body, local_enabled=settings.local_clouds_enabled, local_capacity=settings.local_capacity()
        )
        set_audit_target(request, "cloud", cloud.id)
        return 201, CloudOut.model_validate(cloud), {"ETag": cloud.etag, "Location": f"/v1/clouds/{cloud.id}"}

    return await idempotent_create(request, session, caller, idempotency_key, body, create)


@router.get("/{cloud_id}", name="clouds.get", response_model=CloudOut, responses=problems(404))
async def get_cloud(cloud_id: str, session: Session, caller: Caller, response: Response) -> CloudOut:
    cloud = await service.get_cloud(session, caller, cloud_id)
    with_etag(response, cloud.etag)
    return CloudOut.model_validate(cloud)


@router.delete("/{cloud_id}", name="clouds.delete", status_code=204, responses=problems(403, 404, 409, 412))
async def delete_cloud(
    cloud_id: str, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
) -> Response:
    """Only a cloud without live clusters can be deleted."""
    set_audit_target(request, "cloud", cloud_id)
    await service.delete_cloud(session, caller, cloud_id, if_match=if_match)
    return Response(status_code=204)
