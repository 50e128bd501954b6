"""``/v1/audit-log``: who did what (admins and owners)."""

from __future__ import annotations

from fastapi import Query

from api.common import Cursor, IsoDateTime, Limit, ListPage, problems
from api.deps import Caller, Session
from api.routing import Router
from rayplane.audit import service
from rayplane.audit.schemas import AuditEntryOut

router = Router(prefix="/v1/audit-log", tags=["audit"])


@router.get("", name="audit.list", response_model=ListPage[AuditEntryOut], responses=problems(403, 422))
async def list_audit(
    session: Session,
    caller: Caller,
    limit: int = Limit,
    cursor: str | None = Cursor,
    action: str | None = Query(None, description="Only this action, e.g. api_keys.create"),
    actor_id: str | None = Query(None, description="Only this actor (member or API key id)"),
    since: IsoDateTime | None = Query(None, description="Only entries at or after this time"),
) -> ListPage[AuditEntryOut]:
    """Newest first."""
    page = await service.list_entries(
        session, caller, cursor=cursor, limit=limit, action=action, actor_id=actor_id, since=since
    )
    return ListPage[AuditEntryOut](
        items=[AuditEntryOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )
