"""The emulator's ASGI app: one FastAPI app composed of one router per Azure surface.

Routers are included in a fixed order: test-control routes (``/_emulator/...``) first, then
Azure surfaces whose paths start with a literal segment (ARM ``/subscriptions/...``,
Kubernetes, Marketplace, as they are added), and Entra last, because its paths start with a
``{tenant}`` parameter that would otherwise shadow them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, FastAPI

from emulators.azure import arm, entra, kube, marketplace
from emulators.azure.fleet import Fleet
from emulators.azure.store import DocumentStore


@dataclass(frozen=True)
class EmulatorSettings:
    """What every surface needs: where state lives and the origin clients reach us at."""

    data_dir: Path
    origin: str


@dataclass
class EmulatorContext:
    """Shared by every surface: settings, Entra (to check bearer tokens), durable state, VMs."""

    settings: EmulatorSettings
    entra: entra.EntraService
    store: DocumentStore
    fleet: Fleet
    # Called with the cluster key (emulators.azure.fleet.cluster_key) when ARM deletes a
    # managed cluster, so other surfaces drop what they hold for it (Kubernetes objects).
    cluster_deleted: list[Callable[[str], None]] = field(default_factory=list)
    # Called when the server starts shutting down, before it waits for open connections (so
    # long-lived responses such as Kubernetes watches can end).
    stopping: list[Callable[[], None]] = field(default_factory=list)


def _health_router(settings: EmulatorSettings) -> APIRouter:
    router = APIRouter(prefix="/_emulator", tags=["emulator"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """Answers 200 once the server accepts requests; names the origin it serves."""
        return {"status": "ok", "origin": settings.origin}

    return router


def create_app(settings: EmulatorSettings) -> FastAPI:
    """Build the app for ``settings``; state persists under ``settings.data_dir``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="Rayplane Azure emulator", docs_url=None, redoc_url=None, openapi_url=None)
    entra_service = entra.EntraService(settings.origin, settings.data_dir)
    store = DocumentStore(settings.data_dir / "state.db")
    ctx = EmulatorContext(settings=settings, entra=entra_service, store=store, fleet=Fleet(store))
    app.state.settings = settings
    app.state.entra = entra_service
    app.state.context = ctx
    app.include_router(_health_router(settings))
    app.include_router(entra.create_admin_router(entra_service))
    for surface in (arm, kube, marketplace):
        app.include_router(surface.create_admin_router(ctx))
    # Azure surfaces with literal first segments go here, before Entra.
    for surface in (arm, kube, marketplace):
        app.include_router(surface.create_router(ctx))
    app.include_router(entra.create_router(entra_service))
    # A stopped managed cluster's Kubernetes API does not answer (see arm.lifecycle).
    app.add_middleware(arm.StoppedClusterGuard, docs=arm.service_for(ctx).docs)
    return app
