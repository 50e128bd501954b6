"""Fixtures of the Marketplace tests: settings with a publisher app, the emulator's Marketplace,
sync sessions for the worker-side core, and a live API process for webhook deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from emulators.azure.server import EmulatorProcess
from rayplane.db.engine import make_sync_engine, sync_session_factory
from rayplane.marketplace.client import FulfillmentClient
from rayplane.settings import Settings
from tests.conftest import AUDIENCE, HASHING_KEY
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import PUBLISHER_APP, PUBLISHER_TENANT, SECRET, Buyer, LiveApi


@pytest.fixture(scope="session")
def settings(azure_settings: Settings, emulator: EmulatorProcess) -> Settings:
    """The suite's settings with the emulator as Entra ID, plus Rayplane's publisher app, pointed
    at the emulator's Marketplace."""
    return azure_settings.model_copy(
        update={
            "marketplace_api_url": emulator.origin,
            "marketplace_client_id": PUBLISHER_APP,
            "marketplace_client_secret": SecretStr(SECRET),
            "marketplace_publisher_tenant_id": PUBLISHER_TENANT,
            "marketplace_resolve_rate_per_minute": 100000,
        }
    )


@pytest.fixture
def market(emulator: EmulatorProcess) -> Iterator[Marketplace]:
    """The emulator's Marketplace, reset, selling to Rayplane's publisher app (test control only)."""
    client = Marketplace(emulator, None)
    client.admin("POST", "/reset")
    client.configure(publisher_tenant=PUBLISHER_TENANT, publisher_app_id=PUBLISHER_APP, webhook_max_attempts=1)
    try:
        yield client
    finally:
        client.admin("POST", "/reset")
        client.close()


@pytest.fixture
def buyer(emulator: EmulatorProcess) -> Buyer:
    return Buyer(emulator)


@pytest.fixture
def fulfillment(settings: Settings) -> Iterator[FulfillmentClient]:
    with FulfillmentClient(settings, base_backoff=0.05, max_backoff=0.2) as client:
        yield client


@pytest.fixture(scope="session")
def sync_engine(database_url: str) -> Iterator[Engine]:
    engine = make_sync_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def committed_sessions(sync_engine: Engine) -> sessionmaker[Session]:
    """Sync sessions that really commit (for state shared with a live API process)."""
    return sync_session_factory(sync_engine)


@pytest.fixture
def worker_sessions(sync_engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sync sessions as a worker has them, inside one outer transaction rolled back after the
    test: each ``sessions.begin()`` block commits a savepoint."""
    with sync_engine.connect() as connection:
        outer = connection.begin()
        try:
            yield sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        finally:
            outer.rollback()


@pytest.fixture(scope="session")
def live_api(
    settings: Settings,
    database_url: str,
    redis_url: str,
    emulator: EmulatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveApi]:
    """The API as a real process (one for the session; tests clean up what they commit)."""
    workdir = tmp_path_factory.mktemp("live-api")
    queue = f"test-mkt-{uuid.uuid4().hex[:8]}"
    env = {
        "RAYPLANE_ENV": "test",
        "RAYPLANE_DATA_DIR": str(workdir),
        "RAYPLANE_DATABASE_URL": database_url,
        "RAYPLANE_REDIS_URL": redis_url,
        "RAYPLANE_SECRET_KEY": HASHING_KEY.decode(),
        "RAYPLANE_ENTRA_AUTHORITY": emulator.origin,
        "RAYPLANE_ENTRA_AUDIENCE": AUDIENCE,
        "RAYPLANE_CA_BUNDLE": str(emulator.ca_path),
        "RAYPLANE_TASK_QUEUE": queue,
        "RAYPLANE_LOCAL_CPUS": "2",
        "RAYPLANE_LOCAL_MEMORY_GIB": "8",
        "RAYPLANE_MARKETPLACE_API_URL": emulator.origin,
        "RAYPLANE_MARKETPLACE_CLIENT_ID": PUBLISHER_APP,
        "RAYPLANE_MARKETPLACE_CLIENT_SECRET": SECRET,
        "RAYPLANE_MARKETPLACE_PUBLISHER_TENANT_ID": PUBLISHER_TENANT,
        "RAYPLANE_MARKETPLACE_RESOLVE_RATE_PER_MINUTE": "100000",
        "RAYPLANE_LOG_LEVEL": "WARNING",
    }
    api = LiveApi(env, Path(workdir) / "api.log").start()
    try:
        yield api
    finally:
        api.stop()
        # The nudges it sent (clusters, events) went to a queue of its own that no worker of
        # these tests consumes, except test_worker's, which drains it.
        broker = redis.Redis.from_url(redis_url)
        broker.delete(queue)
        broker.close()
