"""Tenant isolation (another tenant's ids are 404, exactly as missing ones) and role checks."""

from __future__ import annotations

import httpx
import pytest

from rayplane.common.principal import Role
from tests.support.factories import Actor, Factory


@pytest.fixture
async def two_tenants(factory: Factory, client: httpx.AsyncClient) -> tuple[Actor, Actor, dict[str, str]]:
    a = await factory.actor()
    b = await factory.actor()
    member_b = await factory.member(b.tenant, role=Role.MEMBER)
    key_b = (await client.post("/v1/api-keys", headers=b.headers, json={"name": "b2"})).json()
    return a, b, {"member": member_b.id, "key": key_b["id"], "owner_key": b.key.id}


async def test_other_tenants_ids_answer_404_like_missing_ones(
    client: httpx.AsyncClient, two_tenants: tuple[Actor, Actor, dict[str, str]]
) -> None:
    a, _, ids = two_tenants
    missing = {"member": "mem_00000000000000000000000000", "key": "key_00000000000000000000000000"}
    calls = [
        ("GET", "/v1/members/{member}", None),
        ("PATCH", "/v1/members/{member}", {"role": "viewer"}),
        ("DELETE", "/v1/members/{member}", None),
        ("GET", "/v1/api-keys/{key}", None),
        ("DELETE", "/v1/api-keys/{key}", None),
        ("GET", "/v1/api-keys/{owner_key}", None),
    ]
    for method, template, body in calls:
        theirs = await client.request(method, template.format(**ids), headers=a.headers, json=body)
        absent = await client.request(
            method, template.format(**missing, owner_key=missing["key"]), headers=a.headers, json=body
        )
        assert theirs.status_code == absent.status_code == 404, (method, template)
        assert theirs.json()["title"] == absent.json()["title"]
    # and nothing of B leaks through listings
    listed = (await client.get("/v1/api-keys", headers=a.headers)).json()["items"]
    assert {k["id"] for k in listed} == {a.key.id}
    members = (await client.get("/v1/members", headers=a.headers)).json()["items"]
    assert members == []


async def test_b_is_untouched_by_a(client: httpx.AsyncClient, two_tenants: tuple[Actor, Actor, dict[str, str]]) -> None:
    a, b, ids = two_tenants
    await client.delete(f"/v1/api-keys/{ids['key']}", headers=a.headers)
    await client.delete(f"/v1/members/{ids['member']}", headers=a.headers)
    assert (await client.get(f"/v1/api-keys/{ids['key']}", headers=b.headers)).json()["revoked_at"] is None
    assert (await client.get(f"/v1/members/{ids['member']}", headers=b.headers)).status_code == 200


WRITES = [
    ("PATCH", "/v1/tenant", {"display_name": "x"}),
    ("POST", "/v1/members", {"oid": "0000-viewer-attempt", "role": "viewer"}),
    ("POST", "/v1/api-keys", {"name": "viewer attempt", "role": "viewer"}),
    ("PATCH", "/v1/members/{member}", {"role": "viewer"}),
    ("DELETE", "/v1/members/{member}", None),
    ("DELETE", "/v1/api-keys/{key}", None),
]


@pytest.mark.parametrize(("method", "template", "body"), WRITES)
async def test_viewer_gets_403_on_every_write(
    client: httpx.AsyncClient, factory: Factory, method: str, template: str, body: dict[str, str] | None
) -> None:
    owner = await factory.actor()
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    member = await factory.member(owner.tenant, role=Role.MEMBER)
    path = template.format(member=member.id, key=owner.key.id)
    r = await client.request(method, path, headers=viewer.headers, json=body)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    # and the write did not happen
    assert (await client.get(f"/v1/members/{member.id}", headers=owner.headers)).json()["role"] == "member"
    assert (await client.get(f"/v1/api-keys/{owner.key.id}", headers=owner.headers)).json()["revoked_at"] is None
    assert (await client.get("/v1/tenant", headers=owner.headers)).json()["display_name"] != "x"


