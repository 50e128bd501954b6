"""All SQL touching ``audit_entries``: insert and read, never update."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.audit.models import AuditEntry


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, entry: AuditEntry) -> None:
        self.session.add(entry)
        await self.session.flush()

    async def list(
        self,
        tenant_id: str,
        *,
        after: str | None,
        limit: int,
        action: str | None = None,
        actor_id: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        stmt = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
        if action:
            stmt = stmt.where(AuditEntry.action == action)
        if actor_id:
            stmt = stmt.where(AuditEntry.actor_id == actor_id)
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        # Newest first reads better in a log; ids are time-ordered, so the cursor is "before".
        if after is not None:
            stmt = stmt.where(AuditEntry.id < after)
        stmt = stmt.order_by(AuditEntry.id.desc()).limit(limit + 1)
        return list((await self.session.execute(stmt)).scalars())
