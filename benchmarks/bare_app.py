"""The baseline for ``api_read.py``: the least a FastAPI app must do to serve one row.

One endpoint, ``GET /bare/{id}``, one ``SELECT`` on an async engine built by the same
``api_engine`` as the real app's engine for safe methods (autocommit connections, the same
pool settings, read from the same ``RAYPLANE_*`` environment), JSON out. No auth, no middleware, no session, no logging.

Run by the benchmark as ``uvicorn --factory benchmarks.bare_app:app_from_env``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import api_engine
from rayplane.settings import get_settings

QUERY = text("SELECT id, name, prefix FROM api_keys WHERE id = :id")


def app_from_env() -> FastAPI:
    settings = get_settings()
    if not settings.database_url:
        raise RuntimeError("RAYPLANE_DATABASE_URL must be set")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = api_engine(settings, autocommit=True)  # the very pool the real app reads through
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/bare/{key_id}")
    async def bare(key_id: str, request: Request) -> dict[str, Any]:
        engine: AsyncEngine = request.app.state.engine
        async with engine.connect() as conn:
            row = (await conn.execute(QUERY, {"id": key_id})).one_or_none()
        if row is None:
            raise HTTPException(status_code=404, detail="not found")
        return {"id": row.id, "name": row.name, "prefix": row.prefix}

    return app
