"""All SQL touching ``tenants``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.tenants.models import Tenant


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def get_by_name(self, name: str) -> Tenant | None:
        return (await self.session.execute(select(Tenant).where(Tenant.name == name))).scalar_one_or_none()

    async def get_by_entra_tid(self, tid: str) -> Tenant | None:
        stmt = select(Tenant).where(Tenant.entra_tenant_id == tid)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def status_for_share(self, tenant_id: str) -> str | None:
        """The tenant's status, read with ``FOR SHARE``: a Marketplace Suspend or Unsubscribe
        (which locks the row ``FOR UPDATE``) waits for this transaction, and vice versa."""
        stmt = select(Tenant.status).where(Tenant.id == tenant_id).with_for_update(read=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, tenant: Tenant) -> Tenant:
        self.session.add(tenant)
        await self.session.flush()
        return tenant
