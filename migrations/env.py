"""Alembic environment: Postgres only, online migrations through the sync psycopg driver."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from rayplane.all_models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url or not url.startswith("postgresql"):
        raise RuntimeError("Rayplane migrations run against PostgreSQL only")
    engine = create_engine(url, poolclass=pool.NullPool, hide_parameters=True)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            # Two processes migrating at once (several API replicas starting) must not race.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7271182)")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
