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
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import FieldError, InvalidInput, Unauthenticated
from rayplane.db.base import utcnow
from rayplane.identity.auth import bearer_token
from rayplane.identity.entra import EntraValidator
from rayplane.logs import get_logger
from rayplane.marketplace.repository import MarketplaceRepository
from rayplane.marketplace.schemas import WebhookIn
from rayplane.marketplace.token import MARKETPLACE_RESOURCE
from rayplane.settings import Settings

log = get_logger("rayplane.marketplace.webhook")

# How long the beat sweep leaves a new event to the nudged worker before sending it again.
INTAKE_HOLD = timedelta(seconds=15)


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


def parse(raw: bytes) -> tuple[WebhookIn, dict[str, Any]]:
    """The payload, validated, and as sent (what is stored)."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise InvalidInput.on("body", "not JSON") from None
    if not isinstance(document, dict):
        raise InvalidInput.on("body", "must be a JSON object")
    try:
        return WebhookIn.model_validate(document), document
    except ValidationError as exc:
        errors = [FieldError("body." + ".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in exc.errors()[:10]]
        raise InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors) from None


async def receive(session: AsyncSession, payload: WebhookIn, document: dict[str, Any]) -> bool:
    """Store the event; True when it is new (then the caller nudges a worker after commit)."""
    now = utcnow()
    inserted = await MarketplaceRepository(session).insert_event(
        operation_id=payload.id,
        subscription_id=payload.subscriptionId,
        action=payload.action,
        time_stamp=payload.timeStamp,
        payload=document,
        received_at=now,
        next_attempt_at=now + INTAKE_HOLD,
    )
    log.info(
        "marketplace_webhook",
        operation_id=payload.id,
        subscription_id=payload.subscriptionId,
        action=payload.action,
        duplicate=not inserted,
    )
    return inserted
