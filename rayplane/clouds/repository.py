"""All SQL touching ``clouds``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clouds.models import Cloud


class CloudRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, cloud_id: str) -> Cloud | None:
        stmt = select(Cloud).where(Cloud.tenant_id == tenant_id, Cloud.id == cloud_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_by_name(self, tenant_id: str, name: str) -> Cloud | None:
        stmt = select(Cloud).where(Cloud.tenant_id == tenant_id, Cloud.name == name)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_default(self, tenant_id: str) -> Cloud | None:
        stmt = select(Cloud).where(Cloud.tenant_id == tenant_id, Cloud.is_default.is_(True))
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list(self, tenant_id: str, *, after: str | None, limit: int) -> list[Cloud]:
        stmt = select(Cloud).where(Cloud.tenant_id == tenant_id)
        if after is not None:
            stmt = stmt.where(Cloud.id > after)
        return list((await self.session.execute(stmt.order_by(Cloud.id).limit(limit + 1))).scalars())

    async def clear_default(self, tenant_id: str) -> None:
        for cloud in (
            await self.session.execute(select(Cloud).where(Cloud.tenant_id == tenant_id, Cloud.is_default.is_(True)))
        ).scalars():
            cloud.is_default = False
        await self.session.flush()

    async def add(self, cloud: Cloud) -> Cloud:
        self.session.add(cloud)
        await self.session.flush()
        return cloud

    async def delete(self, cloud: Cloud) -> None:
        await self.session.delete(cloud)
        await self.session.flush()
