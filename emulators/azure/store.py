"""Durable state of the emulator's Azure surfaces: a small JSON document store in SQLite.

Each surface keeps its objects as JSON documents under ``(kind, key)`` in ``DIR/state.db``,
so ARM resources, Kubernetes objects and simulated nodes survive a restart of the emulator.
The emulator serves from one process and one event loop, so there is a single writer; WAL
mode keeps reads cheap and a crash mid-write loses at most that write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class DocumentStore:
    """``get``/``put``/``delete``/``scan`` of JSON documents keyed by ``(kind, key)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # check_same_thread=False: FastAPI runs sync handlers in a thread pool; callers
        # serialise access through the event loop or their own lock.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS docs (kind TEXT, key TEXT, body TEXT, PRIMARY KEY (kind, key))")

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The document, or None."""
        row = self._db.execute("SELECT body FROM docs WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, kind: str, key: str, body: dict[str, Any]) -> None:
        """Insert or replace."""
        self._db.execute(
            "INSERT INTO docs (kind, key, body) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
            (kind, key, json.dumps(body, separators=(",", ":"))),
        )

    def delete(self, kind: str, key: str) -> bool:
        """Remove; whether it existed."""
        return self._db.execute("DELETE FROM docs WHERE kind = ? AND key = ?", (kind, key)).rowcount > 0

    def scan(self, kind: str, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        """``(key, body)`` for every document of ``kind`` whose key starts with ``prefix``, by key."""
        rows = self._db.execute(
            "SELECT key, body FROM docs WHERE kind = ? AND substr(key, 1, ?) = ? ORDER BY key",
            (kind, len(prefix), prefix),
        ).fetchall()
        for key, body in rows:
            yield key, dict(json.loads(body))

    def close(self) -> None:
        self._db.close()
