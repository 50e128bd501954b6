"""Fixtures of the core tests that drive the reconciler against the real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from rayplane.db.engine import normalize_url
from tests.support.scripted_provider import ScriptedProvider


@pytest.fixture
def sync_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sync sessions on their own engine, committing for real, as a worker's."""
    engine = create_engine(normalize_url(database_url))
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()
