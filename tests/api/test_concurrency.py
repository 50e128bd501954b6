"""Races that the rolled-back-transaction fixture cannot show: these commit for real."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.support.factories import Actor


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


async def test_ten_concurrent_cluster_creates_with_one_key_make_one_cluster(
    committed: tuple[httpx.AsyncClient, Actor],
) -> None:
    client, actor = committed
    headers = {**actor.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {
        "name": "race",
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
    }
    responses = await asyncio.gather(*(client.post("/v1/clusters", headers=headers, json=body) for _ in range(10)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len({r.headers["operation-location"] for r in responses}) == 1
    listed = (await client.get("/v1/clusters", headers=actor.headers)).json()["items"]
    assert [c["name"] for c in listed] == ["race"]
