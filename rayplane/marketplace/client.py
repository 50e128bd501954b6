"""The SaaS Fulfillment API v2 client (``api-version=2018-08-31``), over httpx.

Contract:
- Every call sends ``Authorization: Bearer`` from ``MarketplaceToken`` (MSAL's cache hands the
  same token back until it nears expiry), ``api-version``, and fresh ``x-ms-requestid`` /
  ``x-ms-correlationid`` GUIDs; one request id is kept across the retries of a call, so the
  Marketplace's logs show them as one request.
- 429 and 5xx (and transport errors) are retried up to ``retries`` times with exponential
  backoff and full jitter, capped at ``max_backoff`` seconds; a ``Retry-After`` header is
  honoured up to that cap. Retrying is safe for every call here: resolve and the GETs are
  reads, activate is idempotent on the Marketplace's side (same plan: 200), and a repeated
  PATCH of an operation is answered 409 once the first one took effect (callers re-read the
  operation). What is left after the retries raises ``FulfillmentError``.
- Any other status >= 400 raises ``FulfillmentError`` at once, with the status and the
  Marketplace's ``code``/``message``; the landing-page token never appears in a message.
  Entra refusing the publisher app's credentials is a 401 ``PublisherTokenRefused``.
- Results are typed (pydantic models, extra fields ignored, Azure's camelCase read by alias).
- TLS trust: ``settings.ca_bundle`` when set (the emulator's CA in tests), else the system store.
The client is synchronous (workers call it directly; the API calls it in a thread, as MSAL is
synchronous too) and thread-safe: httpx.Client and MarketplaceToken both are.
"""

from __future__ import annotations

import random
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urljoin

import httpx
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from rayplane.common.upstream import one_line
from rayplane.logs import get_logger
from rayplane.marketplace.token import MarketplaceToken, MarketplaceTokenError
from rayplane.settings import Settings

log = get_logger("rayplane.marketplace.client")
API_VERSION = "2018-08-31"
BASE = "/api/saas/subscriptions"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class FulfillmentError(RuntimeError):
    """The Marketplace refused a call (``status`` >= 400) or could not be reached (``status`` None)."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{status or 'unreachable'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def retriable(self) -> bool:
        return self.status is None or self.status in RETRY_STATUSES


def _as_utc(value: datetime) -> datetime:
    """Microsoft's documentation shows times without an offset ("2018-12-01T00:00:00"):
    those are UTC. Every time read from the Marketplace is aware, so comparing two never
    raises."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _int_or_none(value: Any) -> Any:
    # The Marketplace sends "" (and null) for a quantity that does not apply.
    return None if value == "" else value


UtcTime = Annotated[datetime, AfterValidator(_as_utc)]
Quantity = Annotated[int | None, BeforeValidator(_int_or_none)]
W = TypeVar("W", bound="_Wire")


def _parse(model: type[W], response: httpx.Response, document: Any = None) -> W:
    """``model`` from the answer; an answer of another shape is a ``FulfillmentError``."""
    try:
        return model.model_validate(_body(response) if document is None else document)
    except ValidationError as exc:
        raise FulfillmentError(
            response.status_code, "UnexpectedAnswer", f"not a {model.__name__}: {one_line(str(exc))}"
        ) from None


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Party(_Wire):
    """A purchaser or beneficiary."""

    email_id: str | None = None
    object_id: str | None = None
    tenant_id: str | None = None
    puid: str | None = None


class Term(_Wire):
    start_date: UtcTime | None = None
    end_date: UtcTime | None = None
    term_unit: str | None = None


class Subscription(_Wire):
    """A SaaS subscription as the Fulfillment API shows it."""

    id: str
    name: str = ""
    publisher_id: str | None = None
    offer_id: str
    plan_id: str
    quantity: int | None = None
    purchaser: Party = Field(default_factory=Party)
    beneficiary: Party = Field(default_factory=Party)
    saas_subscription_status: str
    term: Term = Field(default_factory=Term)
    is_test: bool = False
    is_free_trial: bool = False
    auto_renew: bool | None = None
    allowed_customer_operations: list[str] = Field(default_factory=list)


