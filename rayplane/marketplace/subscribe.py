"""A ``Subscribe`` webhook: the tenant created or linked by the worker, as activation does.

The Marketplace sends ``Subscribe`` for plans that activate without the landing page, so no
user signs in: the subscription's own parties say who. The tenant is bound to the
beneficiary's Entra tenant (the purchaser's when no beneficiary is named) and that party,
and the purchaser when they belong to the same Entra tenant, become owners, as a landing
page activation by them would make them. A tenant already bound to that Entra tenant is
linked instead (and made active again after a cancellation), unless it has a current
subscription of its own.

Races: the activation's advisory lock on the subscription is taken first, then the
subscription row is looked for again, so a landing-page activation and this never both bind
one subscription; the partial unique index (one current subscription per tenant) backs it.
The caller holds the event row's lock and commits; the Marketplace was already asked (no
call here).
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from rayplane.common.principal import Role
from rayplane.db.ids import new_id
from rayplane.identity.models import Member
from rayplane.marketplace import plans, store
from rayplane.marketplace.client import Party, Subscription
from rayplane.marketplace.models import MarketplaceSubscription
from rayplane.marketplace.purchase import tenant_name
from rayplane.tenants.models import Tenant
from rayplane.tenants.service import ACTIVE


def _party(purchase: Subscription) -> Party | None:
    for party in (purchase.beneficiary, purchase.purchaser):
        if party.tenant_id:
            return party
    return None


def _owner(session: Session, tenant: Tenant, party: Party) -> None:
    oid = str(party.object_id or "")
    if not oid or store.member_by_oid(session, tenant.id, oid) is not None:
        return
    session.add(Member(id=new_id("mem"), tenant_id=tenant.id, oid=oid, role=Role.OWNER.value, email=party.email_id))


def _new_tenant(session: Session, purchase: Subscription, tid: str) -> Tenant:
    base = tenant_name(purchase.name or purchase.id)
    name = base if len(base) >= 3 else f"{base}-mkt"
    if store.tenant_name_taken(session, name):
        name = f"{name[:50]}-{secrets.token_hex(3)}"
    tenant = Tenant(
        id=new_id("ten"), name=name, display_name=(purchase.name or name)[:200], entra_tenant_id=tid, status=ACTIVE
    )
    session.add(tenant)
    session.flush()
    return tenant


def subscribe(session: Session, purchase: Subscription) -> tuple[str, MarketplaceSubscription | None]:
    """Create or link the tenant for ``purchase``; what was done, and the subscription row
    (None when nothing was bound, the reason then says why)."""
    store.lock_purchase(session, purchase.id)
    existing = store.load_subscription(session, purchase.id, lock=True)
    if existing is not None:
        return "already activated; recorded", existing
    if purchase.saas_subscription_status not in ("Subscribed", "PendingFulfillmentStart"):
        return f"the subscription is {purchase.saas_subscription_status}; recorded, not applied", None
    if plans.get(purchase.plan_id) is None:
        return f"plan {purchase.plan_id!r} is not offered by this Rayplane; recorded, not applied", None
    party = _party(purchase)
    if party is None:
        return "the subscription names no Entra tenant; recorded, not applied", None
    tid = str(party.tenant_id).lower()
    tenant = store.tenant_by_entra_tid(session, tid, lock=True)
    if tenant is not None:
        current = store.current_subscription_of(session, tenant.id)
        if current is not None:
            return f"the organisation's tenant already has subscription {current.id}; recorded, not applied", None
        tenant.status, done = ACTIVE, "linked"
    else:
        tenant, done = _new_tenant(session, purchase, tid), "created"
    for owner in (party, purchase.purchaser):
        if str(owner.tenant_id or "").lower() == tid:
            _owner(session, tenant, owner)
    purchaser = purchase.purchaser
    record = MarketplaceSubscription(
        id=purchase.id.lower(),
        tenant_id=tenant.id,
        offer_id=purchase.offer_id,
        plan_id=purchase.plan_id,
        quantity=purchase.quantity,
        status="Subscribed",
        purchaser_email=purchaser.email_id,
        purchaser_tid=purchaser.tenant_id,
    )
    session.add(record)
    session.flush()
    return f"subscribed without the landing page; {done} tenant {tenant.id}", record
