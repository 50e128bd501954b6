"""Which metering dimensions Rayplane computes, and which of them each plan bills.

Rayplane can compute a dimension only from what a usage interval records: ``vcpu_hours``
(nodes x vCPUs per node x hours) and ``gpu_hours`` (nodes x GPUs per node x hours). A plan's
own list comes from ``rayplane.marketplace.plans``; a plan id that file does not know is
metered on every computable dimension, so its usage reaches the Marketplace and comes back
visibly rejected (``InvalidDimension``) rather than silently going unbilled.
"""

from __future__ import annotations

# dimension id -> the per-node column of usage_intervals it multiplies
METERS: dict[str, str] = {"vcpu_hours": "vcpus", "gpu_hours": "gpus"}
DEFAULT_DIMENSIONS: tuple[str, ...] = tuple(METERS)


def plan_dimensions() -> dict[str, list[str]]:
    """Computable dimensions billed by each known plan id (sorted, possibly empty)."""
    from rayplane.marketplace import plans

    return {plan.id: sorted(plan.dimension_ids & METERS.keys()) for plan in plans.all_plans()}


def dimensions_for(plan_id: str) -> list[str]:
    """The dimensions metered for ``plan_id`` (the defaults for an unknown plan)."""
    return plan_dimensions().get(plan_id, list(DEFAULT_DIMENSIONS))
