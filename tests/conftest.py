"""Shared fixtures: real Postgres and Redis, a schema built by the migrations, and one
transaction per test that is rolled back at the end.

The app under test gets a session factory bound to the test's connection with
``join_transaction_mode="create_savepoint"``: the request's commit releases a savepoint
inside the outer transaction, so the test sees what the request wrote and the database
is clean afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import create_engine, delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app, redis_client
from api.nudges import Nudger
from api.state import AppState
from emulators.azure.server import EmulatorProcess
from ops.azurite import Azurite, AzuriteUnavailable
from rayplane.db.engine import async_session_factory, make_async_engine, normalize_url
from rayplane.db.migrate import upgrade
from rayplane.identity.entra import EntraValidator
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from tests.support.factories import Actor, Factory
from tests.support.nodeuser import grant_node_user_access
from tests.support.services import scratch_database, servers

AUDIENCE = "api://rayplane-test"
HASHING_KEY = b"test-hashing-key"


@pytest.fixture(scope="session", autouse=True)
def node_user_access() -> None:
    """Local Ray nodes run as an unprivileged user when tests run as root (see the helper)."""
    grant_node_user_access()


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    with servers() as urls:
        yield urls


@pytest.fixture(scope="session")
def admin_db_url(service_urls: tuple[str, str]) -> str:
    return service_urls[0]


@pytest.fixture(scope="session")
def redis_url(service_urls: tuple[str, str]) -> str:
    return service_urls[1]


@pytest.fixture(scope="session")
def database_url(admin_db_url: str) -> Iterator[str]:
    """A database for this test session whose schema comes from running the migrations."""
    with scratch_database(admin_db_url) as url:
        upgrade(url)
        yield url


#: Where the database-only ``settings`` send Entra token checks: a closed port on this host, so
#: a test that needs Entra without asking for ``azure_settings`` gets a quick 401 ("cannot
#: reach the token issuer's metadata") instead of starting the emulator or reaching Azure.
NO_ENTRA = "https://127.0.0.1:9"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """The Azure emulator (Entra ID, ARM, AKS, Marketplace), one process for the whole session,
    started only when a test asks for it.

    Tests share it: one that changes a knob puts it back, or resets the surface through the
    emulator's admin API (``/_emulator/arm/reset``, ``/_emulator/marketplace/reset``), and each
    works in subscriptions, tenants and clusters of its own. A test that needs a process of its
    own (to restart it, or to change what cannot be put back) takes ``fresh_emulator``.
    """
    with EmulatorProcess(tmp_path_factory.mktemp("azure")) as emu:
        yield emu


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service (installed by ``make azurite``) on a free port for the whole
    session, started only when a test asks for it; its connection string (the well-known
    development account). Skipped, with the reason, where Azurite is not installed."""
    base = tmp_path_factory.mktemp("azurite")
    server = Azurite(base / "data", base / "azurite.log")
    try:
        connection_string = server.start()
    except AzuriteUnavailable as exc:
        pytest.skip(str(exc))
    yield connection_string
    server.stop()


@pytest.fixture
def fresh_emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """An emulator process of this test's own, stopped afterwards (it may be stopped or
    restarted by the test). For tests that restart the emulator, or make a change the admin API
    cannot undo (retiring a signing key invalidates every token minted before), so that the
    session's ``emulator`` stays as every other test expects it."""
    with EmulatorProcess(tmp_path / "azure") as emu:
        yield emu


def suite_settings(database_url: str, redis_url: str, **over: Any) -> Settings:
    """The settings the suite's app runs with; Entra at ``NO_ENTRA`` unless ``over`` says."""
    fields: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": HASHING_KEY.decode(),
        "entra_authority": NO_ENTRA,
        "entra_audience": [AUDIENCE],
        "cors_origins": ["https://portal.example.com"],
        "rate_limit_per_minute": 100000,
        # The suite refuses many credentials on purpose, all from one client address and
        # often within a minute: the per-address limit (30 by default) would turn a later
        # test's 401 or 422 into a 429. tests/api/test_auth_failures.py sets its own limits.
        "auth_failures_per_minute": 100000,
        "auth_failures_per_key_per_minute": 100000,
    }
    return Settings(**{**fields, **over})


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    """Settings for database and API tests: no emulator behind them (see ``NO_ENTRA``)."""
    return suite_settings(database_url, redis_url)


@pytest.fixture(scope="session")
def azure_settings(database_url: str, redis_url: str, emulator: EmulatorProcess) -> Settings:
    """The same settings with the emulator as Entra ID (and its CA trusted): for tests that
    present Entra tokens or reach Azure. A module whose app must accept Entra tokens overrides
    ``settings`` with these."""
    return suite_settings(database_url, redis_url, entra_authority=emulator.origin, ca_bundle=emulator.ca_path)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_async_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield connection
        finally:
            await outer.rollback()


@pytest.fixture
def sessions(conn: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as s:
        yield s


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = redis_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def entra(settings: Settings) -> AsyncIterator[EntraValidator]:
    validator = EntraValidator(
        authority=settings.entra_authority,
        audiences=settings.entra_audience,
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        cache_seconds=settings.jwks_cache_seconds,
    )
    yield validator
    await validator.aclose()


@pytest.fixture(scope="session")
def nudger(redis_url: str) -> Iterator[Nudger]:
    """A real Celery producer on a queue of its own that no worker in these tests consumes."""
    n = Nudger(redis_url, f"test-nudges-{uuid.uuid4().hex[:8]}")
    yield n
    with n.app.connection_for_write() as conn:
        conn.default_channel.queue_delete(n.queue)  # type: ignore[attr-defined]


@pytest.fixture
def state(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    entra: EntraValidator,
    nudger: Nudger,
) -> AppState:
    return AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        entra=entra,
        hashing_key=HASHING_KEY,
        nudger=nudger,
    )


@pytest.fixture
async def client(state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state.settings, state=state)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def factory(session: AsyncSession) -> Factory:
    return Factory(session, HASHING_KEY)


@pytest.fixture
async def committed(
    settings: Settings, engine: AsyncEngine, redis: Redis, entra: EntraValidator, nudger: Nudger
) -> AsyncIterator[tuple[httpx.AsyncClient, Actor]]:
    sessions = async_session_factory(engine)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        redis=redis,
        entra=entra,
        hashing_key=HASHING_KEY,
        nudger=nudger,
    )
    async with sessions() as s:
        actor = await Factory(s, HASHING_KEY).actor()
    app = create_app(settings, state=state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, actor
    async with sessions() as s, s.begin():
        await s.execute(delete(Tenant).where(Tenant.id == actor.tenant.id))


@pytest.fixture
def sync_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sync sessions on their own engine, committing for real, as a worker's."""
    sync_engine = create_engine(normalize_url(database_url))
    yield sessionmaker(sync_engine, expire_on_commit=False)
    sync_engine.dispose()
