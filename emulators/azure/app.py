"""The emulator's ASGI app: one FastAPI app composed of one router per Azure surface.

Routers are included in a fixed order: test-control routes (``/_emulator/...``) first, then
Azure surfaces whose paths start with a literal segment (ARM ``/subscriptions/...``,
Kubernetes, Marketplace, as they are added), and Entra last, because its paths start with a
``{tenant}`` parameter that would otherwise shadow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI

from emulators.azure import entra


@dataclass(frozen=True)
class EmulatorSettings:
    """What every surface needs: where state lives and the origin clients reach us at."""

    data_dir: Path
    origin: str


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
    app.state.settings = settings
    app.state.entra = entra_service
    app.include_router(_health_router(settings))
    app.include_router(entra.create_admin_router(entra_service))
    # Azure surfaces with literal first segments go here, before Entra.
    app.include_router(entra.create_router(entra_service))
    return app
