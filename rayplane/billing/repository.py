"""SQL for billing as the API needs it (async): reports, records, budgets, the overview.

Usage reports split each interval at the window's edges (and, by day, at UTC midnights) and
sum node-, vCPU- and GPU-seconds per group and VM size; the caller prices the VM sizes.
Open intervals count up to the window's end, which the caller clamps to now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Row, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing.budget_store import SPEND
from rayplane.billing.metering_store import GAUGES
from rayplane.billing.models import Budget, BudgetAlert, MeteringRecord
from rayplane.clusters.models import Cluster, ClusterEvent
from rayplane.clusters.spec import ClusterSpec
from rayplane.marketplace.models import MarketplaceSubscription
from rayplane.usage.models import UsageInterval

_SUMS = """
    sum(u.node_count * p.seconds) / 3600 AS node_hours,
    sum(u.node_count * u.vcpus * p.seconds) / 3600 AS vcpu_hours,
    sum(u.node_count * u.gpus * p.seconds) / 3600 AS gpu_hours
"""
_WINDOW = "u.tenant_id = :tenant AND u.started_at < :hi AND (u.ended_at IS NULL OR u.ended_at > :lo)"

_BY_CLUSTER = text(
    f"""
    SELECT u.cluster_id AS key, c.name AS label, u.vm_size, {_SUMS}
    FROM usage_intervals u
    JOIN clusters c ON c.id = u.cluster_id
    CROSS JOIN LATERAL (
        SELECT extract(epoch FROM least(coalesce(u.ended_at, :hi), :hi) - greatest(u.started_at, :lo)) AS seconds
    ) p
    WHERE {_WINDOW}
    GROUP BY u.cluster_id, c.name, u.vm_size
    """  # noqa: S608 - only module constants are interpolated
)

# '24 hours', not '1 day': a day interval follows the session's time zone across DST.
_BY_DAY = text(
    f"""
    SELECT to_char(d.day AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS key, NULL AS label, u.vm_size, {_SUMS}
    FROM usage_intervals u
    CROSS JOIN LATERAL generate_series(
        date_trunc('day', greatest(u.started_at, :lo) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
        least(coalesce(u.ended_at, :hi), :hi) - interval '1 microsecond',
        interval '24 hours'
    ) AS d(day)
    CROSS JOIN LATERAL (
        SELECT extract(epoch FROM least(coalesce(u.ended_at, :hi), :hi, d.day + interval '24 hours')
                                  - greatest(u.started_at, :lo, d.day)) AS seconds
    ) p
    WHERE {_WINDOW}
    GROUP BY 1, u.vm_size
    """  # noqa: S608 - only module constants are interpolated
)


@dataclass(frozen=True)
class UsageSlice:
    """Usage of one VM size within one group of a report."""

    key: str
    label: str | None
    vm_size: str
    node_hours: float
    vcpu_hours: float
    gpu_hours: float


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- usage ----------------------------------------------------------------------
    async def usage(
        self, tenant_id: str, lo: datetime, hi: datetime, by: Literal["day", "cluster"]
    ) -> list[UsageSlice]:
        stmt = _BY_DAY if by == "day" else _BY_CLUSTER
        rows = await self.session.execute(stmt, {"tenant": tenant_id, "lo": lo, "hi": hi})
        return [
            UsageSlice(
                str(r.key), r.label, str(r.vm_size), float(r.node_hours), float(r.vcpu_hours), float(r.gpu_hours)
            )
            for r in rows
        ]

    async def spend(self, tenant_id: str, lo: datetime, hi: datetime) -> list[tuple[str, float]]:
        """``[(vm size, node-hours)]`` of the tenant over ``[lo, hi)``."""
        rows = await self.session.execute(SPEND, {"tenants": [tenant_id], "lo": lo, "hi": hi})
        return [(str(r.vm_size), float(r.node_hours)) for r in rows]

    # ---- metering records -------------------------------------------------------------
    async def metering_page(
        self,
        tenant_id: str,
        *,
        after: tuple[datetime, str, str] | None,
        limit: int,
        lo: datetime | None,
        hi: datetime | None,
        status: str | None,
    ) -> list[MeteringRecord]:
        """A page in (hour, subscription, dimension) order, after the ``after`` key.

        The tenant's records are found through its subscriptions (current and past), the
        primary key's first column; ``tenant_id`` is checked as well.
        """
        subscriptions = select(MarketplaceSubscription.id).where(MarketplaceSubscription.tenant_id == tenant_id)
        order = (MeteringRecord.hour, MeteringRecord.subscription_id, MeteringRecord.dimension)
        stmt = select(MeteringRecord).where(
            MeteringRecord.subscription_id.in_(subscriptions.scalar_subquery()), MeteringRecord.tenant_id == tenant_id
        )
        if lo is not None:
            stmt = stmt.where(MeteringRecord.hour >= lo)
        if hi is not None:
            stmt = stmt.where(MeteringRecord.hour < hi)
        if status is not None:
            stmt = stmt.where(MeteringRecord.status == status)
        if after is not None:
            stmt = stmt.where(tuple_(*order) > tuple_(*after))
        stmt = stmt.order_by(*order).limit(limit + 1)
        return list((await self.session.execute(stmt)).scalars())

    # ---- budgets ----------------------------------------------------------------------
    async def budget(self, tenant_id: str, *, for_update: bool = False) -> Budget | None:
        stmt = select(Budget).where(Budget.tenant_id == tenant_id)
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, budget: Budget) -> Budget:
        self.session.add(budget)
        await self.session.flush()
        return budget

    async def delete(self, budget: Budget) -> None:
        await self.session.delete(budget)
        await self.session.flush()

    async def alerts(self, tenant_id: str, month: date) -> list[BudgetAlert]:
        stmt = (
            select(BudgetAlert)
            .where(BudgetAlert.tenant_id == tenant_id, BudgetAlert.month == month)
            .order_by(BudgetAlert.threshold)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def live_specs(self, tenant_id: str) -> list[tuple[str, ClusterSpec]]:
        """``(name, spec)`` of the tenant's clusters not deleted (stopped ones included), by name."""
        stmt = (
            select(Cluster.name, Cluster.spec)
            .where(Cluster.tenant_id == tenant_id, Cluster.deleted_at.is_(None))
            .order_by(Cluster.name)
        )
        return [(str(name), spec) for name, spec in (await self.session.execute(stmt)).all()]

    # ---- overview -----------------------------------------------------------------------
    async def clusters_by_state(self, tenant_id: str) -> dict[str, int]:
        stmt = (
            select(Cluster.state, func.count())
            .where(Cluster.tenant_id == tenant_id, Cluster.deleted_at.is_(None))
            .group_by(Cluster.state)
        )
        return {str(state): int(n) for state, n in (await self.session.execute(stmt)).all()}

    async def running_nodes(self, tenant_id: str) -> int:
        stmt = select(func.coalesce(func.sum(UsageInterval.node_count), 0)).where(
            UsageInterval.tenant_id == tenant_id, UsageInterval.ended_at.is_(None)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def recent_events(self, tenant_id: str, limit: int) -> list[tuple[ClusterEvent, str]]:
        stmt = (
            select(ClusterEvent, Cluster.name)
            .join(Cluster, Cluster.id == ClusterEvent.cluster_id)
            .where(ClusterEvent.tenant_id == tenant_id)
            .order_by(ClusterEvent.id.desc())
            .limit(limit)
        )
        return [(event, str(name)) for event, name in (await self.session.execute(stmt)).all()]

    # ---- metrics ----------------------------------------------------------------------
    async def gauge_counts(self, params: dict[str, Any]) -> Row[Any]:
        return (await self.session.execute(GAUGES, params)).one()
