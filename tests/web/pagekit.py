"""Helpers of the in-process page tests (no browser, no tests here): an organisation with an
owner, an admin, a member and a viewer, each with a browser session planted in Redis as
sign-in would leave it, and an httpx client of the pages for each."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.state import AppState
from rayplane.common.principal import Role
from rayplane.tenants.models import Tenant
from tests.support.factories import Actor, Factory
from web.app import create_app
from web.sessions import SessionStore, WebSession

FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Browser:
    """A signed-in member's client of the pages, with its session's CSRF token."""

    client: httpx.AsyncClient
    csrf: str
    member_id: str

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        fields = {**({"csrf": self.csrf} if csrf else {}), **(data or {})}
        return await self.client.post(path, data=fields)


@dataclass
class Org:
    tenant: Tenant
    api: Actor  # an owner's API key, for setting things up through the API
    people: dict[Role, Browser] = field(default_factory=dict)


async def signed_in(state: AppState, tid: str, oid: str, name: str) -> tuple[str, str]:
    """A session as ``web.signin`` leaves it after a sign-in: ``(cookie header, csrf)``."""
    store = SessionStore(state.redis, state.hashing_key, secure=not state.settings.is_dev, ttl_seconds=600)
    session = WebSession(uuid.uuid4().hex + uuid.uuid4().hex)
    session.data["user"] = {"tid": tid, "oid": oid, "name": name}
    csrf = session.csrf
    answer = Response()
    await store.save(session, answer)
    cookie = answer.headers["set-cookie"].split(";")[0]
    return cookie, csrf


@asynccontextmanager
async def organisation(state: AppState, session: AsyncSession) -> AsyncIterator[Org]:
    """A tenant bound to a fresh Entra tenant id, one member of each role signed in."""
    factory = Factory(session, state.hashing_key)
    tid = str(uuid.uuid4())
    tenant = await factory.tenant(tid=tid)
    org = Org(tenant, await factory.actor(tenant=tenant))
    app = create_app(state.settings, state=state)
    clients: list[httpx.AsyncClient] = []
    for role in (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER):
        oid = str(uuid.uuid4())
        member = await factory.member(tenant, role=role, oid=oid)
        cookie, csrf = await signed_in(state, tid, oid, f"{role.value.title()} Person")
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers={"cookie": cookie}
        )
        clients.append(client)
        org.people[role] = Browser(client, csrf, member.id)
    try:
        yield org
    finally:
        for client in clients:
            await client.aclose()


def api(state: AppState) -> Callable[..., Any]:
    """An API client of the same app (bearer credentials, no cookie)."""
    app = create_app(state.settings, state=state)
    return lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
