"""SQL of the Marketplace on the worker side (sync sessions): events, subscriptions, closing.

The due sweep over webhook events works like the clusters' one: one ``UPDATE … RETURNING``
claims up to ``limit`` events still ``received`` whose ``next_attempt_at`` has come (``FOR
UPDATE SKIP LOCKED``, so two beats never claim the same row) and pushes each ``hold``
seconds ahead, so a queued task is not queued again unless it is lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from rayplane.clusters import statements
from rayplane.clusters.spec import ClusterSpec
from rayplane.identity.models import ApiKey, Member
from rayplane.marketplace.models import MarketplaceSubscription, WebhookEvent
from rayplane.tenants.models import Tenant


def load_event(session: Session, operation_id: str, *, lock: bool = False) -> WebhookEvent | None:
    stmt = select(WebhookEvent).where(WebhookEvent.operation_id == operation_id.lower())
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def claim_due_events(session: Session, *, limit: int, hold_seconds: float) -> list[str]:
    due = (
        select(WebhookEvent.operation_id)
        .where(WebhookEvent.status == "received", WebhookEvent.next_attempt_at <= func.now())
        .order_by(WebhookEvent.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(WebhookEvent)
        .where(WebhookEvent.operation_id.in_(due))
        .values(next_attempt_at=func.now() + timedelta(seconds=hold_seconds))
        .returning(WebhookEvent.operation_id)
        .execution_options(synchronize_session=False)
    )
    return list(session.execute(stmt).scalars())


def load_subscription(session: Session, subscription_id: str, *, lock: bool = False) -> MarketplaceSubscription | None:
    stmt = select(MarketplaceSubscription).where(MarketplaceSubscription.id == subscription_id.lower())
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def load_tenant(session: Session, tenant_id: str, *, lock: bool = False) -> Tenant | None:
    stmt = select(Tenant).where(Tenant.id == tenant_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def running_specs(session: Session, tenant_id: str) -> list[ClusterSpec]:
    """Specs of the tenant's live clusters that should be running (what plan quotas count)."""
    return list(session.execute(statements.live_specs(tenant_id, running_only=True)).scalars())


def closable(session: Session, *, unsubscribed_before: datetime, limit: int = 100) -> list[tuple[str, str]]:
    """(subscription id, tenant id) of read-only tenants whose cancelled subscription ended
    before the cutoff and that have no current subscription since; tenants locked, skipping
    rows another beat is closing."""
    other = aliased(MarketplaceSubscription)
    newer = select(other.id).where(other.tenant_id == Tenant.id, other.status != "Unsubscribed").correlate(Tenant)
    stmt = (
        select(MarketplaceSubscription.id, Tenant.id)
        .join(Tenant, Tenant.id == MarketplaceSubscription.tenant_id)
        .where(
            MarketplaceSubscription.status == "Unsubscribed",
            MarketplaceSubscription.unsubscribed_at < unsubscribed_before,
            Tenant.status == "read_only",
            ~newer.exists(),
        )
        .order_by(MarketplaceSubscription.unsubscribed_at)
        .limit(limit)
        .with_for_update(of=Tenant, skip_locked=True)
    )
    return [(str(sub), str(tenant)) for sub, tenant in session.execute(stmt)]


def revoke_api_keys(session: Session, tenant_id: str, at: datetime) -> int:
    """Revoke every unrevoked API key of the tenant; how many."""
    stmt = (
        update(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=at, version=ApiKey.version + 1)
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


# ---- a Subscribe webhook (the tenant created or linked by the worker) -------------------


def lock_purchase(session: Session, subscription_id: str) -> None:
    """The advisory lock the API's activation takes (``MarketplaceRepository.lock_purchase``):
    a landing-page activation and a Subscribe webhook of one subscription never both bind it."""
    key = func.hashtextextended("marketplace-activate:" + subscription_id.lower(), 0)
    session.execute(select(func.pg_advisory_xact_lock(key)))


def tenant_by_entra_tid(session: Session, tid: str, *, lock: bool = False) -> Tenant | None:
    stmt = select(Tenant).where(Tenant.entra_tenant_id == tid)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def tenant_name_taken(session: Session, name: str) -> bool:
    return session.execute(select(Tenant.id).where(Tenant.name == name)).first() is not None


def current_subscription_of(session: Session, tenant_id: str) -> MarketplaceSubscription | None:
    """The tenant's subscription that is not Unsubscribed (at most one: a partial unique index)."""
    stmt = select(MarketplaceSubscription).where(
        MarketplaceSubscription.tenant_id == tenant_id, MarketplaceSubscription.status != "Unsubscribed"
    )
    return session.execute(stmt).scalar_one_or_none()


def member_by_oid(session: Session, tenant_id: str, oid: str) -> Member | None:
    stmt = select(Member).where(Member.tenant_id == tenant_id, Member.oid == oid)
    return session.execute(stmt).scalar_one_or_none()
