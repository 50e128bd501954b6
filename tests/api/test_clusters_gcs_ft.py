"""``head.gcs_fault_tolerance`` through the clusters API: shown only when true, switched only on
a STOPPED cluster (the head runs with or without it from its start)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.models import Cluster
from rayplane.clusters.values import DesiredState, State
from tests.support.factories import Actor, Factory

FIELD = "body.head.gcs_fault_tolerance"


def spec(name: str, ft: bool | None) -> dict[str, Any]:
    head: dict[str, Any] = {"vm_size": "Standard_D2s_v5"}
    if ft is not None:
        head["gcs_fault_tolerance"] = ft
    return {
        "name": name,
        "head": head,
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
    }


@pytest.fixture
async def owner(factory: Factory, redis_url: str) -> Actor:
    if not redis_url.startswith(("redis://", "rediss://")):
        pytest.skip("local heads keep their GCS in a TCP Redis; this run's is a unix socket (refused with a 422)")
    return await factory.actor()


async def test_create_shows_it_only_when_true(client: httpx.AsyncClient, owner: Actor) -> None:
    on = await client.post("/v1/clusters", headers=owner.headers, json=spec("ft", True))
    assert on.status_code == 202, on.text
    assert on.json()["spec"]["head"] == {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True}
    got = await client.get(f"/v1/clusters/{on.json()['id']}", headers=owner.headers)
    assert got.json()["spec"]["head"] == {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True}
    for name, ft in (("plain", None), ("off", False)):
        r = await client.post("/v1/clusters", headers=owner.headers, json=spec(name, ft))
        assert r.status_code == 202, r.text
        assert r.json()["spec"]["head"] == {"vm_size": "Standard_D2s_v5"}


async def test_a_non_boolean_is_refused(client: httpx.AsyncClient, owner: Actor) -> None:
    body = spec("bad", None)
    body["head"]["gcs_fault_tolerance"] = "yes"
    r = await client.post("/v1/clusters", headers=owner.headers, json=body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [FIELD]


async def test_patch_switches_it_only_while_stopped(
    client: httpx.AsyncClient, owner: Actor, session: AsyncSession
) -> None:
    created = await client.post("/v1/clusters", headers=owner.headers, json=spec("sw", None))
    cid = created.json()["id"]

    async def patch(body: dict[str, Any]) -> httpx.Response:
        etag = (await client.get(f"/v1/clusters/{cid}", headers=owner.headers)).headers["etag"]
        return await client.patch(f"/v1/clusters/{cid}", headers={**owner.headers, "If-Match": etag}, json=body)

    refused = await patch({"head": {"gcs_fault_tolerance": True}})
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == [FIELD]
    assert "stop the cluster first" in refused.json()["errors"][0]["message"]
    same = await patch({"head": {"gcs_fault_tolerance": False}})  # no change: nothing to restart
    assert same.status_code == 202, same.text
    assert (await patch({"head": {"vm_size": "Standard_D4s_v5"}})).status_code == 422  # the size is not patchable

    cluster = await session.get(Cluster, cid)
    assert cluster is not None
    cluster.state, cluster.desired_state = State.STOPPED, DesiredState.STOPPED  # as a finished stop leaves it
    await session.commit()
    on = await patch({"head": {"gcs_fault_tolerance": True}})
    assert on.status_code == 202, on.text
    assert on.json()["spec"]["head"] == {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True}
    off = await patch({"head": {"gcs_fault_tolerance": False}})
    assert off.json()["spec"]["head"] == {"vm_size": "Standard_D2s_v5"}
