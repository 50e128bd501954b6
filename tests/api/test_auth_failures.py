"""Item 7 of issue 11: failed authentication is limited per client address and per key prefix."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from api.app import create_app, redis_client
from api.state import AppState
from rayplane.identity.cache import PrincipalCache
from tests.api.test_conventions import assert_problem
from tests.conftest import suite_settings
from tests.support.factories import Actor, Factory

Client = Callable[[str], Awaitable[httpx.AsyncClient]]


def address() -> str:
    """A client address of this test's own (the counters live in the suite's shared Redis)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def wrong_secret(actor: Actor) -> str:
    scheme, prefix, secret = actor.raw_key.split("_")
    return f"{scheme}_{prefix}_{secret[::-1] if secret[::-1] != secret else 'A' + secret[1:]}"


@pytest.fixture
async def from_address(state: AppState) -> AsyncIterator[Client]:
    """Clients (by address) of an app that allows 5 failures a minute per address and 3 per key
    prefix."""
    settings = suite_settings(
        state.settings.database_url or "",
        state.settings.redis_url or "",
        auth_failures_per_minute=5,
        auth_failures_per_key_per_minute=3,
    )
    # The auth cache on, as in production: a key this process accepted is known good.
    app = create_app(settings, state=dataclasses.replace(state, settings=settings, auth_cache=PrincipalCache(10)))
    clients: list[httpx.AsyncClient] = []

    async def make(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://t"))
        return clients[-1]

    # Fixed one-minute windows: start well inside one, so that a test's attempts share it.
    deadline = time.monotonic() + 15
    while time.time() % 60 > 45 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    yield make
    for c in clients:
        await c.aclose()


async def test_an_address_is_limited_after_its_failures_and_others_are_not(
    from_address: Client, factory: Factory
) -> None:
    actor = await factory.actor()
    attacker = await from_address(address())
    for i in range(5):
        bad = {"Authorization": f"Bearer rpk_{'a' * 12}_{i}"}  # malformed keys are checked too
        assert_problem(await attacker.get("/v1/clusters", headers=bad), 401)
    refused = await attacker.get("/v1/clusters", headers={"Authorization": "Bearer not-a-key"})
    assert_problem(refused, 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # A body is refused just the same, before it is read.
    assert_problem(await attacker.post("/v1/clusters", headers={"Authorization": "Bearer x"}, json={}), 429)
    # A good key from another address works at once.
    good = await from_address(address())
    assert (await good.get("/v1/clusters", headers=actor.headers)).status_code == 200


async def test_successes_do_not_count_and_a_missing_header_does_not_count(
    from_address: Client, factory: Factory
) -> None:
    actor = await factory.actor()
    caller = await from_address(address())
    for _ in range(10):
        assert (await caller.get("/v1/clusters", headers=actor.headers)).status_code == 200
        assert_problem(await caller.get("/v1/clusters"), 401)
    for _ in range(5):
        assert_problem(await caller.get("/v1/clusters", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(await caller.get("/v1/clusters", headers={"Authorization": "Bearer nope"}), 429)
    # The key this process has just accepted still works from the limited address.
    assert (await caller.get("/v1/clusters", headers=actor.headers)).status_code == 200


async def test_a_key_prefix_is_limited_across_addresses(from_address: Client, factory: Factory) -> None:
    actor = await factory.actor()
    guess = {"Authorization": f"Bearer {wrong_secret(actor)}"}
    for _ in range(3):
        assert_problem(await (await from_address(address())).get("/v1/clusters", headers=guess), 401)
    refused = await (await from_address(address())).get("/v1/clusters", headers=guess)
    assert "API key" in str(assert_problem(refused, 429)["detail"])


async def test_the_limiter_fails_open_when_redis_is_down(state: AppState, factory: Factory) -> None:
    actor = await factory.actor()
    down = redis_client("redis://127.0.0.1:1/0")
    settings = suite_settings(state.settings.database_url or "", "redis://127.0.0.1:1/0", auth_failures_per_minute=1)
    app = create_app(settings, state=dataclasses.replace(state, settings=settings, redis=down))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(3):
            assert_problem(await c.get("/v1/clusters", headers={"Authorization": "Bearer nope"}), 401)
        assert (await c.get("/v1/clusters", headers=actor.headers)).status_code == 200
    await down.aclose()
