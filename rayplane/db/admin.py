"""Server-level SQL outside any application schema (creating a database)."""

from __future__ import annotations

import psycopg
from psycopg import sql


def ensure_database(admin_uri: str, name: str) -> bool:
    """Create database ``name`` through ``admin_uri`` unless it exists; True if created."""
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True
