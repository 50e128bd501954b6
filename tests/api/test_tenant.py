"""``/v1/tenant``: read and update the caller's tenant."""

from __future__ import annotations

import uuid

import httpx

from rayplane.common.principal import Role
from tests.support.factories import Factory


async def test_get_and_patch(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    got = await client.get("/v1/tenant", headers=owner.headers)
    assert got.status_code == 200
    assert got.json()["name"] == owner.tenant.name
    assert got.headers["etag"]
    tid = str(uuid.uuid4())
    r = await client.patch(
        "/v1/tenant", headers=owner.headers, json={"display_name": "Contoso", "entra_tenant_id": tid}
    )
    assert r.status_code == 200
    assert r.json()["display_name"] == "Contoso"
    assert r.json()["entra_tenant_id"] == tid


async def test_binding_entra_needs_owner_and_a_guid(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    admin = await factory.actor(Role.ADMIN, tenant=owner.tenant)
    r = await client.patch("/v1/tenant", headers=admin.headers, json={"entra_tenant_id": str(uuid.uuid4())})
    assert r.status_code == 403
    r = await client.patch("/v1/tenant", headers=owner.headers, json={"entra_tenant_id": "not-a-guid"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "body.entra_tenant_id", "message": "must be an Entra tenant id (a GUID)"}]


async def test_one_entra_tenant_binds_one_rayplane_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    tid = str(uuid.uuid4())
    await factory.tenant(tid=tid)
    other = await factory.actor()
    r = await client.patch("/v1/tenant", headers=other.headers, json={"entra_tenant_id": tid})
    assert r.status_code == 409


async def test_unknown_fields_are_rejected(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    r = await client.patch("/v1/tenant", headers=owner.headers, json={"id": "ten_other", "display_name": "x"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.id"
    assert (await client.get("/v1/tenant", headers=owner.headers)).json()["display_name"] != "x"


async def test_the_logs_retention_is_the_tenants_to_set(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    assert (await client.get("/v1/tenant", headers=owner.headers)).json()["log_retention_days"] is None
    r = await client.patch("/v1/tenant", headers=owner.headers, json={"log_retention_days": 90})
    assert r.status_code == 200, r.text
    assert r.json()["log_retention_days"] == 90
    for bad in (0, 4000, "30"):
        r = await client.patch("/v1/tenant", headers=owner.headers, json={"log_retention_days": bad})
        assert r.status_code == 422
        assert [e["field"] for e in r.json()["errors"]] == ["body.log_retention_days"]
    member = await factory.actor(Role.MEMBER, tenant=owner.tenant)
    r = await client.patch("/v1/tenant", headers=member.headers, json={"log_retention_days": 1})
    assert r.status_code == 403
    assert (await client.get("/v1/tenant", headers=owner.headers)).json()["log_retention_days"] == 90
