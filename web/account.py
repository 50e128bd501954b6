"""Console account: members and roles, API keys (a new key shown once), cloud accounts.

Reads and writes call the same core as ``/v1/members``, ``/v1/api-keys`` and ``/v1/clouds``
(``rayplane.identity.service``, ``rayplane.clouds.service``; a cloud is shown as the API's
``CloudOut``, with its validation state and admin-consent link) with the member's principal,
so roles are the API's: admins manage members, members create keys of at most their role and
revoke their own, admins any. Writes are CSRF-checked first (:func:`web.pagekit.writer`),
audited under what they touched, and committed before the redirect.

A new key: Rayplane keeps only its hash, so the whole key is shown once. The create form's
answer redirects (so a reload does not create another); once the key is committed it waits
in the server-side session for that one next page, which takes it out of the session as it shows it. A reload
(or any other page) finds it gone; the list shows each key's prefix only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from api.deps import Session, after_commit, app_state, set_audit_target
from api.routers.clouds import cloud_out
from rayplane.clouds import service as clouds
from rayplane.common.errors import Conflict
from rayplane.common.principal import Role
from rayplane.identity import service
from rayplane.identity.schemas import ApiKeyCreate, ApiKeyOut, MemberCreate, MemberOut
from web.pagekit import FormErrors, Member, member, refuse, writer

router = APIRouter(include_in_schema=False)
PATH = "/console/account"
LIMIT = 100
NEW_KEY = "new_api_key"  # the session key a new key waits under for one page
ROLES = [r.value for r in Role]
KEY_FIELDS = {"name": "key_name", "role": "key_role", "body": "key_name"}
MEMBER_FIELDS = {"oid": "oid", "role": "member_role", "email": "email", "display_name": "display_name"}


async def _page(
    request: Request,
    db: AsyncSession,
    who: Member,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    principal = who.principal
    members = await service.list_members(db, principal, cursor=None, limit=LIMIT)
    keys = await service.list_api_keys(db, principal, cursor=None, limit=LIMIT, include_revoked=False)
    found = await clouds.list_clouds(db, principal, cursor=None, limit=LIMIT)
    new_key: dict[str, Any] | None = who.who.session.data.pop(NEW_KEY, None)
    return await who.render(
        request,
        "account.html",
        status_code=status_code,
        members=[MemberOut.model_validate(m) for m in members.items],
        keys=[ApiKeyOut.model_validate(k) for k in keys.items],
        clouds=[cloud_out(request, c) for c in found.items],
        new_key=new_key,
        me=principal.actor_id,
        roles=ROLES,
        key_roles=[r.value for r in Role if principal.role.at_least(r)],
        values=values or {"key_role": "member", "member_role": "member"},
        errors=errors or FormErrors(),
    )


@router.get(PATH, name="web.account")
async def account_page(request: Request, db: Session) -> Response:
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    return await _page(request, db, who)


@router.post(f"{PATH}/api-keys", name="web.api_key_create")
async def create_key(request: Request, db: Session) -> Response:
    who, fields = await writer(request, db)
    service.authorize_api_key_create(who.principal, Role.VIEWER)  # a viewer is refused before its input is read
    values = {"key_name": fields.get("name", ""), "key_role": fields.get("role", "")}
    try:
        body = ApiKeyCreate.model_validate({"name": values["key_name"].strip(), "role": values["key_role"]})
    except ValidationError as exc:
        await refuse(request, db)
        return await _page(
            request, db, who, values=values, errors=FormErrors.of_validation(exc, KEY_FIELDS), status_code=422
        )
    key, raw = await service.create_api_key(
        db, who.principal, app_state(request).hashing_key, name=body.name, role=body.role
    )
    set_audit_target(request, "api_key", key.id, role=key.role)
    who.who.session.data[NEW_KEY] = {"id": key.id, "name": key.name, "key": raw}
    response = RedirectResponse(f"{PATH}#new-key", status_code=303)
    store, session = who.who.store, who.who.session

    async def keep() -> None:  # only a key that was committed waits to be shown
        await store.save(session, response)

    after_commit(request, keep)  # runs before the response is sent, so its cookie goes too
    return response


@router.post(PATH + "/api-keys/{key_id}/revoke", name="web.api_key_revoke")
async def revoke_key(key_id: str, request: Request, db: Session) -> Response:
    who, _ = await writer(request, db)
    set_audit_target(request, "api_key", key_id)
    await service.revoke_api_key(db, who.principal, key_id, if_match=None)
    cache = app_state(request).auth_cache

    async def forget() -> None:  # as the API's revoke: the key stops working at once here too
        cache.forget_key(key_id)

    after_commit(request, forget)
    return RedirectResponse(f"{PATH}#api-keys", status_code=303)


@router.post(f"{PATH}/members", name="web.member_add")
async def add_member(request: Request, db: Session) -> Response:
    who, fields = await writer(request, db)
    service.authorize_member_add(who.principal, Role.VIEWER)  # admins only, before the input is read
    values = {k: fields.get(k, "") for k in ("oid", "member_role", "email", "display_name")}
    raw = {
        "oid": values["oid"].strip(),
        "role": values["member_role"],
        "email": values["email"].strip() or None,
        "display_name": values["display_name"].strip() or None,
    }
    errors = FormErrors()
    try:
        body = MemberCreate.model_validate(raw)
        added = await service.add_member(
            db, who.principal, oid=body.oid, role=body.role, email=body.email, display_name=body.display_name
        )
    except ValidationError as exc:
        errors = FormErrors.of_validation(exc, MEMBER_FIELDS)
    except Conflict as exc:  # already a member
        errors.add("oid", exc.detail)
    else:
        set_audit_target(request, "member", added.id)
        return RedirectResponse(f"{PATH}#members", status_code=303)
    await refuse(request, db)
    return await _page(request, db, who, values=values, errors=errors, status_code=422)


@router.post(PATH + "/members/{member_id}/role", name="web.member_role")
async def change_role(member_id: str, request: Request, db: Session) -> Response:
    who, fields = await writer(request, db)
    set_audit_target(request, "member", member_id)
    try:
        role = Role(fields.get("role", ""))
    except ValueError:
        await refuse(request, db)
        errors = FormErrors()
        errors.add("form", f"{fields.get('role', '')!r} is not a role; choose one of {', '.join(ROLES)}")
        return await _page(request, db, who, errors=errors, status_code=422)
    await service.update_member(db, who.principal, member_id, if_match=None, role=role)
    return RedirectResponse(f"{PATH}#members", status_code=303)


@router.post(PATH + "/members/{member_id}/remove", name="web.member_remove")
async def remove_member(member_id: str, request: Request, db: Session) -> Response:
    who, _ = await writer(request, db)
    set_audit_target(request, "member", member_id)
    await service.remove_member(db, who.principal, member_id, if_match=None)
    return RedirectResponse(f"{PATH}#members", status_code=303)
