"""Migrations: upgrade and downgrade on an empty database, and no drift from the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from rayplane.all_models import Base
from rayplane.db.engine import normalize_url
from rayplane.db.migrate import downgrade, upgrade
from tests.support.services import scratch_database

TABLES = {"tenants", "members", "api_keys", "audit_entries", "idempotency_records"}


def _tables(url: str) -> set[str]:
    engine = create_engine(normalize_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_empty_database(admin_db_url: str) -> None:
    with scratch_database(admin_db_url) as url:
        upgrade(url)
        assert _tables(url) >= TABLES
        downgrade(url, "base")
        assert _tables(url) <= {"alembic_version"}
        upgrade(url)
        assert _tables(url) >= TABLES


def test_models_match_migrations(database_url: str) -> None:
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
