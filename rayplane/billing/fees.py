"""Rayplane's own fee, per metering dimension, to show beside the Azure compute price.

Contract:
- The fee of a dimension is ``quantity x usd_per_unit`` of the plan's dimension
  (``rayplane/marketplace/plans.yaml``, a copy of the price set in Partner Center). Only the
  dimensions Rayplane computes (``dimensions.METERS``: vCPU-hours, GPU-hours) are shown.
- Which plan: the tenant's current Marketplace subscription's. A tenant without one (a dev
  tenant, or one an operator set up) is metered nothing; it is shown every offered plan's
  fee instead, one row per plan and dimension, so it can compare; ``current`` is then None
  and no fee total is given.
- Azure's compute is billed by Azure in the customer's subscription, the fee by the
  Marketplace: the two are shown side by side and never summed into one "price".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing.dimensions import METERS
from rayplane.billing.schemas import EstimateFee, UsageFee
from rayplane.marketplace import plans
from rayplane.marketplace.plans import Dimension, Plan
from rayplane.marketplace.repository import MarketplaceRepository

NO_PLAN_NOTE = (
    "This tenant has no Azure Marketplace plan, so no Rayplane fee is metered; the fee of every offered plan is "
    "shown for comparison. Azure compute is billed by Azure, the Rayplane fee by the Azure Marketplace."
)
PLAN_NOTE = (
    "Rayplane fee of plan {plan!r}, per metering dimension, billed by the Azure Marketplace; Azure compute is "
    "billed by Azure in your subscription."
)


@dataclass(frozen=True, slots=True)
class FeePlans:
    """The plans whose fees to show: the tenant's own (``current``), or every plan when it has none."""

    current: str | None
    plans: tuple[Plan, ...]

    @property
    def note(self) -> str:
        return PLAN_NOTE.format(plan=self.current) if self.current else NO_PLAN_NOTE

    def dimensions(self) -> Iterator[tuple[Plan, Dimension]]:
        """Each shown plan's computable dimensions, plans in order, dimensions in file order."""
        for plan in self.plans:
            for dim in plan.dimensions:
                if dim.id in METERS:
                    yield plan, dim


async def fee_plans(session: AsyncSession, tenant_id: str) -> FeePlans:
    """The tenant's plan when its current subscription names one this Rayplane offers, else every plan."""
    subscription = await MarketplaceRepository(session).current_for_tenant(tenant_id)
    plan = plans.get(subscription.plan_id) if subscription is not None else None
    if plan is None:
        return FeePlans(None, plans.all_plans())
    return FeePlans(plan.id, (plan,))


def estimate_fees(fees: FeePlans, low: Mapping[str, float], high: Mapping[str, float]) -> list[EstimateFee]:
    """Fee rows for a spec using ``low``/``high`` units per hour of each dimension (min and max nodes)."""
    return [
        EstimateFee(
            plan_id=plan.id,
            dimension=dim.id,
            unit=dim.unit,
            usd_per_unit=dim.usd_per_unit,
            min_units_per_hour=low.get(dim.id, 0.0),
            max_units_per_hour=high.get(dim.id, 0.0),
            min_usd_per_hour=round(low.get(dim.id, 0.0) * dim.usd_per_unit, 4),
            max_usd_per_hour=round(high.get(dim.id, 0.0) * dim.usd_per_unit, 4),
        )
        for plan, dim in fees.dimensions()
    ]


def usage_fees(fees: FeePlans, quantities: Mapping[str, float]) -> list[UsageFee]:
    """Fee rows for observed ``quantities`` (dimension id -> units)."""
    return [
        UsageFee(
            plan_id=plan.id,
            dimension=dim.id,
            unit=dim.unit,
            usd_per_unit=dim.usd_per_unit,
            quantity=round(quantities.get(dim.id, 0.0), 6),
            usd=round(quantities.get(dim.id, 0.0) * dim.usd_per_unit, 4),
        )
        for plan, dim in fees.dimensions()
    ]
