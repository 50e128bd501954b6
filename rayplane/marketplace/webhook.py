"""Webhook intake: authenticate the Marketplace's call, store the event once, answer fast.

Authentication (DESIGN.md section 7): the bearer JWT must verify against the publisher
tenant's JWKS (from ``{entra_authority}/{publisher tid}/v2.0/.well-known/openid-configuration``),
with ``aud`` = Rayplane's publisher app client id, ``tid`` = the publisher tenant, ``azp`` or
``appid`` = the Marketplace API's app id, and a valid lifetime. Any failure is
``Unauthenticated`` (401) and happens before the body is even parsed, so nothing is recorded
for an unauthenticated caller, whatever it sent.

Intake: the event is inserted under its operation id with ``ON CONFLICT DO NOTHING``; a
second delivery of the same operation (the Marketplace retries for hours) finds the row and
changes nothing. Processing is a worker's job (``rayplane.marketplace.processing``): the
caller nudges one after commit when the row is new, and a beat sweep picks up any event
still ``received`` after ``INTAKE_HOLD``. Nothing here calls the Marketplace, so the answer
takes one insert (plus, once per ``jwks_cache_seconds``, the metadata and JWKS fetch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import InvalidInput, Unauthenticated
from rayplane.db.base import utcnow
from rayplane.identity.auth import bearer_token
from rayplane.identity.entra import EntraValidator
from rayplane.logs import get_logger
from rayplane.marketplace.repository import MarketplaceRepository
from rayplane.marketplace.token import MARKETPLACE_RESOURCE
from rayplane.settings import Settings

log = get_logger("rayplane.marketplace.webhook")

# How long the beat sweep leaves a new event to the nudged worker before sending it again.
INTAKE_HOLD = timedelta(seconds=15)
MAX_ID = 64  # the column's width; Marketplace ids are GUIDs
MAX_ACTION = 40
NUL = "\x00"


async def authenticate(validator: EntraValidator, settings: Settings, authorization: str | None) -> dict[str, Any]:
    """The verified claims of the webhook's bearer token; ``Unauthenticated`` otherwise."""
    audience = settings.marketplace_client_id or settings.azure_client_id
    tenant = settings.marketplace_publisher_tenant_id
    if not audience or not tenant:
        log.error("marketplace_webhook_unconfigured")
        raise Unauthenticated("the Marketplace webhook is not configured on this server")
    token = bearer_token(authorization)
    return await validator.validate_app(
        token, tenant_id=tenant, audience=audience, app_ids=frozenset({MARKETPLACE_RESOURCE})
    )


@dataclass(frozen=True)
class Intake:
    """What intake keeps of a webhook body: the operation it names, and what it claims.

    Only the two ids are required; ``action`` and ``time_stamp`` are the body's claims, kept
    for operators (empty or None when missing or malformed). The worker acts on the
    operation it GETs from the Fulfillment API, never on these."""

    operation_id: str
    subscription_id: str
    action: str
    time_stamp: datetime | None


def _id(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID or NUL in value:
        raise InvalidInput.on(f"body.{name}", f"a non-empty string of at most {MAX_ID} characters")
    return value.strip()


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    # Microsoft's documented examples carry no offset: those times are UTC.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _storable(value: Any) -> Any:
    """The document without NUL characters, which a JSONB column cannot hold."""
    if isinstance(value, str):
        return value.replace(NUL, "")
    if isinstance(value, dict):
        return {str(k).replace(NUL, ""): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def parse(raw: bytes) -> tuple[Intake, dict[str, Any]]:
    """The intake and the document to store, from any JSON object with the two ids.

    Tolerant on purpose: the Marketplace asks publishers not to deserialise webhooks
    strictly, and a 4xx to a ChangePlan or ChangeQuantity webhook rejects the customer's
    change. So unknown fields, empty ones (``"quantity": ""``) and malformed claims are
    accepted; only a body that names no operation or subscription is refused (422)."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise InvalidInput.on("body", "not JSON") from None
    if not isinstance(document, dict):
        raise InvalidInput.on("body", "must be a JSON object")
    operation_id, subscription_id = _id(document, "id"), _id(document, "subscriptionId")
    action = document.get("action")
    claimed = action.replace(NUL, "")[:MAX_ACTION] if isinstance(action, str) else ""
    intake = Intake(operation_id, subscription_id, claimed, _time(document.get("timeStamp")))
    return intake, _storable(document)


async def receive(session: AsyncSession, payload: Intake, document: dict[str, Any]) -> bool:
    """Store the event; True when it is new (then the caller nudges a worker after commit)."""
    now = utcnow()
    inserted = await MarketplaceRepository(session).insert_event(
        operation_id=payload.operation_id,
        subscription_id=payload.subscription_id,
        action=payload.action,
        time_stamp=payload.time_stamp,
        payload=document,
        received_at=now,
        next_attempt_at=now + INTAKE_HOLD,
    )
    log.info(
        "marketplace_webhook",
        operation_id=payload.operation_id,
        subscription_id=payload.subscription_id,
        action=payload.action,
        duplicate=not inserted,
    )
    return inserted
