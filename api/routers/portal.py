"""Portal-shaped reads: ``/v1/overview`` and ``POST /v1/clusters:estimate``.

``/v1/clusters:estimate`` cannot be taken for a cluster route: ``/v1/clusters/{cluster_id}``
and its ``:action`` routes need a ``/`` after ``clusters`` (a path parameter never spans one),
so the order in which the routers are included does not matter (a test checks it).
"""

from __future__ import annotations

from api.common import problems
from api.deps import Caller, Session
from api.routing import Router
from rayplane.billing import reports
from rayplane.billing.estimate import estimate
from rayplane.billing.fees import fee_plans
from rayplane.billing.schemas import Estimate, EstimateRequest, Overview

router = Router(tags=["portal"])


@router.get("/v1/overview", name="overview.get", response_model=Overview, responses=problems())
async def get_overview(session: Session, caller: Caller) -> Overview:
    """Clusters by state, nodes running, spend month-to-date against the budget, recent events."""
    return await reports.overview(session, caller)


@router.post("/v1/clusters:estimate", name="clusters.estimate", response_model=Estimate, responses=problems(415, 422))
async def estimate_cluster(body: EstimateRequest, session: Session, caller: Caller) -> Estimate:
    """Hourly cost range of a cluster spec (min nodes to max nodes) at catalog prices, and
    Rayplane's fee per metering dimension beside it.

    Accepts a ``POST /v1/clusters`` body as it is. Sizes without a catalog price are listed
    in ``unpriced_vm_sizes`` and make the totals null; no price is ever invented. ``fees``
    are the tenant's plan's (or every plan's, for a tenant without one).
    """
    return estimate(body, await fee_plans(session, caller.tenant_id))
