"""SQL for budgets on the worker side (sync sessions), and the spend query both sides share.

Spend is node-hours per (tenant, VM size) over ``[lo, hi)``, from the usage intervals (what
was observed running, never what was asked for); prices are applied in Python from the
catalog (``rayplane.billing.pricing``), since they live in a data file and not in a table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from rayplane.billing.models import Budget, BudgetAlert
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id

SPEND = text(
    """
    SELECT u.tenant_id, u.vm_size,
           sum(u.node_count * extract(epoch FROM
               least(coalesce(u.ended_at, :hi), :hi) - greatest(u.started_at, :lo))) / 3600 AS node_hours
    FROM usage_intervals u
    WHERE u.tenant_id = ANY(:tenants)
      AND u.started_at < :hi
      AND (u.ended_at IS NULL OR u.ended_at > :lo)
    GROUP BY u.tenant_id, u.vm_size
    """
)


def spend_rows(
    session: Session, tenants: Sequence[str], lo: datetime, hi: datetime
) -> dict[str, list[tuple[str, float]]]:
    """``{tenant id: [(vm size, node-hours), ...]}`` over ``[lo, hi)``."""
    found: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for tenant_id, vm_size, node_hours in session.execute(SPEND, {"tenants": list(tenants), "lo": lo, "hi": hi}):
        found[str(tenant_id)].append((str(vm_size), float(node_hours)))
    return found


def budgets(session: Session) -> list[Budget]:
    """Every budget (one per tenant at most)."""
    return list(session.execute(select(Budget).order_by(Budget.tenant_id)).scalars())


def lock_budget(session: Session, tenant_id: str) -> Budget | None:
    stmt = (
        select(Budget).where(Budget.tenant_id == tenant_id).with_for_update().execution_options(populate_existing=True)
    )
    return session.execute(stmt).scalar_one_or_none()


def add_alert_once(
    session: Session, *, tenant_id: str, month: date, threshold: int, spend: Decimal, amount: Decimal
) -> str | None:
    """Record that ``threshold`` was crossed this month; the new alert's id, or None when it
    was already raised (the unique key settles two checkers racing)."""
    alert_id = new_id("bal")
    stmt = (
        insert(BudgetAlert)
        .values(
            id=alert_id,
            tenant_id=tenant_id,
            month=month,
            threshold=threshold,
            spend_usd=spend,
            amount_usd=amount,
            at=utcnow(),
        )
        .on_conflict_do_nothing(constraint="uq_budget_alerts_once")
        .returning(BudgetAlert.id)
    )
    return session.execute(stmt).scalar_one_or_none()
