"""``/v1/clouds``: where clusters run."""

from __future__ import annotations

import functools

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.common import Cursor, Limit, ListPage, idempotent_create, problems, with_etag
from api.deps import Caller, IdempotencyKey, IfMatch, Session, after_commit, app_state, set_audit_target
from api.routing import Router
from rayplane.clouds import service
from rayplane.clouds.models import Cloud
from rayplane.clouds.schemas import CloudCreate, CloudOut
from rayplane.clusters import service as cluster_service
from rayplane.common.principal import Role

router = Router(prefix="/v1/clouds", tags=["clouds"])


def cloud_out(request: Request, cloud: Cloud) -> CloudOut:
    """A cloud account as the API shows it (the console's account page shows the same)."""
    settings = app_state(request).settings
    out = CloudOut.model_validate(cloud)
    redirect = f"{settings.public_url.rstrip('/')}/v1/clouds/consent" if settings.public_url else None
    out.admin_consent_url = service.admin_consent_url(
        cloud, authority=settings.entra_authority, client_id=settings.azure_client_id, redirect_uri=redirect
    )
    reason = service.unavailable_reason(cloud, settings.served_providers())
    if reason is not None:
        out.status, out.status_reason = service.UNAVAILABLE, reason
    return out


def _validate_after_commit(request: Request, cloud: Cloud) -> None:
    if cloud.provider == "azure":
        nudger, cloud_id = app_state(request).nudger, cloud.id

        async def nudge() -> None:
            await nudger.validate_cloud(cloud_id)

        after_commit(request, nudge)


@router.get("", name="clouds.list", response_model=ListPage[CloudOut], responses=problems(422))
async def list_clouds(
    request: Request, session: Session, caller: Caller, limit: int = Limit, cursor: str | None = Cursor
) -> ListPage[CloudOut]:
    """In dev mode the tenant's ``local`` cloud is created on first use."""
    settings = app_state(request).settings
    if settings.local_clouds_enabled and cursor is None:
        await service.ensure_local_cloud(session, caller.tenant_id, settings.local_capacity())
    page = await service.list_clouds(session, caller, cursor=cursor, limit=limit)
    return ListPage[CloudOut](items=[cloud_out(request, c) for c in page.items], next_cursor=page.next_cursor)


@router.post("", name="clouds.create", status_code=201, response_model=CloudOut, responses=problems(403, 409, 415, 422))
async def create_cloud(
    body: CloudCreate, request: Request, session: Session, caller: Caller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    settings = app_state(request).settings

    async def create() -> tuple[int, object, dict[str, str]]:
        cloud = await service.create_cloud(
            session,
            caller,
            body,
            local_enabled=settings.local_clouds_enabled,
            local_capacity=settings.local_capacity(),
            azure_enabled=settings.azure_client_id is not None,
        )
        set_audit_target(request, "cloud", cloud.id)
        _validate_after_commit(request, cloud)
        return 201, cloud_out(request, cloud), {"ETag": cloud.etag, "Location": f"/v1/clouds/{cloud.id}"}

    return await idempotent_create(
        request,
        session,
        caller,
        idempotency_key,
        body,
        create,
        authorize=lambda: service.authorize_create(caller),
        target_type="cloud",
    )


@router.get("/{cloud_id}", name="clouds.get", response_model=CloudOut, responses=problems(404))
async def get_cloud(cloud_id: str, request: Request, session: Session, caller: Caller, response: Response) -> CloudOut:
    """An Azure cloud is VALIDATING until a worker checked access, then READY or ERROR (with
    Azure's code and what to do in ``status_reason``)."""
    cloud = await service.get_cloud(session, caller, cloud_id)
    with_etag(response, cloud.etag)
    return cloud_out(request, cloud)


@router.post(
    "/{cloud_id}:validate",
    name="clouds.validate",
    status_code=202,
    response_model=CloudOut,
    responses=problems(403, 404),
)
async def validate_cloud(cloud_id: str, request: Request, session: Session, caller: Caller) -> CloudOut:
    """Check an Azure cloud's access again (after consent was granted or a role assigned)."""
    caller.require(Role.ADMIN)
    set_audit_target(request, "cloud", cloud_id)
    cloud = await service.revalidate(session, caller, cloud_id)
    _validate_after_commit(request, cloud)
    return cloud_out(request, cloud)


@router.delete("/{cloud_id}", name="clouds.delete", status_code=204, responses=problems(403, 404, 409, 412))
async def delete_cloud(
    cloud_id: str, request: Request, session: Session, caller: Caller, if_match: IfMatch = None
) -> Response:
    """Only a cloud without live clusters can be deleted."""
    set_audit_target(request, "cloud", cloud_id)
    in_use = functools.partial(cluster_service.live_count_on_cloud, session)
    await service.delete_cloud(session, caller, cloud_id, if_match=if_match, clusters_on=in_use)
    return Response(status_code=204)
