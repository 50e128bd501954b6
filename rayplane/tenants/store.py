"""SQL of the workers about tenants (sync)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rayplane.tenants.models import Tenant


def log_retention_windows(session: Session) -> dict[str, int]:
    """The tenants with a log retention of their own, and its days."""
    rows = session.execute(
        select(Tenant.id, Tenant.log_retention_days).where(Tenant.log_retention_days.is_not(None))
    ).all()
    return {tid: int(days) for tid, days in rows if days is not None}


def log_retention_days(session: Session, tenant_id: str) -> int | None:
    """The tenant's own log retention, or None (the deployment's default)."""
    days = session.execute(select(Tenant.log_retention_days).where(Tenant.id == tenant_id)).scalar_one_or_none()
    return None if days is None else int(days)