class ResolvedPurchase(_Wire):
    """The answer of ``resolve``: which subscription a landing-page token names."""

    id: str
    subscription_name: str = ""
    offer_id: str
    plan_id: str
    quantity: int | None = None
    subscription: Subscription


class Operation(_Wire):
    """A Marketplace operation (a webhook's subject), e.g. a ChangePlan waiting for our answer."""

    id: str
    activity_id: str | None = None
    subscription_id: str
    offer_id: str | None = None
    publisher_id: str | None = None
    plan_id: str | None = None
    quantity: Quantity = None
    action: str
    time_stamp: UtcTime | None = None
    status: str
    error_status_code: str | None = None
    error_message: str | None = None
    operation_request_source: str | None = None


class AvailablePlan(_Wire):
    plan_id: str
    display_name: str = ""
    is_private: bool = False
    is_price_per_seat: bool = False
    plan_components: dict[str, Any] = Field(default_factory=dict)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(response: httpx.Response) -> FulfillmentError:
    body = _body(response)
    nested = body.get("Error")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else body
    code = str(inner.get("code") or inner.get("Code") or response.reason_phrase or "Error")
    message = str(inner.get("message") or inner.get("Message") or "")[:500]
    return FulfillmentError(response.status_code, code, message)


class FulfillmentClient:
    """Every call of SaaS Fulfillment v2. ``transport`` and ``token`` are for tests of the retry
    policy against a scripted server; normally both come from ``settings``."""

    def __init__(
        self,
        settings: Settings,
        *,
        token: Callable[[], str] | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: int = 4,
        base_backoff: float = 0.5,
        max_backoff: float = 8.0,
        timeout: float = 15.0,
    ) -> None:
        self.base_url = settings.marketplace_api_url.rstrip("/")
        self._token = token or MarketplaceToken(settings).get
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(settings.ca_bundle)) if settings.ca_bundle else True
        )
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport)
        self.retries = retries
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FulfillmentClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- transport ---------------------------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            header = response.headers.get("Retry-After", "")
            if header.strip().isdigit():
                return min(float(header), self.max_backoff)
        # Full jitter: concurrent callers that failed together do not retry together.
        return random.uniform(0, min(self.max_backoff, self.base_backoff * 2**attempt))  # noqa: S311

    def request(
        self,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One call with the retry policy of the module docstring; the final 2xx response.

        ``url`` is a path under the API's base URL or an absolute URL (an ``@nextLink``,
        which already carries its query string).
        """
        absolute = url if url.startswith(("https://", "http://")) else self.base_url + url
        query = dict(params or {})
        if "api-version=" not in absolute:
            query.setdefault("api-version", API_VERSION)
        request_id = str(uuid.uuid4())
        attempt = 0
        while True:
            try:
                bearer = self._token()
            except MarketplaceTokenError as exc:
                # Entra refused the publisher app (a wrong or expired secret): not worth retrying here.
                log.warning("marketplace_token_refused", error=str(exc))
                raise FulfillmentError(401, "PublisherTokenRefused", one_line(str(exc), 300)) from None
            sent = {
                "Authorization": f"Bearer {bearer}",
                "x-ms-requestid": request_id,
                "x-ms-correlationid": request_id,
                **(headers or {}),
            }
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, absolute, json=json, headers=sent, params=query or None)
            except httpx.HTTPError as exc:
                failure = FulfillmentError(None, type(exc).__name__, "the Marketplace API did not answer")
            else:
                if response.status_code < 400:
                    return response
                failure = _error(response)
            if not failure.retriable or attempt >= self.retries:
                raise failure
            time.sleep(self._delay(attempt, response))
            attempt += 1

    # ---- subscriptions -------------------------------------------------------------------

    def resolve(self, marketplace_token: str) -> ResolvedPurchase:
        """The purchase a landing-page token names (400 ``FulfillmentError`` when invalid/expired)."""
        response = self.request("POST", f"{BASE}/resolve", headers={"x-ms-marketplace-token": marketplace_token})
        return _parse(ResolvedPurchase, response)

    def activate(self, subscription_id: str, plan_id: str, quantity: int | None = None) -> None:
        """Start billing; harmless to repeat with the same plan."""
        body: dict[str, Any] = {"planId": plan_id}
        if quantity is not None:
            body["quantity"] = quantity
        self.request("POST", f"{BASE}/{subscription_id}/activate", json=body)

    def get(self, subscription_id: str) -> Subscription:
        return _parse(Subscription, self.request("GET", f"{BASE}/{subscription_id}"))

    def list_subscriptions(self) -> Iterator[Subscription]:
        """Every subscription of the publisher, following ``@nextLink`` page by page."""
        url: str | None = BASE
        while url:
            response = self.request("GET", url)
            page = _body(response)
            for item in page.get("subscriptions", []):
                yield _parse(Subscription, response, item)
            link = page.get("@nextLink")
            url = urljoin(self.base_url + "/", str(link)) if link else None

    def list_plans(self, subscription_id: str) -> list[AvailablePlan]:
        response = self.request("GET", f"{BASE}/{subscription_id}/listAvailablePlans")
        return [_parse(AvailablePlan, response, p) for p in _body(response).get("plans", [])]

    def change_plan(self, subscription_id: str, plan_id: str) -> str:
        """Ask for another plan; the ``Operation-Location`` URL (a webhook follows)."""
        return self._operation_location(self.request("PATCH", f"{BASE}/{subscription_id}", json={"planId": plan_id}))

    def change_quantity(self, subscription_id: str, quantity: int) -> str:
        """Ask for another quantity; the ``Operation-Location`` URL (a webhook follows)."""
        response = self.request("PATCH", f"{BASE}/{subscription_id}", json={"quantity": quantity})
        return self._operation_location(response)

    def delete(self, subscription_id: str) -> str:
        """Unsubscribe; the ``Operation-Location`` URL."""
        return self._operation_location(self.request("DELETE", f"{BASE}/{subscription_id}"))

    # ---- operations ----------------------------------------------------------------------

    def get_operation(self, subscription_id: str, operation_id: str) -> Operation:
        response = self.request("GET", f"{BASE}/{subscription_id}/operations/{operation_id}")
        return _parse(Operation, response)

    def operation_at(self, location: str) -> Operation:
        """The operation an ``Operation-Location`` URL names."""
        return _parse(Operation, self.request("GET", location))

    def list_operations(self, subscription_id: str) -> list[Operation]:
        """The subscription's operations still InProgress.

        An answer without an ``operations`` list raises ``FulfillmentError``
        (``UnexpectedAnswer``): "no operations" must never stand for "could not read them"."""
        response = self.request("GET", f"{BASE}/{subscription_id}/operations")
        page = _body(response)
        listed = page.get("operations")
        if not isinstance(listed, list):
            raise FulfillmentError(response.status_code, "UnexpectedAnswer", "the answer has no operations list")
        return [_parse(Operation, response, op) for op in listed]

    def patch_operation(self, subscription_id: str, operation_id: str, status: Literal["Success", "Failure"]) -> None:
        """Accept or reject an InProgress operation (409 ``FulfillmentError`` once it is not)."""
        self.request("PATCH", f"{BASE}/{subscription_id}/operations/{operation_id}", json={"status": status})

    @staticmethod
    def _operation_location(response: httpx.Response) -> str:
        location = response.headers.get("Operation-Location")
        if not location:
            raise FulfillmentError(response.status_code, "NoOperationLocation", "the answer had no Operation-Location")
        return str(location)
