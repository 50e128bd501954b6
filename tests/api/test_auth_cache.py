"""The in-process cache of authenticated API keys: what it saves, and its revocation window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from api.app import create_app
from api.state import AppState
from rayplane.common.principal import Principal, Role
from rayplane.identity.cache import PrincipalCache
from tests.support.factories import Factory


def principal(key_id: str = "key_a") -> Principal:
    return Principal(tenant_id="ten_a", role=Role.MEMBER, actor_type="api_key", actor_id=key_id, api_key_id=key_id)


def test_hits_expire_with_ttl_and_with_the_key() -> None:
    cache = PrincipalCache(ttl_seconds=60)
    cache.put("d1", principal(), None)
    assert cache.get("d1") == principal()
    cache.put("d2", principal("key_b"), datetime.now(UTC) - timedelta(seconds=1))
    assert cache.get("d2") is None  # the key itself expired
    short = PrincipalCache(ttl_seconds=1e-9)
    short.put("d3", principal(), None)
    assert short.get("d3") is None
    off = PrincipalCache(ttl_seconds=0)
    off.put("d4", principal(), None)
    assert off.get("d4") is None


def test_forget_key_and_bounded_size() -> None:
    cache = PrincipalCache(ttl_seconds=60, max_entries=3)
    for i in range(5):
        cache.put(f"d{i}", principal(f"key_{i}"), None)
    assert [cache.get(f"d{i}") is not None for i in range(5)] == [False, False, True, True, True]
    cache.forget_key("key_3")
    assert cache.get("d3") is None
    assert cache.get("d4") is not None


async def test_revocation_through_the_api_is_immediate_with_the_cache_on(
    state: AppState, factory: Factory, session: Any
) -> None:
    owner = await factory.actor()
    victim = await factory.actor(Role.MEMBER, tenant=owner.tenant)
    cached = AppState(**{**state.__dict__, "auth_cache": PrincipalCache(ttl_seconds=300)})
    app = create_app(cached.settings, state=cached)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/v1/tenant", headers=victim.headers)).status_code == 200
        assert (await c.delete(f"/v1/api-keys/{victim.key.id}", headers=owner.headers)).status_code == 200
        assert (await c.get("/v1/tenant", headers=victim.headers)).status_code == 401

        # A revocation this process did not see (another replica, or SQL) holds after the TTL:
        # within it the cached principal still answers. This is the documented window.
        other = await factory.actor(Role.MEMBER, tenant=owner.tenant)
        assert (await c.get("/v1/tenant", headers=other.headers)).status_code == 200
        other.key.revoked_at = datetime.now(UTC)
        await session.commit()
        held = await c.get("/v1/tenant", headers=other.headers)
        assert held.status_code == 200, held.text
        cached.auth_cache.ttl = 1e-9
        assert (await c.get("/v1/tenant", headers=other.headers)).status_code == 401
