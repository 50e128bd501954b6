"""All SQL of the Marketplace on the API side (async): subscriptions, webhook intake, usage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters import statements
from rayplane.clusters.spec import ClusterSpec
from rayplane.marketplace.models import MarketplaceSubscription, WebhookEvent

UNSUBSCRIBED = "Unsubscribed"


class MarketplaceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, subscription_id: str) -> MarketplaceSubscription | None:
        return await self.session.get(MarketplaceSubscription, subscription_id.lower())

    async def current_for_tenant(self, tenant_id: str) -> MarketplaceSubscription | None:
        """The tenant's subscription that is not Unsubscribed (at most one: a partial unique index)."""
        stmt = select(MarketplaceSubscription).where(
            MarketplaceSubscription.tenant_id == tenant_id, MarketplaceSubscription.status != UNSUBSCRIBED
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def latest_for_tenant(self, tenant_id: str) -> MarketplaceSubscription | None:
        """The current subscription, else the most recently cancelled one (a read-only tenant's)."""
        stmt = (
            select(MarketplaceSubscription)
            .where(MarketplaceSubscription.tenant_id == tenant_id)
            .order_by(
                (MarketplaceSubscription.status == UNSUBSCRIBED).asc(),
                MarketplaceSubscription.created_at.desc(),
            )
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add(self, subscription: MarketplaceSubscription) -> MarketplaceSubscription:
        self.session.add(subscription)
        await self.session.flush()
        return subscription

    async def lock_purchase(self, subscription_id: str) -> None:
        """Serialise activations of one subscription until the transaction ends, so two clicks
        on the landing page cannot both create a tenant."""
        key = func.hashtextextended("marketplace-activate:" + subscription_id.lower(), 0)
        await self.session.execute(select(func.pg_advisory_xact_lock(key)))

    async def insert_event(
        self,
        *,
        operation_id: str,
        subscription_id: str,
        action: str,
        time_stamp: datetime | None,
        payload: dict[str, Any],
        received_at: datetime,
        next_attempt_at: datetime,
    ) -> bool:
        """Store a webhook delivery once per operation id; False when it was already stored.

        ``INSERT … ON CONFLICT DO NOTHING``: concurrent duplicate deliveries race to one row
        and the losers change nothing (not even ``attempts``).
        """
        stmt = (
            insert(WebhookEvent)
            .values(
                operation_id=operation_id.lower(),
                subscription_id=subscription_id.lower(),
                action=action,
                time_stamp=time_stamp,
                payload=payload,
                status="received",
                attempts=0,
                received_at=received_at,
                next_attempt_at=next_attempt_at,
            )
            .on_conflict_do_nothing(index_elements=[WebhookEvent.operation_id])
            .returning(WebhookEvent.operation_id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def running_specs(self, tenant_id: str, *, excluding: str | None = None) -> list[ClusterSpec]:
        """Specs of the tenant's live clusters that should be running (what plan quotas count)."""
        stmt = statements.live_specs(tenant_id, excluding=excluding, running_only=True)
        return list((await self.session.execute(stmt)).scalars())
