"""Read-side use cases for the portal: usage reports, the overview, metering records.

Windows: ``from`` defaults to the start of the current UTC month and ``to`` to now; a time
without an offset is UTC; ``to`` must be after ``from``, and a report spans at most 366 days
(both checked with the field named). Usage after now is not counted, even if ``to`` is later.

A usage report also gives Rayplane's fee per metering dimension for the window's vCPU- and
GPU-hours (``rayplane.billing.fees``): at the tenant's current plan's prices (a plan changed
within the window is not split), or every plan's for a tenant without one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing import budgets
from rayplane.billing.dimensions import METERS
from rayplane.billing.fees import fee_plans, usage_fees
from rayplane.billing.metrics import BillingGauges, gauge_params
from rayplane.billing.models import MeteringRecord
from rayplane.billing.periods import month_start
from rayplane.billing.pricing import Cost
from rayplane.billing.repository import BillingRepository, UsageSlice
from rayplane.billing.schemas import (
    BudgetAlertOut,
    GroupBy,
    Overview,
    OverviewEvent,
    UsageReport,
    UsageRow,
    UsageTotals,
)
from rayplane.clusters.schemas import ClusterEventOut
from rayplane.common.errors import InvalidInput
from rayplane.common.paging import Page, decode_cursor, encode_cursor
from rayplane.common.principal import Principal, Role
from rayplane.db.base import utcnow
from rayplane.settings import Settings

MAX_SPAN = timedelta(days=366)
RECENT_EVENTS = 10
UNITS = {"vcpu_hours": ("vCPU hours", "vCPU hour"), "gpu_hours": ("GPU hours", "GPU hour")}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window(frm: datetime | None, to: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """``(from, to)`` of a query, validated; see the module docstring."""
    lo = _utc(frm) if frm is not None else month_start(now)
    hi = _utc(to) if to is not None else now
    if hi <= lo:
        raise InvalidInput.on("query.to", f"must be after from ({lo.isoformat()})")
    if hi - lo > MAX_SPAN:
        raise InvalidInput.on("query.from", "a report spans at most 366 days")
    return lo, hi


class _Group:
    def __init__(self, key: str, label: str | None) -> None:
        self.key, self.label = key, label
        self.vcpu_hours = self.gpu_hours = self.node_hours = 0.0
        self.cost = Cost()

    def add(self, s: UsageSlice) -> None:
        self.vcpu_hours += s.vcpu_hours
        self.gpu_hours += s.gpu_hours
        self.node_hours += s.node_hours
        self.cost.add(s.vm_size, s.node_hours)

    def row(self) -> UsageRow:
        return UsageRow(
            key=self.key,
            label=self.label,
            vcpu_hours=round(self.vcpu_hours, 6),
            gpu_hours=round(self.gpu_hours, 6),
            node_hours=round(self.node_hours, 6),
            cost_usd=self.cost.usd_or_none,
            unpriced_vm_sizes=sorted(self.cost.unpriced_sizes),
        )


async def usage_report(
    session: AsyncSession, principal: Principal, *, frm: datetime | None, to: datetime | None, group_by: GroupBy
) -> UsageReport:
    """Observed usage of the caller's tenant over the window, grouped, with catalog cost."""
    principal.require(Role.VIEWER)
    now = utcnow()
    lo, hi = window(frm, to, now)
    end = min(hi, now)
    slices = (
        await BillingRepository(session).usage(principal.tenant_id, lo, end, "day" if group_by == "day" else "cluster")
        if end > lo
        else []
    )
    groups: dict[str, _Group] = {}
    total = _Group("total", None)
    for s in slices:
        groups.setdefault(s.key, _Group(s.key, s.label)).add(s)
        total.add(s)
    sums = {"vcpu_hours": total.vcpu_hours, "gpu_hours": total.gpu_hours}
    plans = await fee_plans(session, principal.tenant_id)
    fees = usage_fees(plans, sums)
    own = {f.dimension: f for f in fees if f.plan_id == plans.current}
    if group_by == "dimension":
        items = [
            UsageRow(
                key=d,
                label=UNITS[d][0],
                quantity=round(sums[d], 6),
                unit=UNITS[d][1],
                usd_per_unit=own[d].usd_per_unit if d in own else None,
                fee_usd=own[d].usd if d in own else None,
            )
            for d in METERS
            if d in UNITS
        ]
    else:
        items = [groups[k].row() for k in sorted(groups)]
    totals = UsageTotals(
        vcpu_hours=round(total.vcpu_hours, 6),
        gpu_hours=round(total.gpu_hours, 6),
        node_hours=round(total.node_hours, 6),
        cost_usd=total.cost.usd_or_none,
        unpriced_node_hours=round(total.cost.unpriced_node_hours, 6),
        unpriced_vm_sizes=sorted(total.cost.unpriced_sizes),
    )
    return UsageReport(
        from_=lo,
        to=hi,
        group_by=group_by,
        items=items,
        totals=totals,
        plan_id=plans.current,
        fees=fees,
        fee_usd=round(sum(f.usd for f in own.values()), 4) if plans.current else None,
        fee_note=plans.note,
    )


