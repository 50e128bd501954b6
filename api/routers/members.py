"""``/v1/members``: people and their roles in the caller's tenant."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.common import Cursor, Limit, ListPage, idempotent_create, problems, with_etag
from api.deps import Caller, IdempotencyKey, IfMatch, Session, set_audit_target
from api.routing import Router
from rayplane.identity import service
from rayplane.identity.schemas import MemberCreate, MemberOut, MemberPatch

router = Router(prefix="/v1/members", tags=["members"])


@router.get("", name="members.list", response_model=ListPage[MemberOut], responses=problems(422))
async def list_members(
    session: Session, caller: Caller, limit: int = Limit, cursor: str | None = Cursor
) -> ListPage[MemberOut]:
    page = await service.list_members(session, caller, cursor=cursor, limit=limit)
    return ListPage[MemberOut](items=[MemberOut.model_validate(m) for m in page.items], next_cursor=page.next_cursor)


@router.post(
    "",
    name="members.create",
    status_code=201,
    response_model=MemberOut,
    responses=problems(403, 409, 415, 422),
)
async def add_member(
    body: MemberCreate, session: Session, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    async def create() -> tuple[int, object, dict[str, str]]:
        member = await service.add_member(
            session, caller, oid=body.oid, role=body.role, email=body.email, display_name=body.display_name
        )
        set_audit_target(request, "member", member.id)
        return 201, MemberOut.model_validate(member), {"ETag": member.etag, "Location": f"/v1/members/{member.id}"}

    return await idempotent_create(
        request,
        session,
        caller,
        idempotency_key,
        body,
        create,
        authorize=lambda: service.authorize_member_add(caller, body.role),
        target_type="member",
    )


@router.get("/{member_id}", name="members.get", response_model=MemberOut, responses=problems(404))
async def get_member(member_id: str, session: Session, caller: Caller, response: Response) -> MemberOut:
    member = await service.get_member(session, caller, member_id)
    with_etag(response, member.etag)
    return MemberOut.model_validate(member)


@router.patch(
    "/{member_id}", name="members.update", response_model=MemberOut, responses=problems(403, 404, 409, 412, 415, 422)
)
async def update_member(
    member_id: str,
    body: MemberPatch,
    session: Session,
    caller: Caller,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> MemberOut:
    set_audit_target(request, "member", member_id)
    member = await service.update_member(
        session, caller, member_id, if_match=if_match, role=body.role, display_name=body.display_name
    )
    with_etag(response, member.etag)
    return MemberOut.model_validate(member)


@router.delete("/{member_id}", name="members.delete", status_code=204, responses=problems(403, 404, 409, 412))
async def remove_member(
    member_id: str, session: Session, caller: Caller, request: Request, if_match: IfMatch = None
) -> Response:
    set_audit_target(request, "member", member_id)
    await service.remove_member(session, caller, member_id, if_match=if_match)
    return Response(status_code=204)
