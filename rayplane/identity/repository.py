"""All SQL touching ``members`` and ``api_keys``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.identity.models import ApiKey, Member


class MemberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, member_id: str) -> Member | None:
        stmt = select(Member).where(Member.tenant_id == tenant_id, Member.id == member_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_oid(self, tenant_id: str, oid: str) -> Member | None:
        stmt = select(Member).where(Member.tenant_id == tenant_id, Member.oid == oid)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, tenant_id: str, *, after: str | None, limit: int) -> list[Member]:
        stmt = select(Member).where(Member.tenant_id == tenant_id)
        if after is not None:
            stmt = stmt.where(Member.id > after)
        stmt = stmt.order_by(Member.id).limit(limit + 1)
        return list((await self.session.execute(stmt)).scalars())

    async def count_owners(self, tenant_id: str) -> int:
        stmt = select(func.count()).select_from(Member).where(Member.tenant_id == tenant_id, Member.role == "owner")
        return int((await self.session.execute(stmt)).scalar_one())

    async def lock_tenant_owners(self, tenant_id: str) -> None:
        """Serialise owner changes so two demotions cannot both see "another owner is left"."""
        stmt = select(Member.id).where(Member.tenant_id == tenant_id, Member.role == "owner").with_for_update()
        await self.session.execute(stmt)

    async def add(self, member: Member) -> Member:
        self.session.add(member)
        await self.session.flush()
        return member

    async def delete(self, member: Member) -> None:
        await self.session.delete(member)
        await self.session.flush()


# Authentication reads only these columns, with a statement built once: ORM loading of a
# whole ApiKey was the largest CPU item of an authenticated read (benchmarks/RESULTS.md).
# Table columns, not ORM attributes: a statement without ORM entities skips the ORM's
# compile and result-setup steps in ``Session.execute``.
_KEYS = ApiKey.__table__.c
_CREDENTIAL = select(
    _KEYS.id,
    _KEYS.tenant_id,
    _KEYS.secret_hash,
    _KEYS.role,
    _KEYS.revoked_at,
    _KEYS.expires_at,
    _KEYS.last_used_at,
).where(_KEYS.prefix == bindparam("prefix"))


# The columns of the API key resource, read without building an ORM instance (hot GET path).
_VIEW = select(
    _KEYS.id,
    _KEYS.name,
    _KEYS.prefix,
    _KEYS.role,
    _KEYS.created_by,
    _KEYS.created_at,
    _KEYS.expires_at,
    _KEYS.revoked_at,
    _KEYS.last_used_at,
    _KEYS.version,
).where(_KEYS.tenant_id == bindparam("tenant_id"), _KEYS.id == bindparam("key_id"))


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, key_id: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def credential(
        self, prefix: str
    ) -> Row[str, str, str, str, datetime | None, datetime | None, datetime | None] | None:
        """The columns authentication needs, for the key with this public prefix."""
        return (await self.session.execute(_CREDENTIAL, {"prefix": prefix})).first()

    async def view(self, tenant_id: str, key_id: str) -> dict[str, Any] | None:
        """The key's public fields as a plain mapping (no secret hash), or None."""
        row = (await self.session.execute(_VIEW, {"tenant_id": tenant_id, "key_id": key_id})).mappings().first()
        return dict(row) if row is not None else None

    async def get_by_prefix(self, prefix: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.prefix == prefix)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, tenant_id: str, *, after: str | None, limit: int, include_revoked: bool) -> list[ApiKey]:
        stmt = select(ApiKey).where(ApiKey.tenant_id == tenant_id)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        if after is not None:
            stmt = stmt.where(ApiKey.id > after)
        stmt = stmt.order_by(ApiKey.id).limit(limit + 1)
        return list((await self.session.execute(stmt)).scalars())

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def touch(self, key_id: str, at: datetime) -> None:
        """Record use without bumping ``version``: last-use is bookkeeping, not an edit."""
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(last_used_at=at)
            .execution_options(synchronize_session=False)
        )
