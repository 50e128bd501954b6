"""Members and API keys: the rules about who may grant what.

Rules:
- nobody grants a role above their own; only owners grant, change or remove ``owner``;
- a tenant always keeps at least one owner (checked under a row lock on the owners);
- a revoked or expired key never authenticates again; revocation is kept for history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import Conflict, Forbidden, InvalidInput, found
from rayplane.common.etags import check_if_match
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.common.principal import Principal, Role
from rayplane.db.ids import new_id
from rayplane.identity import keys
from rayplane.identity.models import ApiKey, Member
from rayplane.identity.repository import ApiKeyRepository, MemberRepository


def _grantable(principal: Principal, role: Role, field: str) -> None:
    if not principal.role.at_least(role):
        raise Forbidden(f"{field}: cannot grant {role.value}, above the caller's own role {principal.role.value}")


# ---- API keys -------------------------------------------------------------------------


def authorize_api_key_create(principal: Principal, role: Role) -> None:
    """Members and above create keys, of at most their own role; checked before a replay too."""
    principal.require(Role.MEMBER)
    _grantable(principal, role, "body.role")


async def create_api_key(
    session: AsyncSession,
    principal: Principal,
    hashing_key: bytes,
    *,
    name: str,
    role: Role,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the whole key, which is never retrievable again."""
    authorize_api_key_create(principal, role)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput.on("body.expires_at", "must be in the future")
    prefix, raw = keys.generate()
    key = ApiKey(
        id=new_id("key"),
        tenant_id=principal.tenant_id,
        name=name,
        prefix=prefix,
        secret_hash=keys.digest(hashing_key, raw),
        role=role.value,
        created_by=principal.actor_id,
        expires_at=expires_at,
    )
    await ApiKeyRepository(session).add(key)
    return key, raw


async def view_api_key(session: AsyncSession, principal: Principal, key_id: str) -> dict[str, Any]:
    """The key's public fields (what GET returns), read as columns; ``version`` backs the ETag."""
    return found(await ApiKeyRepository(session).view(principal.tenant_id, key_id), "API key", key_id)


async def get_api_key(session: AsyncSession, principal: Principal, key_id: str) -> ApiKey:
    return found(await ApiKeyRepository(session).get(principal.tenant_id, key_id), "API key", key_id)


async def list_api_keys(
    session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int, include_revoked: bool
) -> Page[ApiKey]:
    rows = await ApiKeyRepository(session).list(
        principal.tenant_id, after=decode_cursor(cursor), limit=limit, include_revoked=include_revoked
    )
    return page_of(rows, limit)


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: str, *, if_match: str | None) -> ApiKey:
    """Revoke a key: admins revoke any; others only the keys they created. Idempotent."""
    key = await get_api_key(session, principal, key_id)
    if key.created_by != principal.actor_id:
        principal.require(Role.ADMIN)
    check_if_match(if_match, key.etag)
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return key


# ---- members --------------------------------------------------------------------------


async def list_members(session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int) -> Page[Member]:
    rows = await MemberRepository(session).list(principal.tenant_id, after=decode_cursor(cursor), limit=limit)
    return page_of(rows, limit)


async def get_member(session: AsyncSession, principal: Principal, member_id: str) -> Member:
    return found(await MemberRepository(session).get(principal.tenant_id, member_id), "member", member_id)


def authorize_member_add(principal: Principal, role: Role) -> None:
    """Admins and above add members, of at most their own role; checked before a replay too."""
    principal.require(Role.ADMIN)
    _grantable(principal, role, "body.role")


async def add_member(
    session: AsyncSession,
    principal: Principal,
    *,
    oid: str,
    role: Role,
    email: str | None = None,
    display_name: str | None = None,
) -> Member:
    authorize_member_add(principal, role)
    repo = MemberRepository(session)
    if await repo.get_by_oid(principal.tenant_id, oid) is not None:
        raise Conflict(f"a member with oid {oid} already exists in this tenant")
    member = Member(
        id=new_id("mem"),
        tenant_id=principal.tenant_id,
        oid=oid,
        role=role.value,
        email=email,
        display_name=display_name,
    )
    return await repo.add(member)


async def _ensure_owner_remains(repo: MemberRepository, member: Member) -> None:
    await repo.lock_tenant_owners(member.tenant_id)
    if await repo.count_owners(member.tenant_id) <= 1:
        raise Conflict("a tenant must keep at least one owner")


async def update_member(
    session: AsyncSession,
    principal: Principal,
    member_id: str,
    *,
    if_match: str | None,
    role: Role | None = None,
    display_name: str | None = None,
) -> Member:
    principal.require(Role.ADMIN)
    repo = MemberRepository(session)
    member = await get_member(session, principal, member_id)
    check_if_match(if_match, member.etag)
    if role is not None and role.value != member.role:
        _grantable(principal, role, "body.role")
        if member.role == Role.OWNER.value:
            principal.require(Role.OWNER)
            await _ensure_owner_remains(repo, member)
        member.role = role.value
    if display_name is not None:
        member.display_name = display_name
    await session.flush()
    return member


async def remove_member(session: AsyncSession, principal: Principal, member_id: str, *, if_match: str | None) -> Member:
    principal.require(Role.ADMIN)
    repo = MemberRepository(session)
    member = await get_member(session, principal, member_id)
    check_if_match(if_match, member.etag)
    if member.role == Role.OWNER.value:
        principal.require(Role.OWNER)
        await _ensure_owner_remains(repo, member)
    await repo.delete(member)
    return member
