"""Finding the Postgres and Redis the tests use.

Order: URLs in the environment (``RAYPLANE_TEST_DATABASE_URL`` / ``RAYPLANE_TEST_REDIS_URL``,
else ``RAYPLANE_DATABASE_URL`` / ``RAYPLANE_REDIS_URL``); else the servers on 127.0.0.1:5432
and :6379 when they answer; else the embedded ones, started in a temporary directory.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from rayplane.embedded import EmbeddedServices


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """Yields (admin Postgres URL, Redis URL)."""
    db = os.environ.get("RAYPLANE_TEST_DATABASE_URL") or os.environ.get("RAYPLANE_DATABASE_URL")
    redis = os.environ.get("RAYPLANE_TEST_REDIS_URL") or os.environ.get("RAYPLANE_REDIS_URL")
    if db is None and _answers("127.0.0.1", 5432):
        db = "postgresql://postgres@127.0.0.1:5432/postgres"
    if redis is None and _answers("127.0.0.1", 6379):
        # A database of its own per run (1-15, by process id): two runs on one machine (a
        # developer's and CI's) must not share Redis counters such as the failed-authentication
        # limit per client address, which one run's refused credentials would fill for the other.
        redis = f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}"
    embedded: EmbeddedServices | None = None
    if db is None or redis is None:
        embedded = EmbeddedServices(Path(tempfile.mkdtemp(prefix="rayplane-test-")))
        db = db or embedded.start_postgres()
        redis = redis or embedded.start_redis()
    try:
        yield db, redis
    finally:
        if embedded is not None:
            embedded.stop()


def with_database(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` instead."""
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def scratch_database(admin_url: str, prefix: str = "rayplane_test") -> Iterator[str]:
    """A new, empty database for the duration of the block; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(plain, name)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
