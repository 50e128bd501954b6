"""The worker side's unit of work: one sync session per task, committed at the end."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

import rayplane.all_models  # noqa: F401 - every mapper must be known before the first flush
from rayplane.db.engine import make_sync_engine, sync_session_factory
from rayplane.providers.base import Provider
from rayplane.providers.registry import build_providers
from rayplane.settings import get_settings


@functools.lru_cache(maxsize=1)
def sessions() -> sessionmaker[Session]:
    settings = get_settings()
    if not settings.database_url:
        raise RuntimeError("RAYPLANE_DATABASE_URL must be set for workers")
    return sync_session_factory(make_sync_engine(settings.database_url))


@contextmanager
def unit_of_work() -> Iterator[Session]:
    with sessions()() as session, session.begin():
        yield session


@functools.lru_cache(maxsize=1)
def providers() -> dict[str, Provider]:
    """This process's providers, built once from settings (shared by every task module)."""
    return build_providers(get_settings())
