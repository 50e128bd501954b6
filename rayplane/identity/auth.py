"""Turning a bearer credential into a ``Principal``.

``authenticate`` accepts either a Rayplane API key (recognised by its shape, one indexed
read) or an Entra ID access token. Every failure is ``Unauthenticated`` with a reason meant
for the caller; the credential itself never appears in a message or a log line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import Forbidden, Unauthenticated
from rayplane.common.principal import Principal, Role
from rayplane.identity import keys
from rayplane.identity.cache import PrincipalCache
from rayplane.identity.entra import EntraValidator
from rayplane.identity.repository import ApiKeyRepository, MemberRepository
from rayplane.tenants.repository import TenantRepository
from rayplane.tenants.service import CLOSED

# Writing last_used_at on every call would turn each read into a write; a minute of
# resolution is what "when was this key last used" needs.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <API key or token>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthenticated("malformed Authorization header; expected 'Bearer <API key or token>'")
    return token


async def authenticate_api_key(
    session: AsyncSession, raw: str, hashing_key: bytes, cache: PrincipalCache | None = None
) -> Principal:
    prefix = keys.parse_prefix(raw)
    if prefix is None:
        raise Unauthenticated("malformed API key")
    digest = keys.digest(hashing_key, raw) if cache is not None and cache.enabled else ""
    if digest:
        cached = cache.get(digest) if cache is not None else None
        if cached is not None:
            return cached
    repo = ApiKeyRepository(session)
    key = await repo.credential(prefix)
    if key is None or not keys.matches(hashing_key, raw, key.secret_hash):
        raise Unauthenticated("unknown API key")
    now = datetime.now(UTC)
    if key.revoked_at is not None:
        raise Unauthenticated("this API key has been revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthenticated("this API key has expired")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        await repo.touch(key.id, now)
    principal = Principal(
        tenant_id=key.tenant_id,
        role=Role(key.role),
        actor_type="api_key",
        actor_id=key.id,
        api_key_id=key.id,
    )
    if digest and cache is not None:
        cache.put(digest, principal, key.expires_at)
    return principal


async def authenticate_entra(session: AsyncSession, token: str, validator: EntraValidator) -> Principal:
    tenants = TenantRepository(session)

    async def known(tid: str) -> bool:
        # The tid is not verified yet: a NUL in it would be a database error, not a stranger.
        return "\x00" not in tid and await tenants.get_by_entra_tid(tid) is not None

    claims = await validator.validate(token, known)
    return await member_principal(session, str(claims["tid"]), str(claims["oid"]))


async def member_principal(session: AsyncSession, tid: str, oid: str) -> Principal:
    """The principal of the member with Entra object id ``oid`` in the tenant bound to Entra
    tenant ``tid``, both already verified by the caller (a checked token, a signed-in session).

    ``Unauthenticated`` when ``tid`` is no Rayplane tenant, ``Forbidden`` when the tenant is
    closed or the user is not one of its members.
    """
    tenant = await TenantRepository(session).get_by_entra_tid(tid)
    if tenant is None:  # deleted between the two reads, or never a tenant
        raise Unauthenticated("the token's tenant (tid) is not a Rayplane tenant")
    if tenant.status == CLOSED:
        # Closing revokes the tenant's API keys; members are refused here, reads included.
        raise Forbidden("this Rayplane tenant was closed after its Azure Marketplace subscription ended")
    member = await MemberRepository(session).get_by_oid(tenant.id, oid)
    if member is None:
        raise Forbidden("you are signed in, but not a member of this Rayplane tenant; ask an admin to add you")
    return Principal(
        tenant_id=tenant.id,
        role=Role(member.role),
        actor_type="member",
        actor_id=member.id,
        member_id=member.id,
    )


async def authenticate(
    session: AsyncSession,
    authorization: str | None,
    *,
    hashing_key: bytes,
    validator: EntraValidator,
    cache: PrincipalCache | None = None,
) -> Principal:
    token = bearer_token(authorization)
    if token.startswith(keys.SCHEME + "_"):
        return await authenticate_api_key(session, token, hashing_key, cache)
    return await authenticate_entra(session, token, validator)
