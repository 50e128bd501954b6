"""Races that the rolled-back-transaction fixture cannot show: these commit for real."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.state import AppState
from rayplane.db.engine import async_session_factory
from rayplane.identity.entra import EntraValidator
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from tests.conftest import HASHING_KEY
from tests.support.factories import Actor, Factory


@pytest.fixture
async def committed(
    settings: Settings, engine: AsyncEngine, redis: Redis, entra: EntraValidator
) -> AsyncIterator[tuple[httpx.AsyncClient, Actor]]:
    sessions = async_session_factory(engine)
    state = AppState(
        settings=settings, engine=engine, sessions=sessions, redis=redis, entra=entra, hashing_key=HASHING_KEY
    )
    async with sessions() as s:
        actor = await Factory(s, HASHING_KEY).actor()
    app = create_app(settings, state=state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, actor
    async with sessions() as s, s.begin():
        await s.execute(delete(Tenant).where(Tenant.id == actor.tenant.id))


async def test_concurrent_requests_with_one_idempotency_key_create_once(
    committed: tuple[httpx.AsyncClient, Actor],
) -> None:
    client, actor = committed
    headers = {**actor.headers, "Idempotency-Key": str(uuid.uuid4())}
    responses = await asyncio.gather(
        *(client.post("/v1/api-keys", headers=headers, json={"name": "race"}) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    listed = (await client.get("/v1/api-keys", headers=actor.headers)).json()["items"]
    assert sum(1 for k in listed if k["name"] == "race") == 1


async def test_concurrent_patches_with_one_etag_let_exactly_one_win(
    committed: tuple[httpx.AsyncClient, Actor],
) -> None:
    client, actor = committed
    etag = (await client.get("/v1/tenant", headers=actor.headers)).headers["etag"]
    responses = await asyncio.gather(
        *(
            client.patch("/v1/tenant", headers={**actor.headers, "If-Match": etag}, json={"display_name": f"w{i}"})
            for i in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1
    assert set(statuses) == {200, 412}
