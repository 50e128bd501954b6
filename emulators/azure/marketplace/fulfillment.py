"""SaaS Fulfillment API v2 (``api-version=2018-08-31``), as ``marketplaceapi.microsoft.com/api`` serves it.

Subscriptions:

* ``POST /api/saas/subscriptions/resolve`` (header ``x-ms-marketplace-token``) -> 200
  ``{id, subscriptionName, offerId, planId, quantity?, subscription}``; 400 when the token is
  missing, unknown or expired.
* ``POST /api/saas/subscriptions/{id}/activate`` ``{planId, quantity?}`` -> 200, no body.
* ``GET /api/saas/subscriptions`` -> ``{subscriptions: [...], "@nextLink"?}``,
  ``list_page_size`` (100) per page; ``@nextLink`` is absent on the last page and carries
  ``continuationToken``.
* ``GET /api/saas/subscriptions/{id}`` -> the subscription; 404 when unknown.
* ``GET /api/saas/subscriptions/{id}/listAvailablePlans`` -> ``{plans: [...]}`` (the offer's plans).
* ``PATCH /api/saas/subscriptions/{id}`` ``{planId}`` or ``{quantity}`` -> 202,
  ``Operation-Location`` (and ``Operation-Id``); a webhook follows.
* ``DELETE /api/saas/subscriptions/{id}`` -> 202, ``Operation-Location``; Unsubscribed at once.

Operations:

* ``GET /api/saas/subscriptions/{id}/operations`` -> ``{operations: [...]}``, the InProgress ones.
* ``GET /api/saas/subscriptions/{id}/operations/{operationId}`` -> the operation.
* ``PATCH /api/saas/subscriptions/{id}/operations/{operationId}`` ``{status: Success|Failure}``
  -> 200; 409 when it is no longer InProgress.

Semantics: :mod:`emulators.azure.marketplace.lifecycle`. Errors, auth and api-version:
:mod:`emulators.azure.marketplace.protocol`.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from emulators.azure.marketplace.models import API_VERSION, PlanSpec, public
from emulators.azure.marketplace.protocol import (
    MarketplaceRoute,
    caller_dependency,
    error,
    not_found,
    read_json,
)
from emulators.azure.marketplace.service import MarketplaceService

BASE = "/api/saas/subscriptions"


def _plan_view(plan: PlanSpec) -> dict[str, Any]:
    """A catalog plan as listAvailablePlans shows it."""
    wire = plan.wire()
    dimensions = wire.pop("meteringDimensions")
    price, term_unit = wire.pop("price"), wire.pop("termUnit")
    wire["planComponents"] = {
        "recurrentBillingTerms": [
            {
                "currency": "USD",
                "price": price,
                "termUnit": term_unit,
                "termDescription": "1 month" if term_unit == "P1M" else term_unit,
                "meteredQuantityIncluded": [],
            }
        ],
        "meteringDimensions": dimensions,
    }
    return wire


def create_fulfillment_router(service: MarketplaceService) -> APIRouter:
    """The routes above; every one authenticates the caller and checks ``api-version``."""
    state, lifecycle = service.state, service.lifecycle
    caller = caller_dependency(state, service.keys, service.origin)
    router = APIRouter(route_class=MarketplaceRoute, dependencies=[Depends(caller)], tags=["marketplace"])

    def subscription_or_404(subscription_id: str) -> dict[str, Any]:
        subscription = state.subscription(subscription_id)
        if subscription is None:
            raise not_found(subscription_id)
        return subscription

    def operation_location(operation: dict[str, Any]) -> dict[str, str]:
        url = f"{service.origin}{BASE}/{operation['subscriptionId']}/operations/{operation['id']}"
        return {"Operation-Location": f"{url}?api-version={API_VERSION}", "Operation-Id": str(operation["id"])}

    @router.post(f"{BASE}/resolve")
    async def resolve(request: Request) -> JSONResponse:
        subscription = lifecycle.resolve(request.headers.get("x-ms-marketplace-token"))
        body: dict[str, Any] = {
            "id": subscription["id"],
            "subscriptionName": subscription["name"],
            "offerId": subscription["offerId"],
            "planId": subscription["planId"],
        }
        # "might be empty if the plan is not per seat": left out rather than null.
        if subscription.get("quantity") is not None:
            body["quantity"] = subscription["quantity"]
        body["subscription"] = public(subscription)
        return JSONResponse(body)

    @router.post(BASE + "/{subscription_id}/activate")
    async def activate(subscription_id: str, request: Request) -> Response:
        body = await read_json(request, "activate")
        lifecycle.activate(subscription_or_404(subscription_id), body)
        return Response(status_code=200)

    async def list_subscriptions(request: Request) -> JSONResponse:
        token = request.query_params.get("continuationToken") or ""
        try:
            after = base64.urlsafe_b64decode(token.encode() + b"==").decode() if token else ""
        except (ValueError, UnicodeDecodeError):
            raise error(400, "BadArgument", "The continuation token is invalid.", "continuationToken") from None
        size = state.config.list_page_size
        page = state.subscriptions(after, size + 1)
        body: dict[str, Any] = {"subscriptions": [public(s) for s in page[:size]]}
        if len(page) > size:
            # Opaque to clients, as Azure's (a Cosmos DB continuation) is; here the last id shown.
            next_token = base64.urlsafe_b64encode(str(page[size - 1]["id"]).encode()).decode().rstrip("=")
            query = f"continuationToken={quote(next_token)}&api-version={API_VERSION}"
            body["@nextLink"] = f"{service.origin}{BASE}?{query}"
        return JSONResponse(body)

    # Registered with and without the trailing slash (the spec's path has it); a redirect
    # would drop the bearer token in many clients.
    router.add_api_route(BASE, list_subscriptions, methods=["GET"])
    router.add_api_route(BASE + "/", list_subscriptions, methods=["GET"])

    @router.get(BASE + "/{subscription_id}")
    async def get_subscription(subscription_id: str) -> JSONResponse:
        return JSONResponse(public(subscription_or_404(subscription_id)))

    @router.get(BASE + "/{subscription_id}/listAvailablePlans")
    async def list_plans(subscription_id: str) -> JSONResponse:
        subscription = subscription_or_404(subscription_id)
        offer = state.offer(subscription["offerId"])
        plans = [] if offer is None else [_plan_view(p) for p in offer.plans if not p.is_stop_sell]
        return JSONResponse({"plans": plans})

    @router.patch(BASE + "/{subscription_id}")
    async def update(subscription_id: str, request: Request) -> Response:
        body = await read_json(request, "update")
        subscription = subscription_or_404(subscription_id)
        operation = lifecycle.publisher_update(subscription, body)
        await service.notify(operation, subscription)
        return Response(status_code=202, headers=operation_location(operation))

    @router.delete(BASE + "/{subscription_id}")
    async def unsubscribe(subscription_id: str) -> Response:
        subscription = subscription_or_404(subscription_id)
        if "Delete" not in subscription.get("allowedCustomerOperations", []):
            raise error(400, "BadRequest", "Delete is not an allowed operation for this subscription.", "delete")
        if subscription["saasSubscriptionStatus"] == "Unsubscribed":
            raise error(400, "BadRequest", "The subscription is already Unsubscribed.", "delete")
        operation = lifecycle.start(subscription, "Unsubscribe", source="Partner")
        await service.notify(operation, subscription)
        return Response(status_code=202, headers=operation_location(operation))

    @router.get(BASE + "/{subscription_id}/operations")
    async def pending_operations(subscription_id: str) -> JSONResponse:
        subscription_or_404(subscription_id)
        operations = [public(op) for op in state.operations(subscription_id) if op["status"] == "InProgress"]
        return JSONResponse({"operations": operations})

    @router.get(BASE + "/{subscription_id}/operations/{operation_id}")
    async def get_operation(subscription_id: str, operation_id: str) -> JSONResponse:
        subscription_or_404(subscription_id)
        operation = state.operation(subscription_id, operation_id)
        if operation is None:
            raise error(404, "EntityNotFound", "Failed to get operation", operation_id)
        return JSONResponse(public(operation))

    @router.patch(BASE + "/{subscription_id}/operations/{operation_id}")
    async def answer_operation(subscription_id: str, operation_id: str, request: Request) -> Response:
        body = await read_json(request, "status")
        subscription = subscription_or_404(subscription_id)
        operation = state.operation(subscription_id, operation_id)
        if operation is None:
            raise error(404, "NotFound", "Failed to find operation", "operation")
        lifecycle.answer(subscription, operation, body)
        return Response(status_code=200)

    return router
