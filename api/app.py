"""The FastAPI application factory.

``create_app(settings)`` builds everything from settings when the app starts. Tests pass
a ready ``AppState`` instead (for example one whose session factory is bound to a
connection inside a transaction that is rolled back after the test).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

import rayplane.all_models  # noqa: F401 - every mapper must be known before the first flush
from api import limits, outage, problems
from api.limits import RequestLimits
from api.middleware import RequestContextMiddleware
from api.nudges import Nudger
from api.routers import (
    api_keys,
    audit,
    billing,
    clouds,
    clusters,
    health,
    jobs,
    logs,
    marketplace,
    members,
    metrics,
    portal,
    services,
    tenant,
)
from api.state import AppState
from rayplane import __version__
from rayplane.db.engine import async_session_factory, make_async_engine
from rayplane.identity.cache import PrincipalCache
from rayplane.identity.entra import EntraValidator
from rayplane.jobs.access import JobsAccess
from rayplane.logs import get_logger
from rayplane.settings import Settings, get_settings

log = get_logger("rayplane.api")

DESCRIPTION = """\
Rayplane is the control plane of a managed-Ray service on Azure.

Every error is RFC 9457 `application/problem+json`. Every response carries `X-Request-ID`.
Authenticate with `Authorization: Bearer <API key>` or an Entra ID access token.
"""


#: The routers' modules, in the order their routes are tried.
ROUTERS = (
    health,
    tenant,
    members,
    api_keys,
    audit,
    clouds,
    clusters,
    services,
    jobs,
    logs,
    metrics,
    marketplace,
    billing,
    portal,
)


def redis_client(url: str) -> Redis:
    if url.startswith("redis+socket://"):
        return Redis(unix_socket_path=url[len("redis+socket://") :], socket_timeout=5)
    return Redis.from_url(url, socket_timeout=5)


def api_engine(settings: Settings, *, autocommit: bool = False) -> AsyncEngine:
    """The API's engine; ``autocommit`` for the engine of safe methods' sessions (the
    benchmark's bare baseline reads through that same kind of pool)."""
    if not settings.database_url:
        raise RuntimeError("RAYPLANE_DATABASE_URL must be set for the API")
    # No pre-ping on the hot path: it was 15% of a cached read's CPU. A connection the server
    # closed fails one request, is invalidated with the pool's other idle connections, and
    # short recycling keeps idle ones from going stale behind load balancers.
    # The pool keeps every connection it opens (up to size + overflow, the same ceiling):
    # an overflow connection is closed when it comes back to a full pool, so load hovering
    # around ``db_pool_size`` opened and closed a Postgres connection per request (seen as
    # connect and close in a profile of benchmarks/api_read.py, plus a backend start in Postgres).
    return make_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size + settings.db_max_overflow,
        max_overflow=0,
        pre_ping=False,
        recycle_seconds=300,
        autocommit=autocommit,
    )


def build_state(settings: Settings) -> AppState:
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError(
            "RAYPLANE_DATABASE_URL and RAYPLANE_REDIS_URL must be set for the API; "
            "`rayplane dev` sets them for the embedded servers"
        )
    engine = api_engine(settings)
    read_engine = api_engine(settings, autocommit=True)
    return AppState(
        settings=settings,
        engine=engine,
        sessions=async_session_factory(engine),
        # Safe methods run on a pool of autocommit connections: no BEGIN and no COMMIT round
        # trip, and no switching a shared connection into autocommit and back. Reads see
        # what they saw before (under READ COMMITTED every statement takes its own snapshot
        # anyway); the few single-statement writes a GET may make (the minutely
        # last_used_at, dev mode's local cloud) commit on their own. The second pool has the
        # same ceiling as the first and opens connections only as reads need them.
        read_engine=read_engine,
        read_sessions=async_session_factory(read_engine),
        redis=redis_client(settings.redis_url),
        entra=EntraValidator(
            authority=settings.entra_authority,
            audiences=settings.entra_audience,
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
            cache_seconds=settings.jwks_cache_seconds,
        ),
        hashing_key=settings.hashing_key(),
        nudger=Nudger(settings.redis_url, settings.task_queue),
        auth_cache=PrincipalCache(settings.auth_cache_seconds),
    )


def _jobs_access(settings: Settings, secret_key: bytes) -> JobsAccess:
    """Jobs on Azure clusters go through the AKS API server's proxy, with the provider's token;
    every call carries the cluster's Ray token, opened with ``secret_key``."""
    if not settings.azure_client_id:
        return JobsAccess(secret_key=secret_key)
    from rayplane.providers.azure import AzureProvider

    azure = AzureProvider(settings)
    return JobsAccess(
        lambda kind, config: azure.jobs_auth(config) if kind == "azure" else ({}, True), secret_key=secret_key
    )


def create_app(settings: Settings | None = None, *, state: AppState | None = None) -> FastAPI:
    settings = settings or (state.settings if state else get_settings())
    jobs_access = _jobs_access(settings, state.hashing_key if state else settings.hashing_key())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = getattr(app.state, "rayplane", None) is None
        if owned:
            app.state.rayplane = build_state(settings)
            # Everything alive now (modules, mappers, the app, its routes) lives as long as the
            # process: moved out of the collector's generations, a full collection no longer
            # walks those ~165,000 objects (a quarter of a second on a loaded core, charged to
            # whichever request allocated at that moment). The documented use of
            # ``gc.freeze``; only for a state built here, so a test's many apps pay no collect.
            gc.collect()
            gc.freeze()
        log.info("api_started", version=__version__, env=settings.env)
        try:
            yield
        finally:
            if owned:
                current: AppState = app.state.rayplane
                await current.entra.aclose()
                if current.marketplace is not None:
                    current.marketplace.close()
                await current.redis.aclose()
                await current.engine.dispose()
                if current.read_engine is not None:
                    await current.read_engine.dispose()

    # Swagger UI and ReDoc from the fastapi-offline wheel: /docs and /redoc need no CDN.
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="Rayplane",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
    )
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        return limits.document(base_openapi())

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    if state is not None:
        app.state.rayplane = state
    app.state.jobs_access = jobs_access
    problems.install(app)
    outage.install(app)
    limits.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    # Outermost last: RequestContext (with the security headers) > CORS > RequestLimits > the router.
    app.add_middleware(RequestLimits)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["ETag", "Location", "Operation-Location", "X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory api.app:app_from_env``."""
    from rayplane.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
