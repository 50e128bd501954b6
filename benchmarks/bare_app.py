"""The baseline for ``api_read.py``: the least a FastAPI app must do to serve the same row.

One endpoint, ``GET /bare/{id}``, one ``SELECT`` on an async engine built by the same
``api_engine`` as the real app's engine for safe methods (autocommit connections, the same
pool settings, read from the same ``RAYPLANE_*`` environment), JSON out. No auth, no
middleware, no session, no logging. It reads the columns the real ``GET /v1/api-keys/{id}``
returns and answers the same JSON document (times in ISO 8601 with ``Z``, as pydantic writes
them): the benchmark checks, before measuring, that both answers for a key parse to equal
documents, so the baseline does the same data work and only the framework around it differs.

Run by the benchmark as ``uvicorn --factory benchmarks.bare_app:app_from_env``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import api_engine
from rayplane.settings import get_settings

COLUMNS = ("id", "name", "prefix", "role", "created_by", "created_at", "expires_at", "revoked_at", "last_used_at")
QUERY = text(f"SELECT {', '.join(COLUMNS)} FROM api_keys WHERE id = :id")  # noqa: S608 (constant names)


def _value(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


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
        return {name: _value(value) for name, value in zip(COLUMNS, row, strict=True)}

    return app
