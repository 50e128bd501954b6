"""Creating tenants, members and keys through the real services (no hand-made rows)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.principal import Principal, Role
from rayplane.identity.models import ApiKey, Member
from rayplane.identity.service import add_member, create_api_key
from rayplane.tenants.models import Tenant
from rayplane.tenants.service import create_tenant


@dataclass
class Actor:
    tenant: Tenant
    key: ApiKey
    raw_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.raw_key}"}


class Factory:
    def __init__(self, session: AsyncSession, hashing_key: bytes) -> None:
        self.session = session
        self.hashing_key = hashing_key

    async def tenant(self, *, tid: str | None = None) -> Tenant:
        name = "t-" + uuid.uuid4().hex[:12]
        tenant = await create_tenant(self.session, name=name, entra_tenant_id=tid)
        await self.session.commit()
        return tenant

    async def actor(self, role: Role = Role.OWNER, tenant: Tenant | None = None) -> Actor:
        tenant = tenant or await self.tenant()
        system = Principal(tenant_id=tenant.id, role=Role.OWNER, actor_type="system", actor_id="system:test")
        key, raw = await create_api_key(self.session, system, self.hashing_key, name=f"{role.value} key", role=role)
        await self.session.commit()
        return Actor(tenant, key, raw)

    async def member(self, tenant: Tenant, *, role: Role, oid: str | None = None) -> Member:
        system = Principal(tenant_id=tenant.id, role=Role.OWNER, actor_type="system", actor_id="system:test")
        member = await add_member(self.session, system, oid=oid or str(uuid.uuid4()), role=role)
        await self.session.commit()
        return member
