"""Recording and reading the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.audit.models import AuditEntry
from rayplane.audit.repository import AuditRepository
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.common.principal import Principal, Role
from rayplane.db.ids import new_id


@dataclass(frozen=True)
class AuditEvent:
    """What an adapter knows about a mutating request once it has an outcome."""

    action: str
    status_code: int
    target_type: str | None = None
    target_id: str | None = None
    request_id: str | None = None
    client_address: str | None = None
    detail: dict[str, Any] | None = None

    @property
    def result(self) -> str:
        return "success" if self.status_code < 400 else "failure"


async def record(session: AsyncSession, principal: Principal, event: AuditEvent) -> None:
    """Insert one entry in the caller's transaction (atomic with the change it describes)."""
    await AuditRepository(session).add(
        AuditEntry(
            id=new_id("aud"),
            tenant_id=principal.tenant_id,
            actor_type=principal.actor_type,
            actor_id=principal.actor_id,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            result=event.result,
            status_code=event.status_code,
            request_id=event.request_id,
            client_address=event.client_address,
            detail=event.detail,
        )
    )


async def list_entries(
    session: AsyncSession,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    action: str | None = None,
    actor_id: str | None = None,
    since: datetime | None = None,
) -> Page[AuditEntry]:
    principal.require(Role.ADMIN)
    rows = await AuditRepository(session).list(
        principal.tenant_id, after=decode_cursor(cursor), limit=limit, action=action, actor_id=actor_id, since=since
    )
    return page_of(rows, limit)
