"""Durable state of the Marketplace surface, in the emulator's :class:`DocumentStore`.

Kinds and keys (every document is JSON; fields starting with ``_`` are bookkeeping that the
Azure-facing answers leave out, see :func:`emulators.azure.marketplace.models.public`):

* ``marketplace.config`` / ``config`` -- :class:`MarketplaceConfig`.
* ``marketplace.catalog`` / ``catalog`` -- :class:`Catalog`.
* ``marketplace.subscription`` / ``<subscription id>`` -- the SaaS subscription as Azure shows it.
* ``marketplace.operation`` / ``<subscription id>/<operation id>`` -- an operation as Azure
  shows it, plus ``_autoAcceptAt`` (Marketplace clock) and ``_payload`` (the webhook body).
* ``marketplace.token`` / ``<landing-page token>`` -- ``{subscriptionId, expiresAt}``.
* ``marketplace.usage`` / ``<resource id>/<dimension>/<UTC hour>`` -- the accepted usage event.
* ``marketplace.delivery`` / ``<delivery id>`` -- one webhook delivery and its attempts.

All methods are synchronous and never await: the emulator serves from one event loop, so a
read-modify-write done in one call cannot interleave with another request's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from emulators.azure.marketplace.models import (
    Catalog,
    MarketplaceConfig,
    OfferSpec,
    PlanSpec,
    default_catalog,
    marketplace_now,
)
from emulators.azure.store import DocumentStore

_CONFIG = "marketplace.config"
_CATALOG = "marketplace.catalog"
_SUBSCRIPTION = "marketplace.subscription"
_OPERATION = "marketplace.operation"
_TOKEN = "marketplace.token"
_USAGE = "marketplace.usage"
_DELIVERY = "marketplace.delivery"
_ALL_KINDS = (_CONFIG, _CATALOG, _SUBSCRIPTION, _OPERATION, _TOKEN, _USAGE, _DELIVERY)


class MarketplaceState:
    """Typed access to the documents above; config and catalog are cached (one writer)."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self._config: MarketplaceConfig | None = None
        self._catalog: Catalog | None = None

    # -- settings and catalog -------------------------------------------------------------
    @property
    def config(self) -> MarketplaceConfig:
        """The current settings (defaults until ``set_config``)."""
        if self._config is None:
            stored = self.store.get(_CONFIG, "config")
            self._config = MarketplaceConfig.model_validate(stored or {})
        return self._config

    def set_config(self, config: MarketplaceConfig) -> None:
        self.store.put(_CONFIG, "config", config.model_dump())
        self._config = config

    @property
    def catalog(self) -> Catalog:
        """The offers on sale (:func:`default_catalog` until ``set_catalog``)."""
        if self._catalog is None:
            stored = self.store.get(_CATALOG, "catalog")
            self._catalog = default_catalog() if stored is None else Catalog.model_validate(stored)
        return self._catalog

    def set_catalog(self, catalog: Catalog) -> None:
        self.store.put(_CATALOG, "catalog", catalog.wire())
        self._catalog = catalog

    def offer(self, offer_id: str) -> OfferSpec | None:
        return self.catalog.offer(offer_id)

    def plan(self, offer_id: str, plan_id: str) -> PlanSpec | None:
        offer = self.catalog.offer(offer_id)
        return None if offer is None else offer.plan(plan_id)

    def now(self) -> float:
        """The Marketplace clock (wall clock plus ``now_offset_seconds``)."""
        return marketplace_now(self.config)

    # -- subscriptions ----------------------------------------------------------------------
    def subscription(self, subscription_id: str) -> dict[str, Any] | None:
        # Ids are GUIDs, which Azure compares case-insensitively; they are stored lower-case.
        return self.store.get(_SUBSCRIPTION, subscription_id.lower())

    def put_subscription(self, subscription: dict[str, Any]) -> None:
        self.store.put(_SUBSCRIPTION, str(subscription["id"]).lower(), subscription)

    def subscriptions(self, after: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        """Subscriptions by id, those with id > ``after`` first, at most ``limit``."""
        found: list[dict[str, Any]] = []
        for key, body in self.store.scan(_SUBSCRIPTION):
            if key <= after:
                continue
            if limit is not None and len(found) >= limit:
                break
            found.append(body)
        return found

    # -- operations -------------------------------------------------------------------------
    def put_operation(self, operation: dict[str, Any]) -> None:
        key = f"{str(operation['subscriptionId']).lower()}/{str(operation['id']).lower()}"
        self.store.put(_OPERATION, key, operation)

    def operation(self, subscription_id: str, operation_id: str) -> dict[str, Any] | None:
        return self.store.get(_OPERATION, f"{subscription_id.lower()}/{operation_id.lower()}")

    def find_operation(self, operation_id: str) -> dict[str, Any] | None:
        """The operation ``operation_id`` of whichever subscription it belongs to."""
        suffix = f"/{operation_id.lower()}"
        return next((body for key, body in self.store.scan(_OPERATION) if key.endswith(suffix)), None)

    def operations(self, subscription_id: str | None = None) -> list[dict[str, Any]]:
        """Operations (of one subscription, or all), oldest ``timeStamp`` first."""
        prefix = "" if subscription_id is None else f"{subscription_id.lower()}/"
        found = [body for _, body in self.store.scan(_OPERATION, prefix)]
        return sorted(found, key=lambda op: (float(op.get("_created", 0)), str(op["id"])))

    # -- landing-page tokens ------------------------------------------------------------------
    def put_token(self, token: str, subscription_id: str, expires_at: float) -> None:
        self.store.put(_TOKEN, token, {"subscriptionId": subscription_id, "expiresAt": expires_at})

    def token(self, token: str) -> dict[str, Any] | None:
        return self.store.get(_TOKEN, token)

    # -- usage events --------------------------------------------------------------------------
    def usage(self, key: str) -> dict[str, Any] | None:
        return self.store.get(_USAGE, key)

    def put_usage(self, key: str, event: dict[str, Any]) -> None:
        self.store.put(_USAGE, key, event)

    def usage_events(self, resource_id: str | None = None) -> list[dict[str, Any]]:
        """Accepted usage events (of one resource, or all), by resource, dimension and hour."""
        prefix = "" if resource_id is None else f"{resource_id.lower()}/"
        return [body for _, body in self.store.scan(_USAGE, prefix)]

    # -- webhook deliveries --------------------------------------------------------------------
    def put_delivery(self, delivery: dict[str, Any]) -> None:
        self.store.put(_DELIVERY, str(delivery["id"]), delivery)

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        return self.store.get(_DELIVERY, delivery_id)

    def deliveries(self) -> Iterator[dict[str, Any]]:
        """Every delivery, oldest first (ids sort by creation time)."""
        for _, body in self.store.scan(_DELIVERY):
            yield body

    @staticmethod
    def new_delivery_id() -> str:
        # Sortable by creation: nanoseconds first, then a random tail against collisions.
        return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"

    # -- test control ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every Marketplace document (settings and catalog back to their defaults)."""
        for kind in _ALL_KINDS:
            for key, _ in list(self.store.scan(kind)):
                self.store.delete(kind, key)
        self._config = None
        self._catalog = None
