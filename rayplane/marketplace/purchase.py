"""The landing page's two steps: resolve a purchase token, then activate the subscription.

``resolve``: asks the Fulfillment API which subscription a landing-page token names and
returns only what the buyer should see (never the token, never a credential).

``activate`` (a signed-in Entra ID user, not an API key):
- finds the subscription (from the token, or by id), then checks the user's token with the
  same rules as sign-in, accepting only the purchaser's or beneficiary's Entra tenant (so
  strangers cannot make us fetch metadata for arbitrary tenants);
- lets in the purchaser, the beneficiary, or an owner/admin of the Rayplane tenant already
  bound to that Entra tenant;
- under a transaction-scoped advisory lock on the subscription id: creates the tenant (or
  links the one bound to the user's ``tid``), makes the user (and the purchaser, when in the
  same Entra tenant) owners, records the subscription as Subscribed and calls ``activate``
  last, so a Marketplace refusal rolls everything back. A repeat, or a second click racing the
  first, finds the row and returns the same tenant (``created`` False) without calling the
  Marketplace again. A commit lost after ``activate`` succeeded is repaired by the next try:
  activating again with the same plan is harmless on the Marketplace's side.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated, Unavailable
from rayplane.common.principal import Principal, Role
from rayplane.common.upstream import one_line
from rayplane.identity import keys
from rayplane.identity.auth import bearer_token
from rayplane.identity.entra import EntraValidator
from rayplane.identity.models import Member
from rayplane.identity.repository import MemberRepository
from rayplane.identity.service import add_member
from rayplane.logs import get_logger
from rayplane.marketplace import plans
from rayplane.marketplace.client import FulfillmentClient, FulfillmentError, Subscription
from rayplane.marketplace.models import MarketplaceSubscription
from rayplane.marketplace.repository import MarketplaceRepository
from rayplane.marketplace.schemas import PlanOut, PlanQuotasOut, ResolveOut
from rayplane.marketplace.token import MarketplaceTokenError
from rayplane.tenants.models import Tenant
from rayplane.tenants.repository import TenantRepository
from rayplane.tenants.service import ACTIVE, create_tenant


def plan_out(plan_id: str) -> PlanOut | None:
    plan = plans.get(plan_id)
    if plan is None:
        return None
    q = plan.quotas
    return PlanOut(
        id=plan.id,
        display_name=plan.display_name,
        quotas=PlanQuotasOut(
            max_clusters=q.max_clusters,
            max_nodes=q.max_nodes,
            max_gpus=q.max_gpus,
            vm_families=sorted(q.vm_families),
            spot_allowed=q.spot_allowed,
        ),
        dimensions=[d.id for d in plan.dimensions],
    )


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(f"the Azure Marketplace API could not be used right now ({type(exc).__name__}); try again")


log = get_logger("rayplane.marketplace.purchase")


def _misconfigured() -> Unavailable:
    """Entra refused the publisher app: a configuration fault that retrying will not fix."""
    return Unavailable(
        "the Azure Marketplace integration is not configured correctly on this server "
        "(Entra ID refused the publisher app's credentials); an operator must fix it"
    )


P = ParamSpec("P")
T = TypeVar("T")


async def _call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking Fulfillment call in a thread (MSAL and the client are synchronous).

    The caller's own FulfillmentError for a 4xx is left to the caller; an unreachable API,
    refused publisher credentials, throttling or 5xx after the client's retries are 503.
    """
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except MarketplaceTokenError as exc:
        log.warning("marketplace_token_refused", error=str(exc))
        raise _misconfigured() from None
    except FulfillmentError as exc:
        if exc.code == "PublisherTokenRefused":
            raise _misconfigured() from None
        if exc.status is not None and exc.status < 500 and exc.status not in (401, 403, 429):
            raise
        raise _unavailable(exc) from None


async def _purchase_from_token(client: FulfillmentClient, token: str, field: str) -> Subscription:
    try:
        resolved = await _call(client.resolve, token)
    except FulfillmentError:
        raise InvalidInput.on(
            field, "the Marketplace does not recognise this token or it expired; open the page again from Azure"
        ) from None
    return resolved.subscription


async def resolve(session: AsyncSession, client: FulfillmentClient, token: str) -> ResolveOut:
    sub = await _purchase_from_token(client, token, "body.token")
    ours = await MarketplaceRepository(session).get(sub.id)
    return ResolveOut(
        subscription_id=sub.id,
        subscription_name=sub.name,
        offer_id=sub.offer_id,
        plan_id=sub.plan_id,
        plan=plan_out(sub.plan_id),
        quantity=sub.quantity,
        status=sub.saas_subscription_status,
        purchaser_email=sub.purchaser.email_id,
        purchaser_tenant_id=sub.purchaser.tenant_id,
        activated=ours is not None,
    )


@dataclass(frozen=True)
class Activation:
    tenant: Tenant
    subscription: MarketplaceSubscription
    member: Member
    created: bool


def _tid_of(token: str) -> str | None:
    """The ``tid`` an (unverified) JWT claims, to pick whose keys to verify it with."""
    try:
        tid = jwt.decode(token, options={"verify_signature": False}).get("tid")
        return str(uuid.UUID(str(tid)))
    except (jwt.PyJWTError, ValueError):
        return None


