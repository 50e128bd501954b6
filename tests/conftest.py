"""Shared fixtures: real Postgres and Redis, a schema built by the migrations, and one
transaction per test that is rolled back at the end.

The app under test gets a session factory bound to the test's connection with
``join_transaction_mode="create_savepoint"``: the request's commit releases a savepoint
inside the outer transaction, so the test sees what the request wrote and the database
is clean afterwards.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from api.app import create_app, redis_client
from api.nudges import Nudger
from api.state import AppState
from emulators.azure.server import EmulatorProcess
from rayplane.db.engine import async_session_factory, make_async_engine
from rayplane.db.migrate import upgrade
from rayplane.identity.entra import EntraValidator
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from tests.support.factories import Actor, Factory
from tests.support.services import scratch_database, servers

AUDIENCE = "api://rayplane-test"
HASHING_KEY = b"test-hashing-key"


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


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorProcess]:
    with tempfile.TemporaryDirectory(prefix="rayplane-emu-") as tmp:
        emu = EmulatorProcess(Path(tmp))
        emu.start()
        try:
            yield emu
        finally:
            emu.stop()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, emulator: EmulatorProcess) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        redis_url=redis_url,
        secret_key=HASHING_KEY.decode(),
        entra_authority=emulator.origin,
        entra_audience=[AUDIENCE],
        ca_bundle=emulator.ca_path,
        cors_origins=["https://portal.example.com"],
        rate_limit_per_minute=100000,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert settings.database_url
    eng = make_async_engine(settings.database_url, pool_size=5)
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
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert settings.redis_url
    client = redis_client(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def entra(settings: Settings) -> AsyncIterator[EntraValidator]:
    validator = EntraValidator(
        authority=settings.entra_authority,
        audiences=settings.entra_audience,
        ca_bundle=str(settings.ca_bundle),
        cache_seconds=settings.jwks_cache_seconds,
    )
    yield validator
    await validator.aclose()


@pytest.fixture(scope="session")
def nudger(settings: Settings) -> Iterator[Nudger]:
    """A real Celery producer on a queue of its own that no worker in these tests consumes."""
    assert settings.redis_url
    n = Nudger(settings.redis_url, f"test-nudges-{uuid.uuid4().hex[:8]}")
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
