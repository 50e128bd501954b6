"""Item 8 of issue 11: with the database or the broker down, answers are 503 with Retry-After.

For real: the app is built from settings (its own engine, Redis client and Celery producer)
pointing at ports where nothing listens, or at the suite's database with Redis down.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import build_state, create_app
from rayplane.db.engine import async_session_factory
from rayplane.settings import Settings
from tests.api.test_conventions import assert_problem
from tests.conftest import HASHING_KEY, suite_settings
from tests.support.factories import Actor, Factory


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    state = build_state(settings)
    app = create_app(settings, state=state)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c
    finally:
        await state.redis.aclose()
        await state.engine.dispose()


@pytest.fixture
async def actor(engine: AsyncEngine) -> AsyncIterator[Actor]:
    """A tenant and key committed to the suite's database (removed afterwards)."""
    sessions = async_session_factory(engine)
    async with sessions() as s:
        made = await Factory(s, HASHING_KEY).actor()
        await s.commit()
    yield made
    async with sessions() as s, s.begin():
        await s.delete(await s.get(type(made.tenant), made.tenant.id))


def assert_outage(response: httpx.Response) -> None:
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) > 0


SPEC = {"name": "outage"}


async def test_database_down_every_kind_of_request_is_503(redis_url: str, actor: Actor) -> None:
    db = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/rayplane"
    async for client in app_client(suite_settings(db, redis_url)):
        started = time.monotonic()
        assert_outage(await client.get("/v1/clusters", headers=actor.headers))  # a read
        assert_outage(await client.post("/v1/clusters", headers=actor.headers, json=SPEC))  # a write, body first
        assert_outage(await client.delete("/v1/clusters/cls_x", headers=actor.headers))  # a write without a body
        assert_outage(await client.get("/readyz"))
        assert time.monotonic() - started < 30


async def test_broker_down_reads_and_writes_still_work_and_readyz_says_so(database_url: str, actor: Actor) -> None:
    redis = f"redis://127.0.0.1:{closed_port()}/0"
    async for client in app_client(suite_settings(database_url, redis)):
        assert (await client.get("/v1/clusters", headers=actor.headers)).status_code == 200
        created = await client.post("/v1/clusters", headers=actor.headers, json=SPEC)  # its nudge is dropped
        assert created.status_code == 202, created.text
        assert_outage(await client.get("/readyz"))