async def test_viewer_can_read(client: httpx.AsyncClient, factory: Factory) -> None:
    viewer = await factory.actor(Role.VIEWER)
    for path in ("/v1/tenant", "/v1/members", "/v1/api-keys"):
        assert (await client.get(path, headers=viewer.headers)).status_code == 200, path
    assert (await client.get("/v1/audit-log", headers=viewer.headers)).status_code == 403


async def test_nobody_grants_above_their_own_role(client: httpx.AsyncClient, factory: Factory) -> None:
    admin = await factory.actor(Role.ADMIN)
    r = await client.post("/v1/api-keys", headers=admin.headers, json={"name": "escalate", "role": "owner"})
    assert r.status_code == 403
    r = await client.post("/v1/members", headers=admin.headers, json={"oid": "someone", "role": "owner"})
    assert r.status_code == 403
    ok = await client.post("/v1/members", headers=admin.headers, json={"oid": "someone", "role": "admin"})
    assert ok.status_code == 201


async def test_last_owner_cannot_be_removed_or_demoted(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    only = await factory.member(owner.tenant, role=Role.OWNER)
    r = await client.patch(f"/v1/members/{only.id}", headers=owner.headers, json={"role": "admin"})
    assert r.status_code == 409
    r = await client.delete(f"/v1/members/{only.id}", headers=owner.headers)
    assert r.status_code == 409
    second = await factory.member(owner.tenant, role=Role.OWNER)
    assert (
        await client.patch(f"/v1/members/{only.id}", headers=owner.headers, json={"role": "admin"})
    ).status_code == 200
    assert (await client.delete(f"/v1/members/{second.id}", headers=owner.headers)).status_code == 409


async def test_admin_cannot_touch_an_owner(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    admin = await factory.actor(Role.ADMIN, tenant=owner.tenant)
    o1 = await factory.member(owner.tenant, role=Role.OWNER)
    await factory.member(owner.tenant, role=Role.OWNER)
    assert (await client.delete(f"/v1/members/{o1.id}", headers=admin.headers)).status_code == 403
    assert (
        await client.patch(f"/v1/members/{o1.id}", headers=admin.headers, json={"role": "viewer"})
    ).status_code == 403


async def test_duplicate_member_is_409(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    body = {"oid": "dup-oid", "role": "member", "email": "a@example.com"}
    assert (await client.post("/v1/members", headers=owner.headers, json=body)).status_code == 201
    r = await client.post("/v1/members", headers=owner.headers, json=body)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_member_can_revoke_own_key_but_not_others(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    member = await factory.actor(Role.MEMBER, tenant=owner.tenant)
    own = (await client.post("/v1/api-keys", headers=member.headers, json={"name": "mine"})).json()
    own_headers = {"Authorization": f"Bearer {own['key']}"}
    reads = ["/v1/tenant", "/v1/members", "/v1/api-keys", f"/v1/api-keys/{own['id']}", "/v1/clusters", "/v1/clouds"]
    for path in reads:
        assert (await client.get(path, headers=own_headers)).status_code == 200, path

    revoked = await client.delete(f"/v1/api-keys/{own['id']}", headers=member.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    refused = await client.delete(f"/v1/api-keys/{owner.key.id}", headers=member.headers)
    assert refused.status_code == 403

    # the revoked key reads nothing any more
    for path in reads:
        r = await client.get(path, headers=own_headers)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # the member's other key, and the owner's (which the member failed to revoke), still work
    for path in reads:
        assert (await client.get(path, headers=member.headers)).status_code == 200, path
    assert (await client.get(f"/v1/api-keys/{owner.key.id}", headers=owner.headers)).json()["revoked_at"] is None
    # and both revocations, the one done and the one refused, are in the audit log
    log = (await client.get("/v1/audit-log", headers=owner.headers, params={"action": "api_keys.revoke"})).json()
    done = [(e["actor_id"], e["target_id"], e["result"], e["status_code"]) for e in reversed(log["items"])]
    assert done == [
        (member.key.id, own["id"], "success", 200),
        (member.key.id, owner.key.id, "failure", 403),
    ]
