"""``/v1/api-keys``: credentials for the CLI and automation."""

from __future__ import annotations

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse

from api.common import Cursor, Limit, ListPage, idempotent_create, problems, with_etag
from api.deps import Caller, IdempotencyKey, IfMatch, Session, after_commit, app_state, set_audit_target
from api.routing import Router
from rayplane.identity import service
from rayplane.identity.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut

router = Router(prefix="/v1/api-keys", tags=["api-keys"])


@router.get("", name="api_keys.list", response_model=ListPage[ApiKeyOut], responses=problems(422))
async def list_keys(
    session: Session,
    caller: Caller,
    limit: int = Limit,
    cursor: str | None = Cursor,
    include_revoked: bool = Query(False, description="Also list revoked keys"),
) -> ListPage[ApiKeyOut]:
    page = await service.list_api_keys(session, caller, cursor=cursor, limit=limit, include_revoked=include_revoked)
    return ListPage[ApiKeyOut](items=[ApiKeyOut.model_validate(k) for k in page.items], next_cursor=page.next_cursor)


@router.post(
    "",
    name="api_keys.create",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problems(403, 415, 422),
)
async def create_key(
    body: ApiKeyCreate, session: Session, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Create a key; the whole key is in this answer only. A replay of the same
    ``Idempotency-Key`` (by the same credential) has ``key: null`` and ``secret_omitted: true``:
    Rayplane never keeps the key, so a client that lost it revokes this key and creates another."""

    async def create() -> tuple[int, object, dict[str, str]]:
        key, raw = await service.create_api_key(
            session, caller, app_state(request).hashing_key, name=body.name, role=body.role, expires_at=body.expires_at
        )
        set_audit_target(request, "api_key", key.id, role=key.role)
        out = ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "key": raw})
        return 201, out, {"ETag": key.etag, "Location": f"/v1/api-keys/{key.id}"}

    return await idempotent_create(
        request,
        session,
        caller,
        idempotency_key,
        body,
        create,
        authorize=lambda: service.authorize_api_key_create(caller, body.role),
        target_type="api_key",
        secrets=("key",),
    )


@router.get("/{key_id}", name="api_keys.get", response_model=ApiKeyOut, responses=problems(404))
async def get_key(key_id: str, session: Session, caller: Caller) -> Response:
    view = await service.view_api_key(session, caller, key_id)
    # Serialised once here; returning the model would have FastAPI validate it a second time.
    body = ApiKeyOut.model_validate(view).model_dump_json()
    return Response(body, media_type="application/json", headers={"ETag": f'"{view["version"]}"'})


@router.delete("/{key_id}", name="api_keys.revoke", response_model=ApiKeyOut, responses=problems(403, 404, 412))
async def revoke_key(
    key_id: str, session: Session, caller: Caller, request: Request, response: Response, if_match: IfMatch = None
) -> ApiKeyOut:
    """Revoke a key. It stays listed (with ``revoked_at``) for history; repeating is harmless."""
    set_audit_target(request, "api_key", key_id)
    key = await service.revoke_api_key(session, caller, key_id, if_match=if_match)
    cache = app_state(request).auth_cache

    async def forget() -> None:
        cache.forget_key(key_id)

    after_commit(request, forget)
    with_etag(response, key.etag)
    return ApiKeyOut.model_validate(key)
