"""Engines and session factories.

The API uses the async engine (psycopg 3 async); workers and the CLI use the sync one.
Services receive a session and only ``flush``; whoever opened the session (the API's
request scope, a worker task) commits or rolls back.

Every engine hides statement parameters (``hide_parameters=True``): a database error's
text, and so every log line and traceback that carries it, shows the SQL but never the
values, which include key digests, tokens and whatever a client sent.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """Force the psycopg 3 driver whatever ``postgresql://`` flavour was configured."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


def make_async_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pre_ping: bool = True,
    recycle_seconds: int = 1800,
    autocommit: bool = False,
) -> AsyncEngine:
    """``pre_ping`` costs one round trip per checkout; the API turns it off (see docs/architecture.md).

    ``autocommit`` makes an engine whose connections are in autocommit from the moment they
    connect, for reads: no ``BEGIN``/``COMMIT`` round trips, and none of the per-checkout work
    that an ``isolation_level`` execution option costs on a shared pool (switching the
    connection into autocommit and back, and a ``rollback()`` call on every close and every
    return to the pool). A connection of such a pool never holds a transaction, so it needs
    no reset on return.
    """
    extra: dict[str, object] = {}
    if autocommit:
        extra = {"isolation_level": "AUTOCOMMIT", "skip_autocommit_rollback": True, "pool_reset_on_return": None}
    return create_async_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=recycle_seconds,
        hide_parameters=True,
        **extra,
    )


def make_sync_engine(url: str, *, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    return create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        hide_parameters=True,
    )


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def sync_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database (readiness checks); raises when it does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
