"""Every mutating request leaves one audit entry: actor, action, target, result, request id, address."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.audit.models import AuditEntry
from rayplane.common.principal import Role
from tests.support.factories import Factory


async def entries(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, object]]:
    r = await client.get("/v1/audit-log", headers=headers, params={"limit": 200})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_success_is_audited_with_request_metadata(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    r = await client.post(
        "/v1/api-keys", headers={**owner.headers, "X-Request-ID": "req-audit-1"}, json={"name": "ci", "role": "member"}
    )
    assert r.status_code == 201
    [entry] = await entries(client, owner.headers)
    assert entry["action"] == "api_keys.create"
    assert entry["actor_type"] == "api_key"
    assert entry["actor_id"] == owner.key.id
    assert entry["target_type"] == "api_key"
    assert entry["target_id"] == r.json()["id"]
    assert entry["result"] == "success"
    assert entry["status_code"] == 201
    assert entry["request_id"] == "req-audit-1"
    assert entry["client_address"] == "127.0.0.1"


async def test_failures_are_audited_and_reads_are_not(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    await client.get("/v1/tenant", headers=viewer.headers)
    denied = await client.patch("/v1/tenant", headers=viewer.headers, json={"display_name": "nope"})
    assert denied.status_code == 403
    invalid = await client.post("/v1/api-keys", headers=owner.headers, json={"name": ""})
    assert invalid.status_code == 422
    missing = await client.delete("/v1/members/mem_00000000000000000000000000", headers=owner.headers)
    assert missing.status_code == 404
    got = await entries(client, owner.headers)
    summary = [(e["action"], e["actor_id"], e["result"], e["status_code"]) for e in reversed(got)]
    assert summary == [
        ("tenant.update", viewer.key.id, "failure", 403),
        ("api_keys.create", owner.key.id, "failure", 422),
        ("members.delete", owner.key.id, "failure", 404),
    ]


async def test_unauthenticated_requests_do_not_write_into_any_tenant_log(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    a = await factory.actor()
    b = await factory.actor()
    rows_before = await session.scalar(select(func.count()).select_from(AuditEntry))
    # B's real key prefix with a wrong secret: the request names B's key, but proves nothing
    scheme, prefix, _ = b.raw_key.split("_")
    guessed = {"Authorization": f"Bearer {scheme}_{prefix}_{'0' * 40}"}
    attempts = [
        ("POST", "/v1/api-keys", {"Authorization": "Bearer nope"}, {"name": "x"}),
        ("POST", "/v1/api-keys", {}, {"name": "x"}),
        ("PATCH", "/v1/tenant", guessed, {"display_name": "x"}),
        ("DELETE", f"/v1/api-keys/{b.key.id}", guessed, None),
        ("DELETE", f"/v1/api-keys/{a.key.id}", {"Authorization": "Bearer nope"}, None),
    ]
    for method, path, headers, body in attempts:
        r = await client.request(method, path, headers=headers, json=body)
        assert r.status_code == 401, (method, path, r.text)
    assert await entries(client, a.headers) == []
    assert await entries(client, b.headers) == []
    # nor into a tenant neither of them can read: no audit row was written at all
    assert await session.scalar(select(func.count()).select_from(AuditEntry)) == rows_before


async def test_audit_log_pages_newest_first(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    for i in range(5):
        await client.patch("/v1/tenant", headers=owner.headers, json={"display_name": f"n{i}"})
    page1 = (await client.get("/v1/audit-log", headers=owner.headers, params={"limit": 2})).json()
    page2 = (
        await client.get("/v1/audit-log", headers=owner.headers, params={"limit": 2, "cursor": page1["next_cursor"]})
    ).json()
    ids = [e["id"] for e in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 4
    filtered = (await client.get("/v1/audit-log", headers=owner.headers, params={"action": "tenant.update"})).json()
    assert len(filtered["items"]) == 5
