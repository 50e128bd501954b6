"""The clusters API: acceptance, validation that creates nothing, lifecycle requests, isolation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from rayplane.common.principal import Role
from tests.support.factories import Actor, Factory


def spec(name: str = "demo", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 2}],
    }
    body.update(over)
    return body


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


async def cloud_names(client: httpx.AsyncClient, actor: Actor) -> list[str]:
    r = await client.get("/v1/clouds", headers=actor.headers)
    assert r.status_code == 200, r.text
    return [c["name"] for c in r.json()["items"]]


async def clusters(client: httpx.AsyncClient, actor: Actor) -> list[dict[str, Any]]:
    return list((await client.get("/v1/clusters", headers=actor.headers)).json()["items"])


async def test_create_answers_202_with_operation(client: httpx.AsyncClient, owner: Actor) -> None:
    r = await client.post("/v1/clusters", headers=owner.headers, json=spec(labels={"team": "ml"}))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "PENDING"
    assert body["desired_state"] == "running"
    assert body["spec"]["ray_version"]  # defaulted to the newest the cloud runs
    assert body["labels"] == {"team": "ml"}
    assert r.headers["etag"] == '"1"'
    assert r.headers["location"] == f"/v1/clusters/{body['id']}"
    op = await client.get(r.headers["operation-location"], headers=owner.headers)
    assert op.status_code == 200
    assert op.json()["kind"] == "create"
    assert op.json()["status"] == "Running"
    events = (await client.get(f"/v1/clusters/{body['id']}/events", headers=owner.headers)).json()["items"]
    assert [e["kind"] for e in events] == ["created"]
    clouds = (await client.get("/v1/clouds", headers=owner.headers)).json()["items"]
    assert [(c["name"], c["provider"], c["is_default"]) for c in clouds] == [("local", "local", True)]
    assert body["cloud_id"] == clouds[0]["id"]


@pytest.mark.parametrize(
    ("override", "field", "fragment"),
    [
        ({"head": {"vm_size": "Standard_D4_v5"}}, "body.head.vm_size", "did you mean"),
        (
            {"worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 3, "max_nodes": 1}]},
            "body.worker_groups.0.min_nodes",
            "above max_nodes",
        ),
        ({"ray_version": "1.0.0"}, "body.ray_version", "runs Ray"),
        (
            {"worker_groups": [{"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "min_nodes": 0, "max_nodes": 1}]},
            "body.worker_groups.0.vm_size",
            "GPU",
        ),
        (
            {"worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 0, "max_nodes": 500}]},
            "body.worker_groups",
            "fits",
        ),
        ({"name": "Not_DNS"}, "body.name", "pattern"),
        ({"name": "x" * 41}, "body.name", "at most 40"),
        ({"cloud": "nowhere"}, "body.cloud", "no cloud"),
        (
            {
                "worker_groups": [
                    {"name": "a", "vm_size": "Standard_D2s_v5", "max_nodes": 1},
                    {"name": "a", "vm_size": "Standard_D2s_v5", "max_nodes": 1},
                ]
            },
            "body.worker_groups.1.name",
            "used twice",
        ),
    ],
)
async def test_bad_specs_answer_422_and_create_nothing(
    client: httpx.AsyncClient, owner: Actor, override: dict[str, Any], field: str, fragment: str
) -> None:
    r = await client.post("/v1/clusters", headers=owner.headers, json=spec(**override))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    matching = [e for e in r.json()["errors"] if e["field"] == field]
    assert matching, r.json()["errors"]
    assert fragment in matching[0]["message"]
    assert await clusters(client, owner) == []


async def test_tenant_quota_is_enforced(client: httpx.AsyncClient, owner: Actor, session: Any) -> None:
    owner.tenant.quota_vcpus = 4
    await session.commit()
    r = await client.post("/v1/clusters", headers=owner.headers, json=spec())  # 2 + 2*2 = 6 vCPUs at max
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.worker_groups"
    assert "quota" in r.json()["errors"][0]["message"]
    owner.tenant.quota_vcpus, owner.tenant.quota_clusters = None, 1
    await session.commit()
    assert (await client.post("/v1/clusters", headers=owner.headers, json=spec("one"))).status_code == 202
    r = await client.post("/v1/clusters", headers=owner.headers, json=spec("two"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.name"


async def test_names_are_unique_among_live_clusters(client: httpx.AsyncClient, owner: Actor) -> None:
    assert (await client.post("/v1/clusters", headers=owner.headers, json=spec("same"))).status_code == 202
    r = await client.post("/v1/clusters", headers=owner.headers, json=spec("same"))
    assert r.status_code == 409


async def test_list_filters_and_pages(client: httpx.AsyncClient, owner: Actor) -> None:
    ids = []
    for i, team in enumerate(["a", "b", "a"]):
        r = await client.post("/v1/clusters", headers=owner.headers, json=spec(f"c{i}", labels={"team": team}))
        ids.append(r.json()["id"])
    by_label = (await client.get("/v1/clusters", headers=owner.headers, params={"label": "team=a"})).json()
    assert [c["id"] for c in by_label["items"]] == [ids[0], ids[2]]
    by_state = (await client.get("/v1/clusters", headers=owner.headers, params={"state": "PENDING"})).json()
    assert len(by_state["items"]) == 3
    none = (await client.get("/v1/clusters", headers=owner.headers, params={"state": "RUNNING"})).json()
    assert none["items"] == []
    bad = await client.get("/v1/clusters", headers=owner.headers, params={"state": "ON_FIRE"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.state.0"
    by_cloud = (await client.get("/v1/clusters", headers=owner.headers, params={"cloud": "local"})).json()
    assert len(by_cloud["items"]) == 3
    page = (await client.get("/v1/clusters", headers=owner.headers, params={"limit": 2})).json()
    rest = (
        await client.get("/v1/clusters", headers=owner.headers, params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    assert [c["id"] for c in page["items"] + rest["items"]] == ids


async def test_patch_resizes_with_if_match(client: httpx.AsyncClient, owner: Actor) -> None:
    created = await client.post("/v1/clusters", headers=owner.headers, json=spec())
    cid, etag = created.json()["id"], created.headers["etag"]
    groups = [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 2, "max_nodes": 2}]
    r = await client.patch(
        f"/v1/clusters/{cid}", headers={**owner.headers, "If-Match": etag}, json={"worker_groups": groups}
    )
    assert r.status_code == 202
    assert r.json()["spec"]["worker_groups"][0]["min_nodes"] == 2
    assert r.headers["etag"] == '"2"'
    assert (await client.get(r.headers["operation-location"], headers=owner.headers)).json()["kind"] == "update"
    stale = await client.patch(
        f"/v1/clusters/{cid}", headers={**owner.headers, "If-Match": etag}, json={"labels": {"x": "y"}}
    )
    assert stale.status_code == 412
    bad = await client.patch(
        f"/v1/clusters/{cid}",
        headers=owner.headers,
        json={"worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 5, "max_nodes": 1}]},
    )
    assert bad.status_code == 422
    now = (await client.get(f"/v1/clusters/{cid}", headers=owner.headers)).json()
    assert [(g["min_nodes"], g["max_nodes"]) for g in now["spec"]["worker_groups"]] == [(2, 2)]


async def test_lifecycle_requests(client: httpx.AsyncClient, owner: Actor) -> None:
    cid = (await client.post("/v1/clusters", headers=owner.headers, json=spec())).json()["id"]
    stop = await client.post(f"/v1/clusters/{cid}:stop", headers=owner.headers)
    assert stop.status_code == 202
    assert stop.json()["desired_state"] == "stopped"
    start = await client.post(f"/v1/clusters/{cid}:start", headers=owner.headers)
    assert start.json()["desired_state"] == "running"
    stop_op = (await client.get(stop.headers["operation-location"], headers=owner.headers)).json()
    assert stop_op["status"] == "Canceled"
    retry = await client.post(f"/v1/clusters/{cid}:retry", headers=owner.headers)
    assert retry.status_code == 409
    deleted = await client.delete(f"/v1/clusters/{cid}", headers=owner.headers)
    assert deleted.status_code == 202
    assert deleted.json()["desired_state"] == "deleted"
    again = await client.post(f"/v1/clusters/{cid}:start", headers=owner.headers)
    assert again.status_code == 409
    create_ops_cancelled = await client.get(start.headers["operation-location"], headers=owner.headers)
    assert create_ops_cancelled.json()["status"] == "Canceled"


async def test_other_tenants_clusters_are_404(client: httpx.AsyncClient, factory: Factory, owner: Actor) -> None:
    other = await factory.actor()
    created = await client.post("/v1/clusters", headers=other.headers, json=spec())
    cid, op = created.json()["id"], created.headers["operation-location"]
    for method, path in [
        ("GET", f"/v1/clusters/{cid}"),
        ("GET", f"/v1/clusters/{cid}/events"),
        ("GET", f"/v1/clusters/{cid}/jobs"),
        ("PATCH", f"/v1/clusters/{cid}"),
        ("POST", f"/v1/clusters/{cid}:stop"),
        ("DELETE", f"/v1/clusters/{cid}"),
        ("GET", op),
    ]:
        r = await client.request(method, path, headers=owner.headers, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.status_code)
    assert (await client.get(f"/v1/clusters/{cid}", headers=other.headers)).json()["desired_state"] == "running"


async def test_viewer_cannot_create_or_stop(client: httpx.AsyncClient, factory: Factory, owner: Actor) -> None:
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    assert (await client.post("/v1/clusters", headers=viewer.headers, json=spec())).status_code == 403
    cid = (await client.post("/v1/clusters", headers=owner.headers, json=spec())).json()["id"]
    assert (await client.post(f"/v1/clusters/{cid}:stop", headers=viewer.headers)).status_code == 403
    assert (await client.get(f"/v1/clusters/{cid}", headers=viewer.headers)).status_code == 200


async def test_idempotent_create_replays(client: httpx.AsyncClient, owner: Actor) -> None:
    headers = {**owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/clusters", headers=headers, json=spec())
    second = await client.post("/v1/clusters", headers=headers, json=spec())
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert first.headers["operation-location"] == second.headers["operation-location"]
    assert len(await clusters(client, owner)) == 1


async def test_clouds_create_and_delete_when_unused(client: httpx.AsyncClient, owner: Actor) -> None:
    r = await client.post(
        "/v1/clouds",
        headers=owner.headers,
        json={"name": "tiny", "capacity": {"cpus": 1, "memory_gib": 2, "max_nodes": 2}},
    )
    assert r.status_code == 201, r.text
    cloud_id = r.json()["id"]
    too_big = await client.post("/v1/clusters", headers=owner.headers, json=spec(cloud="tiny"))
    assert too_big.status_code == 422  # 3 nodes at max on a 2-node cloud
    small = spec(cloud=cloud_id, worker_groups=[{"name": "w", "vm_size": "Standard_B1ms", "max_nodes": 1}])
    cid = (await client.post("/v1/clusters", headers=owner.headers, json=small)).json()["id"]
    in_use = await client.delete(f"/v1/clouds/{cloud_id}", headers=owner.headers)
    assert in_use.status_code == 409, in_use.text
    assert in_use.headers["content-type"].startswith("application/problem+json")
    await client.delete(f"/v1/clusters/{cid}", headers=owner.headers)
    assert (await client.get(f"/v1/clouds/{cloud_id}", headers=owner.headers)).status_code == 200
    dup = await client.post("/v1/clouds", headers=owner.headers, json={"name": "tiny"})
    assert dup.status_code == 409

    # a cloud no cluster ever used is deleted: gone from the list and from its URL
    spare = await client.post(
        "/v1/clouds", headers=owner.headers, json={"name": "spare", "capacity": {"cpus": 1, "memory_gib": 2}}
    )
    assert spare.status_code == 201, spare.text
    spare_id = spare.json()["id"]
    assert "spare" in await cloud_names(client, owner)
    gone = await client.delete(f"/v1/clouds/{spare_id}", headers=owner.headers)
    assert gone.status_code == 204, gone.text
    assert (await client.get(f"/v1/clouds/{spare_id}", headers=owner.headers)).status_code == 404
    assert "spare" not in await cloud_names(client, owner)
    assert "tiny" in await cloud_names(client, owner)  # the refused one is still there
