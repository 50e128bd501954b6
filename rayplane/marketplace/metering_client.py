"""The Marketplace Metering API client: ``POST /api/batchUsageEvent`` (``api-version=2018-08-31``).

Contract:
- ``post_batch(events)`` sends 1 to 25 usage events in one call and returns one
  ``UsageResult`` per event, in the order sent. The Marketplace answers in that order and
  echoes each event's resource, dimension and start time; a result is matched back by those
  fields when they are there, else by position.
- Transport, auth and retries are ``FulfillmentClient.request``'s: bearer token from MSAL,
  request-id headers, 429/5xx/transport errors retried with backoff and ``Retry-After``.
  Retrying a batch is safe *because* of the Marketplace's own rule: one event per resource,
  dimension and UTC hour, so an event the first attempt recorded comes back ``Duplicate``
  (with the accepted event's id), never counted twice.
- Whatever is left after the retries raises ``MeteringError``: ``retriable`` when the
  Marketplace was unreachable or overloaded (the caller leaves the events ``submitted`` and
  sends them again next run), not when it refused the call itself (auth, malformed batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from rayplane.common.upstream import one_line
from rayplane.marketplace.client import FulfillmentClient, FulfillmentError
from rayplane.settings import Settings

BATCH_PATH = "/api/batchUsageEvent"
MAX_BATCH = 25


class MeteringError(RuntimeError):
    """The batch call failed as a whole; ``retriable`` when it may succeed if sent again."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True)
class UsageEvent:
    """One quantity of one dimension for one subscription and UTC hour."""

    resource_id: str
    plan_id: str
    dimension: str
    quantity: Decimal
    hour: datetime

    @property
    def start_time(self) -> str:
        """``effectiveStartTime``: the hour's start, UTC, ``Z``-suffixed."""
        return self.hour.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def wire(self) -> dict[str, Any]:
        return {
            "resourceId": self.resource_id,
            "planId": self.plan_id,
            "dimension": self.dimension,
            # A JSON number; six decimals is what the records store.
            "quantity": float(self.quantity),
            "effectiveStartTime": self.start_time,
        }

    def key(self) -> tuple[str, str, str]:
        return (self.resource_id.lower(), self.dimension, self.hour.astimezone(UTC).strftime("%Y-%m-%dT%H"))


@dataclass(frozen=True)
class UsageResult:
    """The Marketplace's verdict on one event.

    ``status`` is Accepted, Duplicate, Expired, ResourceNotFound, ResourceNotActive,
    InvalidDimension, InvalidQuantity, BadArgument, ... For Accepted, ``usage_event_id`` and
    ``message_time`` are the new event's; for Duplicate they are those of the event the
    Marketplace accepted earlier (``error.additionalInfo.acceptedMessage``), with its quantity.
    """

    status: str
    usage_event_id: str | None
    message_time: datetime | None
    accepted_quantity: float | None
    message: str | None


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _result(raw: dict[str, Any]) -> UsageResult:
    status = str(raw.get("status") or "Unknown")
    error = raw.get("error") if isinstance(raw.get("error"), dict) else {}
    assert isinstance(error, dict)
    if status == "Duplicate":
        info = error.get("additionalInfo") if isinstance(error.get("additionalInfo"), dict) else {}
        accepted = info.get("acceptedMessage") if isinstance(info, dict) else None
        accepted = accepted if isinstance(accepted, dict) else {}
        quantity = accepted.get("quantity")
        return UsageResult(
            status=status,
            usage_event_id=str(accepted["usageEventId"]) if accepted.get("usageEventId") else None,
            message_time=_time(accepted.get("messageTime")),
            accepted_quantity=float(quantity) if isinstance(quantity, int | float) else None,
            message=str(error.get("message") or "") or None,
        )
    return UsageResult(
        status=status,
        usage_event_id=str(raw["usageEventId"]) if raw.get("usageEventId") else None,
        message_time=_time(raw.get("messageTime")),
        accepted_quantity=None,
        message=(str(error.get("message") or "") or None) if error else None,
    )


def _echo_key(raw: dict[str, Any]) -> tuple[str, str, str] | None:
    start = _time(raw.get("effectiveStartTime"))
    if not raw.get("resourceId") or not raw.get("dimension") or start is None:
        return None
    return (str(raw["resourceId"]).lower(), str(raw["dimension"]), start.astimezone(UTC).strftime("%Y-%m-%dT%H"))


class MeteringClient:
    """Posts usage batches. ``token``/``transport`` are for tests; normally from ``settings``."""

    def __init__(
        self,
        settings: Settings,
        *,
        fulfillment: FulfillmentClient | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: int = 3,
        timeout: float = 30.0,
    ) -> None:
        self._http = fulfillment or FulfillmentClient(settings, transport=transport, retries=retries, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def post_batch(self, events: list[UsageEvent]) -> list[UsageResult]:
        """Submit ``events`` (1 to 25) in one call; their results, in the same order."""
        if not 1 <= len(events) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} events, not {len(events)}")
        try:
            response = self._http.request("POST", BATCH_PATH, json={"request": [e.wire() for e in events]})
        except FulfillmentError as exc:
            raise MeteringError(one_line(str(exc), 300), retriable=exc.retriable) from None
        try:
            body = response.json()
        except ValueError:
            raise MeteringError("the Marketplace answered a batch with no JSON body", retriable=True) from None
        raw = body.get("result") if isinstance(body, dict) else None
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise MeteringError("the Marketplace's batch answer has no result list", retriable=True)
        by_key = {k: r for r in raw if (k := _echo_key(r)) is not None}
        results: list[UsageResult] = []
        for i, event in enumerate(events):
            match = by_key.get(event.key()) or (raw[i] if i < len(raw) else None)
            if match is None:
                results.append(UsageResult("Missing", None, None, None, "no result for this event in the answer"))
            else:
                results.append(_result(match))
        return results
