"""Shapes of the Marketplace surface: constants, settings, the offer catalog, test-control bodies.

Field names on the wire are Azure's camelCase; the Python models use snake_case with camelCase
aliases (``populate_by_name``), so test-control bodies may use either spelling.

Time: every instant the Marketplace reasons about (term dates, usage-event age, the
auto-accept deadline of an operation) comes from :func:`marketplace_now`, i.e. wall clock plus
``now_offset_seconds``, so a test can move the Marketplace's clock forward without waiting.
JWTs and webhook retry timers use the real clock: the receiving side checks them against its own.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from emulators.azure.keys import ENTRA_NAMESPACE

API_VERSION = "2018-08-31"
#: The Marketplace API's Entra resource (and app) id: the ``aud`` of the tokens publishers
#: present, and the ``appid``/``azp`` of the tokens the webhook carries.
MARKETPLACE_RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
DEFAULT_PUBLISHER_TENANT = str(uuid.uuid5(ENTRA_NAMESPACE, "marketplace-publisher-tenant"))
DEFAULT_PUBLISHER_APP_ID = str(uuid.uuid5(ENTRA_NAMESPACE, "marketplace-publisher-app"))
#: What Azure prints for "no time" (a .NET ``DateTime.MinValue``), e.g. a rejected event's messageTime.
MIN_TIME = "0001-01-01T00:00:00"
MAX_BATCH_EVENTS = 25
USAGE_WINDOW_SECONDS = 24 * 3600

SubscriptionStatus = Literal["PendingFulfillmentStart", "Subscribed", "Suspended", "Unsubscribed"]
#: Actions whose outcome waits for the publisher's ``PATCH .../operations/{id}`` (or the auto-accept).
ACK_ACTIONS = frozenset({"ChangePlan", "ChangeQuantity"})
KNOWN_ACTIONS = frozenset({"ChangePlan", "ChangeQuantity", "Renew", "Suspend", "Unsubscribe", "Reinstate"})
TokenFault = Literal[
    "valid", "missing", "wrong_aud", "wrong_tid", "wrong_azp", "wrong_iss", "expired", "not_yet_valid", "bad_signature"
]


class CamelModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The model as Azure spells it."""
        return self.model_dump(by_alias=True)


# -- settings ------------------------------------------------------------------------------
class MarketplaceConfig(BaseModel):
    """Test-controlled settings (``PUT /_emulator/marketplace/config`` merges fields into it).

    * ``publisher_id``: the ``publisherId`` every subscription and operation carries.
    * ``publisher_tenant`` / ``publisher_app_id``: ``tid`` and ``aud`` of the webhook's JWT.
    * ``enforce_publisher_app``: refuse (403) API tokens not issued to ``publisher_app_id`` in
      ``publisher_tenant``, as Azure refuses apps that did not publish the offer.
    * ``webhook_url`` / ``webhook_ca`` (a CA bundle path or PEM text for an https receiver),
      ``webhook_timeout_seconds``; a failed delivery (no answer or not 2xx) is tried again
      after ``webhook_backoff_seconds * 2**(n-1)`` (at most ``webhook_backoff_max_seconds``)
      until ``webhook_max_attempts`` attempts were made.
    * ``auto_accept_seconds``: an unanswered ChangePlan/ChangeQuantity (and Reinstate, with
      ``reinstate_requires_ack``) succeeds this long after it was created.
    * ``now_offset_seconds``: added to the wall clock wherever the Marketplace reads the time.
    * ``list_page_size``: subscriptions per page of ``GET /api/saas/subscriptions``.
    * ``purchase_token_ttl_seconds``: how long a landing-page token resolves.
    * ``auth_error_status``: what a missing or invalid bearer token gets (401, or 403 as the
      Marketplace documentation says).
    """

    model_config = ConfigDict(extra="forbid")

    publisher_id: str = "rayplane"
    publisher_tenant: str = DEFAULT_PUBLISHER_TENANT
    publisher_app_id: str = DEFAULT_PUBLISHER_APP_ID
    enforce_publisher_app: bool = False
    webhook_url: str | None = None
    webhook_ca: str | None = None
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_max_attempts: int = Field(5, ge=1)
    webhook_backoff_seconds: float = Field(1.0, ge=0)
    webhook_backoff_max_seconds: float = Field(60.0, ge=0)
    webhook_token_lifetime_seconds: int = Field(3600, gt=0)
    auto_accept_seconds: float = Field(10.0, ge=0)
    reinstate_requires_ack: bool = True
    now_offset_seconds: float = 0.0
    list_page_size: int = Field(100, ge=1)
    purchase_token_ttl_seconds: int = Field(24 * 3600, gt=0)
    auth_error_status: Literal[401, 403] = 401


# -- offer catalog --------------------------------------------------------------------------
class MeteringDimension(CamelModel):
    """A custom meter of a plan (``planComponents.meteringDimensions[]`` in listAvailablePlans)."""

    id: str
    display_name: str = ""
    unit_of_measure: str = "hour"
    price_per_unit: float = 0.0
    currency: str = "USD"


