"""A tenant's local cloud may only narrow what the operator allows (RAYPLANE_LOCAL_*)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clouds.models import Cloud
from rayplane.settings import Settings
from tests.support.factories import Actor, Factory


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


async def test_a_local_cloud_above_the_operators_limits_is_refused(
    client: httpx.AsyncClient, owner: Actor, settings: Settings
) -> None:
    limit = settings.local_capacity()
    body = {"name": "huge", "capacity": {"cpus": 4096, "memory_gib": 1, "gpus": 1, "max_nodes": 10000}}
    r = await client.post("/v1/clouds", headers=owner.headers, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert set(errors) == {"body.capacity.cpus", "body.capacity.gpus", "body.capacity.max_nodes"}
    assert errors["body.capacity.cpus"] == f"at most {limit['cpus']} on this server (RAYPLANE_LOCAL_CPUS)"
    assert "RAYPLANE_LOCAL_MAX_NODES" in errors["body.capacity.max_nodes"]
    names = [c["name"] for c in (await client.get("/v1/clouds", headers=owner.headers)).json()["items"]]
    assert "huge" not in names  # nothing was created

    within = {"name": "small", "capacity": {"cpus": 1, "memory_gib": 1, "max_nodes": 2}}
    assert (await client.post("/v1/clouds", headers=owner.headers, json=within)).status_code == 201


async def test_a_stored_capacity_is_held_to_the_operators_current_limits(
    client: httpx.AsyncClient, owner: Actor, session: AsyncSession, settings: Settings
) -> None:
    """A cloud stored before the operator lowered a limit (or written around the API) cannot
    place more than the operator allows now."""
    created = await client.post(
        "/v1/clouds", headers=owner.headers, json={"name": "old", "capacity": {"cpus": 1, "memory_gib": 1}}
    )
    assert created.status_code == 201, created.text
    cloud = (await session.execute(select(Cloud).where(Cloud.id == created.json()["id"]))).scalar_one()
    cloud.config = {"capacity": {"cpus": 4096, "memory_gib": 65536, "gpus": 0, "max_nodes": 10000}}
    await session.commit()
    too_many = settings.local_capacity()["max_nodes"]  # the head makes one more than the limit
    spec = {
        "name": "wide",
        "cloud": "old",
        "head": {"vm_size": "Standard_B1ms"},
        "worker_groups": [{"name": "w", "vm_size": "Standard_B1ms", "max_nodes": too_many}],
    }
    r = await client.post("/v1/clusters", headers=owner.headers, json=spec)
    assert r.status_code == 422, r.text
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert f"fits {too_many}" in fields["body.worker_groups"]
