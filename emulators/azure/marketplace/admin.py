"""Test control of the Marketplace, under ``/_emulator/marketplace`` (not an Azure API).

* ``GET|PUT /config`` -- :class:`MarketplaceConfig`; PUT merges the given fields (422 on a bad one).
* ``GET|PUT /offers`` -- the offer catalog (:class:`Catalog`); PUT replaces it.
* ``POST /purchases`` (:class:`PurchaseRequest`) -> 201 ``{subscription, token, landingPageQuery}``:
  a subscription in PendingFulfillmentStart and its landing-page token.
* ``POST /subscriptions/{id}/token`` -> ``{token}``: a new landing-page token ("Manage account").
* ``GET /subscriptions`` / ``GET /subscriptions/{id}`` -> ``{subscription, operations,
  deliveries}`` per subscription (bookkeeping fields included).
* ``POST /subscriptions/{id}/webhook`` (:class:`WebhookRequest`) -> 201 ``{operation, deliveries}``:
  Azure performs ``action`` on the subscription and calls the webhook.
* ``GET /operations[?subscriptionId=]`` -- every operation; ``POST /operations/{id}/deliver``
  (:class:`DeliverRequest`) -> ``{deliveries}``: send its stored payload again.
* ``GET /deliveries[?subscriptionId=&operationId=]`` -- deliveries with every attempt.
* ``GET /usage[?resourceId=]`` -- accepted usage events.
* ``POST /tick`` -- run the background round now (auto-accepts, due webhook attempts).
* ``POST /reset`` -- forget all Marketplace state, settings and catalog included.

Errors are FastAPI's ``{"detail": ...}``, as the other test-control routes answer; Azure-shaped
validation failures (from the life cycle) keep their status and Azure body under ``detail``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from pydantic import ValidationError

from emulators.azure.marketplace.models import (
    Catalog,
    DeliverRequest,
    MarketplaceConfig,
    PurchaseRequest,
    WebhookRequest,
)
from emulators.azure.marketplace.protocol import MarketplaceError
from emulators.azure.marketplace.service import MarketplaceService


def _http(exc: MarketplaceError) -> HTTPException:
    return HTTPException(exc.status, exc.body)


def create_admin_router(service: MarketplaceService) -> APIRouter:
    """The routes above, over ``service``."""
    state, lifecycle = service.state, service.lifecycle
    router = APIRouter(prefix="/_emulator/marketplace", tags=["emulator-marketplace"])

    def subscription_or_404(subscription_id: str) -> dict[str, Any]:
        subscription = state.subscription(subscription_id)
        if subscription is None:
            raise HTTPException(404, f"no subscription {subscription_id}")
        return subscription

    def deliveries(subscription_id: str | None = None, operation_id: str | None = None) -> list[dict[str, Any]]:
        return [
            d
            for d in state.deliveries()
            if (subscription_id is None or d["subscriptionId"] == subscription_id.lower())
            and (operation_id is None or d["operationId"] == operation_id.lower())
        ]

    def detailed(subscription: dict[str, Any]) -> dict[str, Any]:
        return {
            "subscription": subscription,
            "operations": state.operations(subscription["id"]),
            "deliveries": deliveries(subscription["id"]),
        }

    @router.get("/config")
    async def get_config() -> dict[str, Any]:
        return state.config.model_dump()

    @router.put("/config")
    async def put_config(body: dict[str, Any]) -> dict[str, Any]:
        try:
            config = MarketplaceConfig.model_validate({**state.config.model_dump(), **body})
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None
        state.set_config(config)
        return config.model_dump()

    @router.get("/offers")
    async def get_offers() -> dict[str, Any]:
        return state.catalog.wire()

    @router.put("/offers")
    async def put_offers(body: Catalog) -> dict[str, Any]:
        state.set_catalog(body)
        return body.wire()

    @router.post("/purchases", status_code=201)
    async def purchase(body: PurchaseRequest) -> dict[str, Any]:
        try:
            subscription = lifecycle.purchase(body)
        except MarketplaceError as exc:
            raise _http(exc) from None
        token = lifecycle.issue_token(subscription["id"])
        return {"subscription": subscription, "token": token, "landingPageQuery": f"token={quote(token, safe='')}"}

    @router.post("/subscriptions/{subscription_id}/token")
    async def new_token(subscription_id: str) -> dict[str, str]:
        return {"token": lifecycle.issue_token(subscription_or_404(subscription_id)["id"])}

    @router.get("/subscriptions")
    async def list_subscriptions() -> dict[str, Any]:
        return {"value": [detailed(s) for s in state.subscriptions()]}

    @router.get("/subscriptions/{subscription_id}")
    async def get_subscription(subscription_id: str) -> dict[str, Any]:
        return detailed(subscription_or_404(subscription_id))

    @router.post("/subscriptions/{subscription_id}/webhook", status_code=201)
    async def webhook(subscription_id: str, body: WebhookRequest) -> dict[str, Any]:
        subscription = subscription_or_404(subscription_id)
        try:
            operation = lifecycle.start(
                subscription,
                body.action,
                plan_id=body.plan_id,
                quantity=body.quantity,
                source=body.operation_request_source,
                time_stamp=body.time_stamp,
            )
        except MarketplaceError as exc:
            raise _http(exc) from None
        sent = await service.notify(
            operation, subscription, deliver=body.deliver, fault=body.token, copies=body.copies, wait=body.wait
        )
        return {"operation": state.operation(subscription["id"], operation["id"]), "deliveries": sent}

    @router.get("/operations")
    async def list_operations(subscriptionId: str | None = None) -> dict[str, Any]:  # noqa: N803 - Azure's casing
        return {"value": state.operations(subscriptionId)}

    @router.post("/operations/{operation_id}/deliver")
    async def deliver(operation_id: str, body: DeliverRequest) -> dict[str, Any]:
        operation = state.find_operation(operation_id)
        if operation is None or "_payload" not in operation:
            raise HTTPException(404, f"no operation {operation_id}")
        sent = await service.redeliver(operation, fault=body.token, copies=body.copies, wait=body.wait)
        return {"deliveries": sent}

    @router.get("/deliveries")
    async def list_deliveries(subscriptionId: str | None = None, operationId: str | None = None) -> dict[str, Any]:  # noqa: N803
        return {"value": deliveries(subscriptionId, operationId)}

    @router.get("/usage")
    async def usage(resourceId: str | None = None) -> dict[str, Any]:  # noqa: N803
        return {"value": state.usage_events(resourceId)}

    @router.post("/tick")
    async def tick() -> dict[str, str]:
        service.tick()
        return {"status": "ok"}

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    return router
