"""What a tenant may run: its status (suspended, read-only) and its Marketplace plan's quotas.

Called, through ``rayplane.billing.guard.TenantRules``, by the clusters service on create,
resize (PATCH) and start. Tenants without a current
Marketplace subscription (dev tenants, tenants set up by an operator) have no plan and keep
the server-wide defaults alone.

Answers:
- suspended tenant, create or start -> 403 ``Forbidden`` saying why (stop and delete stay
  allowed: they only reduce what runs);
- a create or resize that breaks the plan -> 422 ``InvalidInput``, one error per field
  (``body.worker_groups.0.vm_size`` …), each naming the plan;
- a start that would break it -> 403 ``Forbidden`` with the same errors on ``spec.…`` paths
  (the request has no body: the stored spec is what does not fit).

Race: two concurrent creates both read the running clusters before either inserts, so both
may pass where only one fits, as with the server-wide quotas; the next change is checked
against the sum again. Locking the tenant on every create was judged not worth it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.models import Cluster
from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.values import DesiredState
from rayplane.common.errors import FieldError, Forbidden
from rayplane.marketplace import plans
from rayplane.marketplace.repository import MarketplaceRepository
from rayplane.tenants.repository import TenantRepository
from rayplane.tenants.service import CLOSED, READ_ONLY, SUSPENDED


async def require_active(session: AsyncSession, tenant_id: str, action: str) -> None:
    """Refuse to create or start (``action``) clusters for a suspended or cancelled tenant.

    The tenant row is read ``FOR SHARE`` until the request commits, so a Suspend being applied
    at the same moment either sees the new cluster (and stops it) or is seen here (403).
    Callers take this lock before any cluster row's, the order the webhook processing uses.
    """
    status = await TenantRepository(session).status_for_share(tenant_id)
    if status == SUSPENDED:
        raise Forbidden(
            f"cannot {action} clusters: this tenant's Azure Marketplace subscription is suspended "
            "(usually an unpaid invoice); clusters were stopped and can run again once Microsoft reinstates it"
        )
    if status in (READ_ONLY, CLOSED):
        raise Forbidden(f"cannot {action} clusters: this tenant's Azure Marketplace subscription was cancelled")


def _summary(errors: list[FieldError]) -> str:
    return "; ".join(f"{e.field}: {e.message}" for e in errors[:5])


async def plan_violations(
    session: AsyncSession,
    tenant_id: str,
    spec: ClusterSpec,
    *,
    cluster: Cluster | None = None,
    starting: bool = False,
) -> list[FieldError]:
    """What the tenant's plan forbids in ``spec`` (see the module docstring for the answers).

    ``cluster`` is None for a create; for a resize, the cluster being changed (a stopped one
    is checked for what its spec may use at all, and counted when it starts). For a start
    (``starting``) a violation raises ``Forbidden`` itself, as the request has no body to
    point into; otherwise the violations are returned, for the caller to answer with every
    other field error at once.
    """
    subscription = await MarketplaceRepository(session).current_for_tenant(tenant_id)
    if subscription is None:
        return []
    plan = plans.get(subscription.plan_id)
    if plan is None:
        raise Forbidden(f"the tenant's Marketplace plan {subscription.plan_id!r} is not offered by this Rayplane")
    base = "spec" if starting else "body"
    running = cluster is None or starting or cluster.desired_state == DesiredState.RUNNING
    if running:
        others = await MarketplaceRepository(session).running_specs(
            tenant_id, excluding=cluster.id if cluster is not None else None
        )
        errors = plans.violations(plan, spec, others, base=base, name_field="spec" if starting else "body.name")
    else:
        errors = plans.violations(plan, spec, [], base=base)
        errors = [e for e in errors if e.field.endswith((".vm_size", ".spot"))]
    if errors and starting:
        raise Forbidden(f"starting this cluster would exceed plan {plan.id!r}: {_summary(errors)}", errors=errors)
    return errors
