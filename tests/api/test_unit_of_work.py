"""The request's unit of work (``api.deps.get_session``), seen from outside the app at the
moment its answer starts: a change and its audit entry are committed by then, and the
session is closed by then, on success and on an error alike. Sessions commit for real here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.app import create_app
from api.nudges import Nudger
from api.state import AppState
from rayplane.audit.models import AuditEntry
from rayplane.db.engine import async_session_factory
from rayplane.identity.entra import EntraValidator
from rayplane.identity.models import ApiKey
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from tests.conftest import HASHING_KEY
from tests.support.factories import Actor, Factory


@dataclass
class AtStart:
    """Runs ``look`` when the app starts its answer, before the message goes on."""

    app: ASGIApp
    sessions: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    name: str = ""
    tenant_id: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def looking(message: Message) -> None:
            if message["type"] == "http.response.start":
                checked_out = self.engine.pool.checkedout()  # type: ignore[attr-defined]
                async with self.sessions() as s:
                    keys = await s.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.name == self.name))
                    audited = await s.scalar(
                        select(func.count())
                        .select_from(AuditEntry)
                        .where(AuditEntry.tenant_id == self.tenant_id, AuditEntry.action == "api_keys.create")
                    )
                self.seen.append({"checked_out": checked_out, "keys": keys, "audited": audited})
            await send(message)

        await self.app(scope, receive, looking)


@pytest.fixture
async def probed(
    settings: Settings, engine: AsyncEngine, redis: Redis, entra: EntraValidator, nudger: Nudger
) -> AsyncIterator[tuple[httpx.AsyncClient, Actor, AtStart]]:
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
    probe = AtStart(create_app(settings, state=state), sessions, engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=probe), base_url="http://t") as client:
        yield client, actor, probe
    async with sessions() as s, s.begin():
        await s.execute(delete(Tenant).where(Tenant.id == actor.tenant.id))


async def test_a_change_and_its_audit_entry_are_committed_before_the_answer_starts(
    probed: tuple[httpx.AsyncClient, Actor, AtStart],
) -> None:
    client, actor, probe = probed
    probe.name, probe.tenant_id = f"uow-{actor.tenant.id}", actor.tenant.id
    answer = await client.post("/v1/api-keys", headers=actor.headers, json={"name": probe.name})
    assert answer.status_code == 201
    assert probe.seen == [{"checked_out": 0, "keys": 1, "audited": 1}]


async def test_the_session_is_closed_before_the_answer_starts_on_a_read_and_on_an_error(
    probed: tuple[httpx.AsyncClient, Actor, AtStart],
) -> None:
    client, actor, probe = probed
    assert (await client.get(f"/v1/api-keys/{actor.key.id}", headers=actor.headers)).status_code == 200
    assert (await client.delete("/v1/api-keys/no-such-key", headers=actor.headers)).status_code == 404
    assert [seen["checked_out"] for seen in probe.seen] == [0, 0]
