"""Housekeeping run by the workers (sync sessions)."""

from __future__ import annotations

from sqlalchemy import delete, func
from sqlalchemy.orm import Session

from rayplane.common.models import IdempotencyRecord


def purge_expired_idempotency_records(session: Session, batch: int = 5000) -> int:
    """Delete up to ``batch`` expired records (index on ``expires_at``); returns how many.

    Bounded so one run never holds locks on a large backlog; the next run continues.
    """
    expired = (
        session.query(IdempotencyRecord.tenant_id, IdempotencyRecord.key)
        .filter(IdempotencyRecord.expires_at <= func.now())
        .limit(batch)
        .subquery()
    )
    result = session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == expired.c.tenant_id, IdempotencyRecord.key == expired.c.key
        )
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)