def tenant_name(display: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", display.lower()).strip("-")[:40].strip("-")
    if not slug or not slug[0].isalpha():
        slug = "t-" + slug if slug else "tenant"
    return slug.rstrip("-") or "tenant"


async def _new_tenant(session: AsyncSession, sub: Subscription, tid: str) -> Tenant:
    base = tenant_name(sub.name or sub.id)
    name = base if len(base) >= 3 else f"{base}-mkt"
    if await TenantRepository(session).get_by_name(name) is not None:
        name = f"{name[:50]}-{secrets.token_hex(3)}"
    return await create_tenant(session, name=name, display_name=(sub.name or name)[:200], entra_tenant_id=tid)


async def _ensure_owner(session: AsyncSession, tenant: Tenant, oid: str, email: str | None) -> Member:
    existing = await MemberRepository(session).get_by_oid(tenant.id, oid)
    if existing is not None:
        return existing
    system = Principal(tenant_id=tenant.id, role=Role.OWNER, actor_type="system", actor_id="system:marketplace")
    return await add_member(session, system, oid=oid, role=Role.OWNER, email=email)


async def activate(
    session: AsyncSession,
    client: FulfillmentClient,
    validator: EntraValidator,
    *,
    authorization: str | None,
    token: str | None,
    subscription_id: str | None,
) -> Activation:
    bearer = bearer_token(authorization)
    if bearer.startswith(keys.SCHEME + "_"):
        raise Forbidden("activating a subscription needs a signed-in Entra ID user, not an API key")
    if token is not None:
        sub = await _purchase_from_token(client, token, "body.token")
    else:
        assert subscription_id is not None
        try:
            sub = await _call(client.get, subscription_id)
        except FulfillmentError:
            raise NotFound(f"the Marketplace knows no subscription {subscription_id}") from None
    parties = [p for p in (sub.purchaser, sub.beneficiary) if p.tenant_id]
    allowed_tids = {str(p.tenant_id).lower() for p in parties}
    claimed_tid = _tid_of(bearer)
    if claimed_tid is None:
        raise Unauthenticated("the bearer token is not an Entra ID access token with a tenant (tid)")
    if claimed_tid not in allowed_tids:
        raise Forbidden("sign in with an account of the organisation that bought this subscription")

    async def known(tid: str) -> bool:
        return tid in allowed_tids

    claims = await validator.validate(bearer, known)
    tid, oid = str(claims["tid"]).lower(), str(claims["oid"])
    repo = MarketplaceRepository(session)
    await repo.lock_purchase(sub.id)
    tenant = await TenantRepository(session).get_by_entra_tid(tid)
    if not await _may_activate(session, tenant, sub, tid, oid):
        raise Forbidden("only the purchaser, the beneficiary or an admin of the Rayplane tenant can activate this")
    email = claims.get("email") or claims.get("preferred_username")
    ours = await repo.get(sub.id)
    if ours is not None:
        bound = await TenantRepository(session).get(ours.tenant_id)
        if bound is None or bound.entra_tenant_id != tid:
            raise Forbidden("this subscription is activated for another organisation")
        member = await _ensure_owner(session, bound, oid, email if isinstance(email, str) else None)
        return Activation(bound, ours, member, created=False)
    return await _first_activation(session, client, sub, tenant, tid, oid, email if isinstance(email, str) else None)


async def _may_activate(session: AsyncSession, tenant: Tenant | None, sub: Subscription, tid: str, oid: str) -> bool:
    for party in (sub.purchaser, sub.beneficiary):
        if str(party.tenant_id or "").lower() == tid and str(party.object_id or "").lower() == oid.lower():
            return True
    if tenant is None:
        return False
    member = await MemberRepository(session).get_by_oid(tenant.id, oid)
    return member is not None and Role(member.role).at_least(Role.ADMIN)


async def _first_activation(
    session: AsyncSession,
    client: FulfillmentClient,
    sub: Subscription,
    tenant: Tenant | None,
    tid: str,
    oid: str,
    email: str | None,
) -> Activation:
    if sub.saas_subscription_status not in ("PendingFulfillmentStart", "Subscribed"):
        raise Conflict(f"the subscription is {sub.saas_subscription_status} on the Marketplace; it cannot be activated")
    if plans.get(sub.plan_id) is None:
        raise Conflict(f"plan {sub.plan_id!r} is not offered by this Rayplane; contact the publisher")
    repo = MarketplaceRepository(session)
    created = tenant is None
    if tenant is None:
        tenant = await _new_tenant(session, sub, tid)
    else:
        current = await repo.current_for_tenant(tenant.id)
        if current is not None:
            raise Conflict(
                f"this organisation's Rayplane tenant already has the Marketplace subscription {current.id}; "
                "cancel that one first, or change its plan instead"
            )
        # A new purchase after a cancellation brings the tenant back.
        tenant.status = ACTIVE
    member = await _ensure_owner(session, tenant, oid, email)
    purchaser = sub.purchaser
    if purchaser.object_id and str(purchaser.tenant_id or "").lower() == tid:
        await _ensure_owner(session, tenant, str(purchaser.object_id), purchaser.email_id)
    record = MarketplaceSubscription(
        id=sub.id.lower(),
        tenant_id=tenant.id,
        offer_id=sub.offer_id,
        plan_id=sub.plan_id,
        quantity=sub.quantity,
        status="Subscribed",
        purchaser_email=purchaser.email_id,
        purchaser_tid=purchaser.tenant_id,
    )
    await repo.add(record)
    try:
        await _call(client.activate, sub.id, sub.plan_id, sub.quantity)
    except FulfillmentError as exc:
        log.warning("marketplace_activation_refused", status=exc.status, code=exc.code, error=exc.message)
        raise Conflict(f"the Marketplace refused the activation: {exc.code}: {one_line(exc.message)}") from None
    return Activation(tenant, record, member, created=created)
