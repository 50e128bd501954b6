"""Budget use cases on the API side: read, set, remove, and the guard on cluster starts.

Spend month-to-date is the same figure the periodic check uses (``budget_check``): observed
node-hours of the UTC calendar month x catalog prices. The guard (``ensure_can_start``) is
called by cluster create, start and retry; it refuses (403) when the budget has a hard stop
and either the periodic check blocked the month, or the spend has already reached the budget
(so there is no window between the spend crossing it and the next check).

Raising the budget above the spend, or turning hard stop off, lifts a block at once; the
next check re-blocks if the spend reaches the new amount.

A hard stop is only set when it can be enforced: spend counts only sizes the catalog
prices, so ``put_budget`` refuses ``hard_stop: true`` (422 on ``body.hard_stop``, naming
each size and where it is used) while a cluster of the tenant that is not deleted (stopped
ones too: they can be started) uses a size without a price, or such a size ran this month.
While a hard stop is on, creating or resizing a cluster onto such a size is refused the same
way (``hard_stop_violations``, through ``rayplane.billing.guard``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing.models import Budget
from rayplane.billing.periods import month_start
from rayplane.billing.pricing import Cost, cost_of, usd_per_hour
from rayplane.billing.repository import BillingRepository
from rayplane.billing.schemas import BudgetAlertOut, BudgetIn, BudgetOut, SpendOut
from rayplane.clusters.spec import ClusterSpec
from rayplane.common.errors import FieldError, Forbidden, InvalidInput, NotFound
from rayplane.common.etags import check_if_match
from rayplane.common.principal import Principal, Role
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id


@dataclass(frozen=True)
class Spend:
    cost: Cost
    usd: float

    @property
    def figure(self) -> float | None:
        return self.cost.usd_or_none


async def month_spend(session: AsyncSession, tenant_id: str, now: datetime) -> Spend:
    cost = cost_of(await BillingRepository(session).spend(tenant_id, month_start(now), now))
    return Spend(cost, round(cost.usd, 2))


def blocked_reason(budget: Budget | None, spend: Spend, now: datetime) -> str | None:
    """Why starts are refused now, or None."""
    if budget is None or not budget.hard_stop:
        return None
    month = month_start(now).date()
    amount = float(budget.amount_usd)
    if budget.blocked_month != month and spend.usd < amount:
        return None
    spent = max(spend.usd, float(budget.blocked_spend_usd or 0)) if budget.blocked_month == month else spend.usd
    return (
        f"the tenant's monthly budget of ${amount:,.2f} is spent (${spent:,.2f} in {month.isoformat()[:7]}) and its "
        "hard stop is on: clusters cannot be created or started until next month, or until the budget is raised "
        "or its hard stop turned off (PUT /v1/budget)"
    )


def spend_out(budget: Budget | None, spend: Spend, now: datetime) -> SpendOut:
    amount = float(budget.amount_usd) if budget else None
    return SpendOut(
        month=month_start(now).date().isoformat()[:7],
        month_to_date_usd=spend.figure,
        unpriced_vm_sizes=sorted(spend.cost.unpriced_sizes),
        budget_usd=amount,
        percent_of_budget=round(spend.usd / amount * 100, 2) if amount else None,
        hard_stop=bool(budget and budget.hard_stop),
        blocked=blocked_reason(budget, spend, now) is not None,
    )


async def _view(session: AsyncSession, budget: Budget, now: datetime) -> BudgetOut:
    spend = await month_spend(session, budget.tenant_id, now)
    alerts = await BillingRepository(session).alerts(budget.tenant_id, month_start(now).date())
    return BudgetOut(
        amount_usd=float(budget.amount_usd),
        alert_thresholds=list(budget.alert_thresholds),
        hard_stop=budget.hard_stop,
        spend=spend_out(budget, spend, now),
        blocked_reason=blocked_reason(budget, spend, now),
        alerts=[BudgetAlertOut.model_validate(a) for a in alerts],
        created_at=budget.created_at,
        updated_at=budget.updated_at,
    )


NO_HARD_STOP_HINT = "set the budget without a hard stop (hard_stop: false; rayplane budget set AMOUNT --no-hard-stop)"


def _unpriced(spec: ClusterSpec) -> list[tuple[str, str]]:
    """``(field path, size)`` of the catalog sizes in ``spec`` that have no price."""
    return [(path, name) for path, name, size in spec.sizes() if size is not None and usd_per_hour(name) is None]


async def unenforceable_sizes(session: AsyncSession, tenant_id: str, now: datetime) -> dict[str, list[str]]:
    """Sizes a hard stop could not count: ``{size: [where, ...]}`` for each size without a
    catalog price that a live cluster's spec uses (where: ``cluster NAME``) or that ran this
    month (where: ``usage this month``). Empty when a hard stop can be enforced."""
    found: dict[str, list[str]] = {}
    for name, spec in await BillingRepository(session).live_specs(tenant_id):
        for _, size in _unpriced(spec):
            where = found.setdefault(size, [])
            if f"cluster {name}" not in where:
                where.append(f"cluster {name}")
    for size in sorted((await month_spend(session, tenant_id, now)).cost.unpriced_sizes):
        found.setdefault(size, []).append("usage this month")
    return dict(sorted(found.items()))


async def _require_enforceable(session: AsyncSession, tenant_id: str, now: datetime) -> None:
    sizes = await unenforceable_sizes(session, tenant_id, now)
    if not sizes:
        return
    listed = "; ".join(f"{size} ({', '.join(where)})" for size, where in sizes.items())
    message = (
        f"a hard stop cannot be enforced: Rayplane's VM catalog has no price for {listed}, and spend on a size "
        f"without a price does not count toward the budget; delete or resize those clusters, or {NO_HARD_STOP_HINT}"
    )
    raise InvalidInput(f"body.hard_stop: {message}", errors=[FieldError("body.hard_stop", message)])


async def hard_stop_violations(session: AsyncSession, tenant_id: str, spec: ClusterSpec) -> list[FieldError]:
    """While the tenant's budget has a hard stop: one error per size in ``spec`` (a create or
    resize body, paths under ``body.``) that has no catalog price; ``[]`` otherwise."""
    budget = await BillingRepository(session).budget(tenant_id)
    if budget is None or not budget.hard_stop:
        return []
    return [
        FieldError(
            f"body.{path}",
            f"{size} has no price in Rayplane's VM catalog, so the budget's hard stop could not count its spend; "
            f"pick a priced size, or {NO_HARD_STOP_HINT}",
        )
        for path, size in _unpriced(spec)
    ]


async def get_budget(session: AsyncSession, principal: Principal) -> tuple[Budget, BudgetOut]:
    budget = await BillingRepository(session).budget(principal.tenant_id)
    if budget is None:
        raise NotFound("this tenant has no budget; set one with PUT /v1/budget")
    return budget, await _view(session, budget, utcnow())


async def put_budget(
    session: AsyncSession, principal: Principal, body: BudgetIn, *, if_match: str | None
) -> tuple[Budget, BudgetOut, bool]:
    """Create or replace the budget; ``(budget, view, lifted)``: ``lifted`` when this lifted
    a hard-stop block (the amount now exceeds the spend, or hard stop is off)."""
    principal.require(Role.ADMIN)
    repo = BillingRepository(session)
    budget = await repo.budget(principal.tenant_id, for_update=True)
    if budget is not None:
        check_if_match(if_match, budget.etag)
    now = utcnow()
    if body.hard_stop:
        await _require_enforceable(session, principal.tenant_id, now)
    lifted = False
    if budget is None:
        budget = await repo.add(
            Budget(
                id=new_id("bgt"),
                tenant_id=principal.tenant_id,
                amount_usd=body.amount_usd,
                alert_thresholds=body.alert_thresholds,
                hard_stop=body.hard_stop,
            )
        )
    else:
        budget.amount_usd, budget.alert_thresholds, budget.hard_stop = (
            body.amount_usd,
            body.alert_thresholds,
            body.hard_stop,
        )
        if budget.blocked_month is not None:
            spend = await month_spend(session, principal.tenant_id, now)
            if (
                not body.hard_stop
                or float(body.amount_usd) > spend.usd
                or budget.blocked_month != month_start(now).date()
            ):
                budget.blocked_month, budget.blocked_at, budget.blocked_spend_usd = None, None, None
                lifted = True
        await session.flush()
    return budget, await _view(session, budget, now), lifted


async def delete_budget(session: AsyncSession, principal: Principal, *, if_match: str | None) -> Budget:
    principal.require(Role.ADMIN)
    repo = BillingRepository(session)
    budget = await repo.budget(principal.tenant_id, for_update=True)
    if budget is None:
        raise NotFound("this tenant has no budget")
    check_if_match(if_match, budget.etag)
    await repo.delete(budget)
    return budget


async def ensure_can_start(session: AsyncSession, tenant_id: str) -> None:
    """Raise ``Forbidden`` (saying why) when a hard-stop budget forbids starting compute."""
    budget = await BillingRepository(session).budget(tenant_id)
    if budget is None or not budget.hard_stop:
        return
    now = utcnow()
    reason = blocked_reason(budget, await month_spend(session, tenant_id, now), now)
    if reason is not None:
        raise Forbidden(reason)
