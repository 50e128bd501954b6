"""``/v1/marketplace``: the landing page (resolve, activate), the lifecycle webhook, the tenant's plan.

``resolve`` and ``activate`` need no Rayplane credential (the buyer has none yet), so they
are rate-limited per client address. ``webhook`` is called by the Azure Marketplace with an
Entra token of its own (see ``rayplane.marketplace.webhook``); it reads the raw body only
after that token verified, so an unauthenticated call is a 401 whatever its body.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Header, Request

from api import ratelimit
from api.common import problems
from api.deps import Caller, Session, after_commit, app_state, set_audit_target
from api.routing import Router
from rayplane.common.errors import Unavailable
from rayplane.common.principal import Principal, Role
from rayplane.marketplace import purchase, webhook
from rayplane.marketplace.client import FulfillmentClient
from rayplane.marketplace.repository import MarketplaceRepository
from rayplane.marketplace.schemas import (
    ActivateIn,
    ActivateOut,
    ResolveIn,
    ResolveOut,
    SubscriptionOut,
    TenantPlanOut,
    WebhookAck,
    WebhookIn,
)
from rayplane.marketplace.token import MarketplaceTokenError
from rayplane.tenants.schemas import TenantOut

router = Router(prefix="/v1/marketplace", tags=["marketplace"])
Authorization = Annotated[str | None, Header(include_in_schema=False)]


async def fulfillment(request: Request) -> FulfillmentClient:
    state = app_state(request)
    if state.marketplace is None:
        try:
            # MSAL may fetch the authority's metadata while it is built: not on the event loop.
            state.marketplace = await asyncio.to_thread(FulfillmentClient, state.settings)
        except MarketplaceTokenError:
            raise Unavailable(
                "the Azure Marketplace integration is not configured on this server: an operator must set "
                "RAYPLANE_MARKETPLACE_PUBLISHER_TENANT_ID and the publisher app's client id and secret"
            ) from None
    return state.marketplace


async def _limit(request: Request) -> None:
    state = app_state(request)
    address = request.client.host if request.client else "unknown"
    await ratelimit.hit(
        state.redis,
        f"marketplace:{address}",
        state.settings.marketplace_resolve_rate_per_minute,
        scope="this client address",
    )


@router.post("/resolve", name="marketplace.resolve", response_model=ResolveOut, responses=problems(422, 503))
async def resolve(body: ResolveIn, request: Request, session: Session) -> ResolveOut:
    """The landing page's first call: which purchase its ``?token=`` names. No credential needed;
    limited per client address. The token is not echoed back, and nothing is stored."""
    await _limit(request)
    return await purchase.resolve(session, await fulfillment(request), body.token)


def audit_activation(request: Request, done: purchase.Activation) -> None:
    """Audit an activation like any member's write, the member who activated as its actor
    (the request had no principal until now); the console's landing page does the same."""
    request.state.principal = Principal(
        tenant_id=done.tenant.id,
        role=Role(done.member.role),
        actor_type="member",
        actor_id=done.member.id,
        member_id=done.member.id,
    )
    set_audit_target(request, "marketplace_subscription", done.subscription.id, created=done.created)


@router.post(
    "/activate", name="marketplace.activate", response_model=ActivateOut, responses=problems(403, 404, 409, 422, 503)
)
async def activate(body: ActivateIn, request: Request, session: Session, authorization: Authorization = None) -> Any:
    """Activate the purchase as a signed-in Entra ID user (the purchaser, the beneficiary or an
    admin of the organisation's Rayplane tenant): creates the tenant, or links the one bound to
    the user's Entra tenant, with the user as owner. Repeating it returns the same tenant."""
    await _limit(request)
    state = app_state(request)
    done = await purchase.activate(
        session,
        await fulfillment(request),
        state.entra,
        authorization=authorization,
        token=body.token,
        subscription_id=body.subscription_id,
    )
    audit_activation(request, done)
    return ActivateOut(
        tenant=TenantOut.model_validate(done.tenant),
        subscription=SubscriptionOut.model_validate(done.subscription),
        created=done.created,
    )


@router.post(
    "/webhook",
    name="marketplace.webhook",
    response_model=WebhookAck,
    responses=problems(422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookIn.model_json_schema(ref_template="#/$defs/{model}")}},
        }
    },
)
async def receive_webhook(request: Request, session: Session, authorization: Authorization = None) -> WebhookAck:
    """Called by the Azure Marketplace for each subscription operation (ChangePlan, Suspend, …),
    with an Entra token of the Marketplace's. Stored once per operation id and answered at
    once; a worker confirms the operation with the Fulfillment API and applies it. Any JSON
    object with ``id`` and ``subscriptionId`` is accepted: other fields may be missing, empty
    or unknown (the operation the worker reads is what counts)."""
    state = app_state(request)
    await webhook.authenticate(state.entra, state.settings, authorization)
    payload, document = webhook.parse(await request.body())
    inserted = await webhook.receive(session, payload, document)
    if inserted:
        nudger, operation_id = state.nudger, payload.operation_id

        async def nudge() -> None:
            await nudger.marketplace_event(operation_id)

        after_commit(request, nudge)
    return WebhookAck(status="received" if inserted else "duplicate", operation_id=payload.operation_id.lower())


@router.get("/subscription", name="marketplace.subscription", response_model=TenantPlanOut, responses=problems())
async def tenant_subscription(session: Session, caller: Caller) -> TenantPlanOut:
    """The caller's tenant: its current Marketplace subscription (else the cancelled one) and
    what its plan allows; both null for a tenant not bought through the Marketplace."""
    current = await MarketplaceRepository(session).latest_for_tenant(caller.tenant_id)
    if current is None:
        return TenantPlanOut(subscription=None, plan=None)
    return TenantPlanOut(subscription=SubscriptionOut.model_validate(current), plan=purchase.plan_out(current.plan_id))
