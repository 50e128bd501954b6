"""Marketplace Metering API (``api-version=2018-08-31``).

* ``POST /api/batchUsageEvent`` ``{"request": [event, ...]}`` (1 to 25 events, else 400) ->
  200 ``{"count": n, "result": [...]}`` with one result per event, in order.
* ``POST /api/usageEvent`` (one event) -> 200 with the Accepted result; 409 with
  ``additionalInfo.acceptedMessage`` for a Duplicate; 400 for any other status.
* ``GET /api/usageEvents?usageStartDate=...`` -> accepted usage summed per UTC day, resource,
  dimension and plan (optional filters: usageEndDate, offerId, planId, dimension,
  azureSubscriptionId, reconStatus).

An event is ``{resourceId, planId, dimension, quantity, effectiveStartTime}``; its status:

* ``BadArgument`` -- a field missing or malformed (effectiveStartTime not ISO 8601, quantity
  not a number), or effectiveStartTime more than 5 minutes in the future.
* ``ResourceNotFound`` -- no SaaS subscription has that id.
* ``ResourceNotActive`` -- the subscription exists but is not Subscribed (pending, suspended
  or cancelled), the status the current metering docs list for this case.
* ``InvalidDimension`` -- ``planId`` is not the subscription's plan, or ``dimension`` is not
  one of that plan's metering dimensions.
* ``InvalidQuantity`` -- quantity <= 0.
* ``Expired`` -- effectiveStartTime more than 24 hours before the Marketplace clock.
* ``Duplicate`` -- an event for the same resource, dimension and UTC hour was accepted (in
  an earlier call or earlier in this batch); ``error.additionalInfo.acceptedMessage`` is the
  accepted one.
* ``Accepted`` -- recorded, with a new ``usageEventId`` and ``messageTime``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from emulators.azure.marketplace.models import (
    MAX_BATCH_EVENTS,
    MIN_TIME,
    USAGE_WINDOW_SECONDS,
    format_time,
    parse_time,
)
from emulators.azure.marketplace.protocol import MarketplaceRoute, caller_dependency, error, read_json
from emulators.azure.marketplace.service import MarketplaceService
from emulators.azure.marketplace.state import MarketplaceState

_FUTURE_SKEW_SECONDS = 300
_FIELDS = ("resourceId", "planId", "dimension", "quantity", "effectiveStartTime")


class Meter:
    """Judges and records usage events against the subscriptions and the catalog."""

    def __init__(self, state: MarketplaceState) -> None:
        self.state = state

    def submit(self, event: Any, accepted_in_batch: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The result for one event; an Accepted one is stored (and noted in ``accepted_in_batch``)."""
        if not isinstance(event, dict):
            return _rejected({}, "BadArgument", "The usage event is not a JSON object.")
        echo = {name: event.get(name) for name in _FIELDS}
        missing = [name for name in _FIELDS if event.get(name) in (None, "")]
        if missing:
            return _rejected(echo, "BadArgument", f"The {missing[0]} is required.")
        quantity, start = event["quantity"], parse_time(str(event["effectiveStartTime"]))
        if isinstance(quantity, bool) or not isinstance(quantity, int | float):
            return _rejected(echo, "BadArgument", "The quantity must be a number.")
        if start is None:
            return _rejected(echo, "BadArgument", "The effectiveStartTime is not a valid date and time.")
        now = self.state.now()
        if start > now + _FUTURE_SKEW_SECONDS:
            return _rejected(echo, "BadArgument", "The effectiveStartTime is in the future.")
        subscription = self.state.subscription(str(event["resourceId"]))
        if subscription is None:
            return _rejected(echo, "ResourceNotFound", "The usage resource provided is invalid.")
        if subscription["saasSubscriptionStatus"] != "Subscribed":
            return _rejected(echo, "ResourceNotActive", "The resource is suspended or was never activated.")
        plan = self.state.plan(subscription["offerId"], subscription["planId"])
        if event["planId"] != subscription["planId"] or plan is None or event["dimension"] not in plan.dimension_ids():
            message = "The dimension for which the usage is passed is invalid for this offer/plan."
            return _rejected(echo, "InvalidDimension", message)
        if quantity <= 0:
            return _rejected(echo, "InvalidQuantity", "The quantity passed is lower or equal to 0.")
        if start < now - USAGE_WINDOW_SECONDS:
            return _rejected(echo, "Expired", "The usage event is older than 24 hours.")
        hour = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H")
        key = f"{str(event['resourceId']).lower()}/{event['dimension']}/{hour}"
        previous = accepted_in_batch.get(key) or self.state.usage(key)
        if previous is not None:
            original = {**_public_event(previous), "status": "Duplicate"}
            result = _rejected(echo, "Duplicate", "This usage event already exist.", code="Conflict")
            result["error"]["additionalInfo"] = {"acceptedMessage": original}
            return result
        accepted = {
            "usageEventId": str(uuid.uuid4()),
            "status": "Accepted",
            "messageTime": format_time(now),
            **echo,
            "_offerId": subscription["offerId"],
            "_azureSubscriptionId": subscription.get("_azureSubscriptionId"),
            "_hour": hour,
        }
        self.state.put_usage(key, accepted)
        accepted_in_batch[key] = accepted
        return _public_event(accepted)

    def summary(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /api/usageEvents``: accepted quantities per day, resource, dimension and plan."""
        start = parse_time(query.get("usageStartDate", ""))
        if start is None:
            raise error(400, "BadArgument", "usageStartDate is required (ISO 8601).", "usageStartDate")
        end = parse_time(query["usageEndDate"]) if query.get("usageEndDate") else self.state.now()
        if end is None:
            raise error(400, "BadArgument", "usageEndDate is not a valid date.", "usageEndDate")
        wanted = {k: query[k] for k in ("offerId", "planId", "dimension", "azureSubscriptionId") if query.get(k)}
        if query.get("reconStatus") not in (None, "", "Accepted"):
            return []
        totals: dict[tuple[str, ...], dict[str, Any]] = defaultdict(dict)
        for event in self.state.usage_events():
            at = parse_time(str(event["effectiveStartTime"]))
            fields = {
                "offerId": event["_offerId"],
                "planId": event["planId"],
                "dimension": event["dimension"],
                "azureSubscriptionId": event.get("_azureSubscriptionId") or "",
            }
            if at is None or not start <= at <= end or any(fields[k] != v for k, v in wanted.items()):
                continue
            day = str(event["_hour"])[:10]
            row = totals[(day, str(event["resourceId"]), str(event["dimension"]), str(event["planId"]))]
            if not row:
                row.update(
                    usageDate=f"{day}T00:00:00Z",
                    usageResourceId=event["resourceId"],
                    **fields,
                    planName="",
                    offerName="",
                    offerType="SaaS",
                    reconStatus="Accepted",
                    submittedQuantity=0.0,
                    processedQuantity=0.0,
                    submittedCount=0,
                )
            row["submittedQuantity"] += float(event["quantity"])
            row["processedQuantity"] += float(event["quantity"])
            row["submittedCount"] += 1
        return [totals[key] for key in sorted(totals)]


def _public_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("_")}


def _rejected(echo: dict[str, Any], status: str, message: str, code: str | None = None) -> dict[str, Any]:
    """A result that was not accepted: no usageEventId, ``messageTime`` 0001-01-01, an ``error``."""
    return {"status": status, "messageTime": MIN_TIME, **echo, "error": {"message": message, "code": code or status}}


def create_metering_router(service: MarketplaceService) -> APIRouter:
    """The metering routes; every one authenticates the caller and checks ``api-version``."""
    meter = Meter(service.state)
    caller = caller_dependency(service.state, service.keys, service.origin)
    router = APIRouter(route_class=MarketplaceRoute, dependencies=[Depends(caller)], tags=["marketplace"])

    @router.post("/api/batchUsageEvent")
    async def batch(request: Request) -> JSONResponse:
        body = await read_json(request, "batchUsageEventRequest")
        events = body.get("request")
        if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH_EVENTS:
            count = len(events) if isinstance(events, list) else 0
            message = f"The batch must hold 1 to {MAX_BATCH_EVENTS} usage events; it holds {count}."
            detail = {"message": message, "target": "request", "code": "BadArgument"}
            raise error(400, "BadArgument", "One or more errors have occurred.", "batchUsageEventRequest", [detail])
        accepted: dict[str, dict[str, Any]] = {}
        results = [meter.submit(event, accepted) for event in events]
        return JSONResponse({"count": len(results), "result": results})

    @router.post("/api/usageEvent")
    async def single(request: Request) -> JSONResponse:
        result = meter.submit(await read_json(request, "usageEventRequest"), {})
        status = result["status"]
        if status == "Accepted":
            return JSONResponse(result)
        if status == "Duplicate":
            problem = result["error"]
            body = {"additionalInfo": problem["additionalInfo"], "message": problem["message"], "code": "Conflict"}
            return JSONResponse(body, status_code=409)
        detail = {"message": result["error"]["message"], "target": "usageEventRequest", "code": status}
        raise error(400, "BadArgument", "One or more errors have occurred.", "usageEventRequest", [detail])

    @router.get("/api/usageEvents")
    async def usage_events(request: Request) -> JSONResponse:
        return JSONResponse(meter.summary(dict(request.query_params)))

    return router
