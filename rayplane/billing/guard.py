"""The tenant-level rules every cluster create, resize and start must pass, in one object.

``TenantRules`` implements ``rayplane.clusters.service.TenantGuard`` from the nouns above
clusters: the Marketplace subscription's status and plan quotas
(``rayplane.marketplace.entitlements``) and the hard-stop budget
(``rayplane.billing.budgets``: its block, and on create and resize the sizes it could not
price). The API hands it to the clusters service in its
``ClusterPolicy``, so clusters never import either noun.

Lock order: the tenant row (``FOR SHARE``, by ``require_active``) before any cluster row,
the order the Marketplace's Suspend takes them in.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing import budgets
from rayplane.clusters.models import Cluster
from rayplane.clusters.spec import ClusterSpec
from rayplane.common.errors import FieldError
from rayplane.marketplace import entitlements


class TenantRules:
    async def may_run(self, session: AsyncSession, tenant_id: str, action: str) -> None:
        await entitlements.require_active(session, tenant_id, action)
        await budgets.ensure_can_start(session, tenant_id)

    async def plan_violations(
        self, session: AsyncSession, tenant_id: str, spec: ClusterSpec, *, cluster: Cluster | None, starting: bool
    ) -> list[FieldError]:
        errors = await entitlements.plan_violations(session, tenant_id, spec, cluster=cluster, starting=starting)
        if not starting:
            # A start runs a spec that existed when the hard stop was set (and was checked then).
            errors += await budgets.hard_stop_violations(session, tenant_id, spec)
        return errors
