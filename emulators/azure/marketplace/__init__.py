"""Marketplace: SaaS Fulfillment API v2 and Metering API, and the webhook sender (see issue 5).

Modules: :mod:`.models` (constants, settings, catalog, test-control bodies), :mod:`.state`
(documents in the store), :mod:`.lifecycle` (subscriptions and operations), :mod:`.webhooks`
(payloads, JWTs, deliveries), :mod:`.service` (wiring and the background ticker),
:mod:`.protocol` (errors, request ids, auth, api-version), :mod:`.fulfillment` and
:mod:`.metering` (Azure routes), :mod:`.admin` (test control under ``/_emulator/marketplace``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from emulators.azure.marketplace.admin import create_admin_router as _admin_router
from emulators.azure.marketplace.fulfillment import create_fulfillment_router
from emulators.azure.marketplace.metering import create_metering_router
from emulators.azure.marketplace.service import MarketplaceService

if TYPE_CHECKING:
    from emulators.azure.app import EmulatorContext

# One service per context: both routers of an app share it. Keyed by id(); the service holds
# the context, so the id cannot be reused while the entry lives.
_services: dict[int, MarketplaceService] = {}


def service_for(ctx: EmulatorContext) -> MarketplaceService:
    """The Marketplace of ``ctx`` (made on first use)."""
    service = _services.get(id(ctx))
    if service is None or service.ctx is not ctx:
        service = _services[id(ctx)] = MarketplaceService(ctx)
    return service


def create_router(ctx: EmulatorContext) -> APIRouter:
    """The Azure-facing routes (``/api/saas/...``, ``/api/...UsageEvent...``); its lifespan runs
    the ticker (auto-accepts, webhook retries)."""
    service = service_for(ctx)
    router = APIRouter(lifespan=service.running)
    router.include_router(create_fulfillment_router(service))
    router.include_router(create_metering_router(service))
    return router


def create_admin_router(ctx: EmulatorContext) -> APIRouter:
    """Test-control routes under ``/_emulator/marketplace``."""
    return _admin_router(service_for(ctx))