class PlanSpec(CamelModel):
    """One plan of an offer, with the fields listAvailablePlans shows and its meters."""

    plan_id: str
    display_name: str = ""
    description: str = ""
    is_private: bool = False
    is_price_per_seat: bool = False
    min_quantity: int | None = None
    max_quantity: int | None = None
    has_free_trials: bool = False
    is_stop_sell: bool = False
    market: str = "US"
    term_unit: Literal["P1M", "P1Y", "P2Y", "P3Y"] = "P1M"
    price: float = 0.0
    metering_dimensions: list[MeteringDimension] = Field(default_factory=list)

    def dimension_ids(self) -> set[str]:
        return {d.id for d in self.metering_dimensions}


class OfferSpec(CamelModel):
    """An offer and its plans."""

    offer_id: str
    display_name: str = ""
    plans: list[PlanSpec] = Field(min_length=1)

    def plan(self, plan_id: str) -> PlanSpec | None:
        return next((p for p in self.plans if p.plan_id == plan_id), None)


class Catalog(CamelModel):
    """Body of ``PUT /_emulator/marketplace/offers``: every offer the publisher sells."""

    offers: list[OfferSpec]

    def offer(self, offer_id: str) -> OfferSpec | None:
        return next((o for o in self.offers if o.offer_id == offer_id), None)


def _dimensions() -> list[MeteringDimension]:
    return [
        MeteringDimension(id="vcpu_hours", display_name="vCPU hours", unit_of_measure="vCPU hour"),
        MeteringDimension(id="gpu_hours", display_name="GPU hours", unit_of_measure="GPU hour"),
    ]


def default_catalog() -> Catalog:
    """Offer ``rayplane`` with flat-fee plans starter, team, enterprise, each metering
    ``vcpu_hours`` and ``gpu_hours``."""
    plans = [
        PlanSpec(plan_id=pid, display_name=name, description=f"Rayplane {name}", metering_dimensions=_dimensions())
        for pid, name in (("starter", "Starter"), ("team", "Team"), ("enterprise", "Enterprise"))
    ]
    return Catalog(offers=[OfferSpec(offer_id="rayplane", display_name="Rayplane", plans=plans)])


# -- test-control bodies -------------------------------------------------------------------
class Party(CamelModel):
    """A purchaser or beneficiary (``emailId`` may also be given as ``email``)."""

    email_id: str = Field("buyer@contoso.test", validation_alias=AliasChoices("emailId", "email_id", "email"))
    object_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    puid: str | None = None


class PurchaseRequest(CamelModel):
    """Body of ``POST /_emulator/marketplace/purchases``: a customer buys a plan."""

    offer_id: str = "rayplane"
    plan_id: str = "starter"
    quantity: int | None = None
    name: str | None = None
    subscription_id: str | None = None
    purchaser: Party = Field(default_factory=Party)
    beneficiary: Party | None = None
    is_free_trial: bool = False
    is_test: bool = False
    auto_renew: bool = True
    allowed_customer_operations: list[str] = Field(default_factory=lambda: ["Delete", "Update", "Read"])
    azure_subscription_id: str | None = None


class WebhookRequest(CamelModel):
    """Body of ``POST /_emulator/marketplace/subscriptions/{id}/webhook``: Azure acts.

    ``deliver=False`` records the operation (and its effect) without sending it, for a later
    ``POST .../operations/{id}/deliver`` (reordering). ``copies`` sends the same payload that
    many times (duplicates). ``token`` picks a valid or a deliberately broken JWT. ``wait``
    makes the first attempt of every copy before answering, so the answer shows its status.
    """

    action: str
    plan_id: str | None = None
    quantity: int | None = None
    time_stamp: str | None = None
    operation_request_source: str = "Azure"
    deliver: bool = True
    copies: int = Field(1, ge=1, le=20)
    token: TokenFault = "valid"
    wait: bool = True


class DeliverRequest(CamelModel):
    """Body of ``POST /_emulator/marketplace/operations/{id}/deliver``: send a stored payload again."""

    token: TokenFault = "valid"
    copies: int = Field(1, ge=1, le=20)
    wait: bool = True


# -- time ------------------------------------------------------------------------------------
def marketplace_now(config: MarketplaceConfig) -> float:
    """The Marketplace's clock: wall clock plus ``now_offset_seconds``."""
    return time.time() + config.now_offset_seconds


def format_time(epoch: float) -> str:
    """``2022-03-01T22:59:45.546857Z``: UTC, microseconds, ``Z``, as Azure prints instants."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_day(day: dt.date) -> str:
    """``2022-03-07T00:00:00Z``: a term boundary."""
    return f"{day.isoformat()}T00:00:00Z"


def parse_time(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 instant; a time without offset is UTC. None if unparseable."""
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def add_term(start: dt.date, term_unit: str) -> dt.date:
    """The last day of a term of ``term_unit`` (P1M, P1Y, P2Y, P3Y) starting on ``start``."""
    months = {"P1M": 1, "P1Y": 12, "P2Y": 24, "P3Y": 36}.get(term_unit, 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    # Clamp the day (31 January + 1 month is the last day of February), then end the day before.
    for day in range(start.day, 27, -1):
        try:
            return dt.date(year, month, day) - dt.timedelta(days=1)
        except ValueError:
            continue
    return dt.date(year, month, min(start.day, 28)) - dt.timedelta(days=1)


def public(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without the emulator's bookkeeping fields (names starting with ``_``)."""
    return {k: v for k, v in document.items() if not k.startswith("_")}