async def overview(session: AsyncSession, principal: Principal) -> Overview:
    """Clusters by state, nodes running, spend month-to-date against the budget, recent events."""
    principal.require(Role.VIEWER)
    now = utcnow()
    repo = BillingRepository(session)
    by_state = await repo.clusters_by_state(principal.tenant_id)
    budget = await repo.budget(principal.tenant_id)
    spend = await budgets.month_spend(session, principal.tenant_id, now)
    alerts = await repo.alerts(principal.tenant_id, month_start(now).date()) if budget else []
    events = await repo.recent_events(principal.tenant_id, RECENT_EVENTS)
    return Overview(
        clusters_by_state=by_state,
        clusters_total=sum(by_state.values()),
        running_nodes=await repo.running_nodes(principal.tenant_id),
        spend=budgets.spend_out(budget, spend, now),
        budget_alerts=[BudgetAlertOut.model_validate(a) for a in alerts],
        recent_events=[
            OverviewEvent(**ClusterEventOut.model_validate(e).model_dump(), cluster_id=e.cluster_id, cluster_name=name)
            for e, name in events
        ],
    )


def _record_cursor(record: MeteringRecord) -> str:
    return encode_cursor(json.dumps([record.hour.isoformat(), record.subscription_id, record.dimension]))


def _after(cursor: str | None) -> tuple[datetime, str, str] | None:
    after = decode_cursor(cursor)
    if after is None:
        return None
    try:
        hour, subscription, dimension = json.loads(after)
        return datetime.fromisoformat(hour), str(subscription), str(dimension)
    except (ValueError, TypeError):
        raise InvalidInput.on("query.cursor", "not a cursor returned by this API") from None


async def metering_records(
    session: AsyncSession,
    principal: Principal,
    *,
    frm: datetime | None,
    to: datetime | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[MeteringRecord]:
    """The tenant's metering records whose hour is in ``[from, to)`` (either may be left
    out), in (hour, subscription, dimension) order; tenant admins only. Records have no
    surrogate id, so the cursor carries the last record's key."""
    principal.require(Role.ADMIN)
    lo = _utc(frm) if frm is not None else None
    hi = _utc(to) if to is not None else None
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidInput.on("query.to", f"must be after from ({lo.isoformat()})")
    rows = await BillingRepository(session).metering_page(
        principal.tenant_id, after=_after(cursor), limit=limit, lo=lo, hi=hi, status=status
    )
    if len(rows) > limit:
        return Page(rows[:limit], _record_cursor(rows[limit - 1]))
    return Page(rows, None)


async def refresh_gauges(session: AsyncSession, settings: Settings) -> BillingGauges:
    """Set the billing gauges of this process from the database (``/metrics`` calls it)."""
    row = await BillingRepository(session).gauge_counts(gauge_params(settings, utcnow()))
    gauges = BillingGauges(*(int(v) for v in row))
    gauges.publish()
    return gauges
