"""The periodic budget check (a beat task): threshold alerts once a month, and the hard stop.

For every tenant with a budget, spend month-to-date (UTC calendar month) is node-hours of
observed usage x catalog prices (``rayplane.billing.pricing``: sizes without a price add
nothing, and are named in the API's answers). Then, in one transaction per tenant:

- **Alerts**: each threshold (percent of the budget) the spend has reached is raised once per
  month: a ``budget_alerts`` row (the unique key makes "once" hold even for two checkers at
  the same time), an audit entry by ``system:budget``, a warning log line, and the
  ``rayplane_budget_alerts_month`` gauge.
- **Hard stop** (when the budget has it and spend >= amount): the budget is marked blocked for
  the month, and every cluster that should be running is stopped the way a user's stop does
  it (``rayplane.clusters.bulk.stop_all``, as a Marketplace Suspend does): desired state
  ``stopped``, a ``stop`` operation, start/retry operations canceled, a ``budget_stop``
  cluster event and an audit entry each. While blocked, the API refuses
  creates and starts (403, ``rayplane.billing.budgets.ensure_can_start``), and each check
  stops anything that should be running again. Raising the budget above the spend, turning
  hard stop off, or the next month lifts it.

The caller nudges the reconciler for the stopped clusters after the commit; the clusters
are also due at once (``next_reconcile_at = now``), so the sweep finds them if a nudge is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from rayplane.audit.models import AuditEntry
from rayplane.billing import budget_store as store
from rayplane.billing.models import Budget
from rayplane.billing.periods import month_start
from rayplane.billing.pricing import Cost, cost_of
from rayplane.clusters import bulk
from rayplane.clusters.values import EventKind
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.logs import get_logger

log = get_logger("rayplane.billing.budgets")

ACTOR = "system:budget"


@dataclass
class CheckResult:
    alerts: list[tuple[str, int]] = field(default_factory=list)  # (tenant id, threshold)
    blocked: list[str] = field(default_factory=list)  # tenants newly blocked
    stopped: list[str] = field(default_factory=list)  # cluster ids to nudge after commit


def usd(value: float) -> Decimal:
    return Decimal(str(round(value, 2)))


def check_budgets(sessions: sessionmaker[Session], now: datetime | None = None) -> CheckResult:
    """Run the check for every budget at ``now``; what it raised and stopped (committed)."""
    now = now or utcnow()
    month = month_start(now)
    with sessions() as session:
        snapshot = store.budgets(session)
        spend = store.spend_rows(session, [b.tenant_id for b in snapshot], month, now)
    result = CheckResult()
    for seen in snapshot:
        tenant_id = seen.tenant_id
        cost = cost_of(spend.get(tenant_id, []))
        if not _may_act(seen, cost, month.date()):
            continue  # nothing to raise or stop: no transaction for it
        with sessions() as session, session.begin():
            budget = store.lock_budget(session, tenant_id)
            if budget is not None:
                _alerts(session, budget, cost, now, result)
                _hard_stop(session, budget, cost, now, result)
    return result


def _may_act(budget: Budget, cost: Cost, month: date) -> bool:
    """Whether a threshold is reached or a hard stop applies, from an unlocked read (the locked
    re-read decides; this only spares a transaction per quiet tenant)."""
    spent = usd(cost.usd)
    reached = any(spent * 100 >= budget.amount_usd * t for t in budget.alert_thresholds)
    return reached or (budget.hard_stop and (spent >= budget.amount_usd or budget.blocked_month == month))


def _audit(session: Session, tenant_id: str, action: str, target: tuple[str, str], detail: dict[str, object]) -> None:
    session.add(
        AuditEntry(
            id=new_id("aud"),
            tenant_id=tenant_id,
            at=utcnow(),
            actor_type="system",
            actor_id=ACTOR,
            action=action,
            target_type=target[0],
            target_id=target[1],
            result="success",
            status_code=200,
            detail=detail,
        )
    )


def _alerts(session: Session, budget: Budget, cost: Cost, now: datetime, result: CheckResult) -> None:
    spent = usd(cost.usd)
    month = month_start(now).date()
    for threshold in sorted(budget.alert_thresholds):
        if spent * 100 < budget.amount_usd * threshold:
            break
        alert_id = store.add_alert_once(
            session, tenant_id=budget.tenant_id, month=month, threshold=threshold, spend=spent, amount=budget.amount_usd
        )
        if alert_id is None:
            continue  # raised earlier this month
        detail: dict[str, object] = {
            "threshold_percent": threshold,
            "spend_usd": float(spent),
            "amount_usd": float(budget.amount_usd),
            "month": month.isoformat()[:7],
            "alert_id": alert_id,
        }
        _audit(session, budget.tenant_id, "budget.alert", ("budget", budget.id), detail)
        log.warning("budget_threshold_reached", tenant_id=budget.tenant_id, **detail)
        result.alerts.append((budget.tenant_id, threshold))


def _hard_stop(session: Session, budget: Budget, cost: Cost, now: datetime, result: CheckResult) -> None:
    month = month_start(now).date()
    spent = usd(cost.usd)
    if not budget.hard_stop:
        return
    if budget.blocked_month != month:
        if spent < budget.amount_usd:
            return
        budget.blocked_month, budget.blocked_at, budget.blocked_spend_usd = month, now, spent
        detail: dict[str, object] = {"spend_usd": float(spent), "amount_usd": float(budget.amount_usd)}
        _audit(session, budget.tenant_id, "budget.hard_stop", ("budget", budget.id), detail)
        log.warning("budget_hard_stop", tenant_id=budget.tenant_id, **detail)
        result.blocked.append(budget.tenant_id)
    why = (
        f"monthly budget of ${budget.amount_usd:,.2f} reached (${budget.blocked_spend_usd or spent:,.2f} spent "
        f"in {month.isoformat()[:7]}); stopped by the budget's hard stop"
    )
    for cluster_id in bulk.stop_all(session, budget.tenant_id, why, event=EventKind.BUDGET_STOP):
        _audit(session, budget.tenant_id, "clusters.stop", ("cluster", cluster_id), {"reason": why})
        log.warning("budget_stopped_cluster", tenant_id=budget.tenant_id, cluster_id=cluster_id)
        result.stopped.append(cluster_id)
    session.flush()
