"""Plan quotas and tenant status on cluster create, resize and start, through the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from emulators.azure.server import EmulatorProcess
from rayplane.common.principal import Role
from rayplane.marketplace.models import MarketplaceSubscription
from rayplane.tenants.models import Tenant
from tests.conftest import AUDIENCE
from tests.support.entra import mint
from tests.support.factories import Actor, Factory


def body(name: str, max_nodes: int = 1, **group: Any) -> dict[str, Any]:
    g = {"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 0, "max_nodes": max_nodes, **group}
    return {"name": name, "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": [g]}


async def subscribe(session: AsyncSession, tenant: Tenant, plan: str, status: str = "Subscribed") -> None:
    session.add(
        MarketplaceSubscription(
            id=str(uuid.uuid4()), tenant_id=tenant.id, offer_id="rayplane", plan_id=plan, status=status
        )
    )
    await session.commit()


async def set_status(session: AsyncSession, tenant: Tenant, status: str) -> None:
    tenant.status = status
    await session.commit()


@pytest.fixture
async def starter(factory: Factory, session: AsyncSession) -> Actor:
    actor = await factory.actor()
    await subscribe(session, actor.tenant, "starter")
    return actor


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = r.json()
    return problem


async def test_create_within_the_plan_is_accepted_and_beyond_it_is_422(
    client: httpx.AsyncClient, starter: Actor
) -> None:
    for name in ("a", "b"):
        r = await client.post("/v1/clusters", headers=starter.headers, json=body(name))
        assert r.status_code == 202, r.text
    problem = assert_problem(await client.post("/v1/clusters", headers=starter.headers, json=body("c")), 422)
    assert problem["errors"] == [
        {"field": "body.name", "message": "plan 'starter' allows 2 running cluster(s); 2 already run"}
    ]


@pytest.mark.parametrize(
    ("group", "field", "fragment"),
    [
        ({"vm_size": "Standard_E2s_v5"}, "body.worker_groups.0.vm_size", "Esv5 size; plan 'starter'"),
        ({"spot": True}, "body.worker_groups.0.spot", "plan 'starter' does not allow spot"),
        ({"max_nodes": 8}, "body.worker_groups", "plan 'starter' allows 8"),
    ],
)
async def test_create_names_the_field_and_the_plan(
    client: httpx.AsyncClient, starter: Actor, group: dict[str, Any], field: str, fragment: str
) -> None:
    problem = assert_problem(await client.post("/v1/clusters", headers=starter.headers, json=body("x", **group)), 422)
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert fragment in fields[field], fields
    assert (await client.get("/v1/clusters", headers=starter.headers)).json()["items"] == []


async def test_resize_is_checked_against_the_plan(client: httpx.AsyncClient, starter: Actor) -> None:
    created = await client.post("/v1/clusters", headers=starter.headers, json=body("a"))
    cid = created.json()["id"]
    grow = {"worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "max_nodes": 7}]}
    assert (await client.patch(f"/v1/clusters/{cid}", headers=starter.headers, json=grow)).status_code == 202
    grow["worker_groups"][0]["max_nodes"] = 8
    problem = assert_problem(await client.patch(f"/v1/clusters/{cid}", headers=starter.headers, json=grow), 422)
    assert problem["errors"][0]["field"] == "body.worker_groups"
    assert "'starter'" in problem["errors"][0]["message"]


async def test_start_is_checked_against_the_plan(client: httpx.AsyncClient, starter: Actor) -> None:
    ids = []
    for name in ("a", "b"):
        ids.append((await client.post("/v1/clusters", headers=starter.headers, json=body(name))).json()["id"])
    assert (await client.post(f"/v1/clusters/{ids[0]}:stop", headers=starter.headers)).status_code == 202
    # With one stopped, another fits; starting the stopped one would make three.
    assert (await client.post("/v1/clusters", headers=starter.headers, json=body("c"))).status_code == 202
    problem = assert_problem(await client.post(f"/v1/clusters/{ids[0]}:start", headers=starter.headers), 403)
    assert "plan 'starter'" in problem["detail"]
    assert problem["errors"][0]["field"] == "spec"
    cluster = (await client.get(f"/v1/clusters/{ids[0]}", headers=starter.headers)).json()
    assert cluster["desired_state"] == "stopped"


async def test_tenants_without_a_subscription_keep_the_defaults(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    for name in ("a", "b", "c"):
        r = await client.post("/v1/clusters", headers=actor.headers, json=body(name, spot=True))
        assert r.status_code == 202, r.text
    r = await client.get("/v1/marketplace/subscription", headers=actor.headers)
    assert r.json() == {"subscription": None, "plan": None}


async def test_the_tenant_reads_its_plan(client: httpx.AsyncClient, starter: Actor) -> None:
    r = await client.get("/v1/marketplace/subscription", headers=starter.headers)
    assert r.status_code == 200
    assert r.json()["subscription"]["plan_id"] == "starter"
    assert r.json()["plan"]["quotas"]["max_clusters"] == 2
    assert r.json()["plan"]["dimensions"] == ["vcpu_hours", "gpu_hours"]


async def test_suspended_tenant_cannot_create_or_start(
    client: httpx.AsyncClient, starter: Actor, session: AsyncSession
) -> None:
    cid = (await client.post("/v1/clusters", headers=starter.headers, json=body("a"))).json()["id"]
    assert (await client.post(f"/v1/clusters/{cid}:stop", headers=starter.headers)).status_code == 202
    await set_status(session, starter.tenant, "suspended")
    for r in (
        await client.post("/v1/clusters", headers=starter.headers, json=body("b")),
        await client.post(f"/v1/clusters/{cid}:start", headers=starter.headers),
    ):
        problem = assert_problem(r, 403)
        assert "suspended" in problem["detail"]
    # Reducing what runs stays allowed, and so do other writes.
    assert (await client.delete(f"/v1/clusters/{cid}", headers=starter.headers)).status_code == 202
    r = await client.post("/v1/api-keys", headers=starter.headers, json={"name": "ci", "role": "member"})
    assert r.status_code == 201, r.text


async def test_read_only_tenant_refuses_every_write_and_keeps_reads(
    client: httpx.AsyncClient, starter: Actor, session: AsyncSession
) -> None:
    cid = (await client.post("/v1/clusters", headers=starter.headers, json=body("a"))).json()["id"]
    await set_status(session, starter.tenant, "read_only")
    writes = [
        await client.post("/v1/clusters", headers=starter.headers, json=body("b")),
        await client.delete(f"/v1/clusters/{cid}", headers=starter.headers),
        await client.post("/v1/api-keys", headers=starter.headers, json={"name": "ci", "role": "member"}),
        await client.patch("/v1/tenant", headers=starter.headers, json={"display_name": "x"}),
    ]
    for r in writes:
        assert "read-only" in assert_problem(r, 403)["detail"]
    assert (await client.get(f"/v1/clusters/{cid}", headers=starter.headers)).status_code == 200
    assert (await client.get("/v1/tenant", headers=starter.headers)).json()["status"] == "read_only"


async def test_closed_tenant_refuses_its_members_even_for_reads(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, emulator: EmulatorProcess
) -> None:
    tid = str(uuid.uuid4())
    tenant = await factory.tenant(tid=tid)
    member = await factory.member(tenant, role=Role.OWNER)
    claims = {"tid": tid, "oid": member.oid, "aud": AUDIENCE, "iss": f"{emulator.origin}/{tid}/v2.0"}
    token = mint(emulator, tid, claims)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/tenant", headers=headers)).status_code == 200
    await set_status(session, tenant, "closed")
    problem = assert_problem(await client.get("/v1/tenant", headers=headers), 403)
    assert "closed" in problem["detail"]
