"""Reading a cluster's stored logs through the API, from Azurite: listing by node and
component, ranges, tails, a node's zip, tenant isolation and the problem answers."""

from __future__ import annotations

import io
import uuid
import zipfile

import httpx
import pytest

from rayplane.logstore import LogKey, LogStore, open_store
from rayplane.settings import Settings
from tests.conftest import suite_settings
from tests.support.factories import Actor, Factory

CONTAINER = f"api-logs-{uuid.uuid4().hex[:8]}"
SPEC = {
    "name": "logs",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
}


@pytest.fixture
def settings(database_url: str, redis_url: str, azurite: str) -> Settings:
    return suite_settings(database_url, redis_url, log_store_url=azurite, log_container=CONTAINER)


@pytest.fixture
def store(settings: Settings) -> LogStore:
    return open_store(settings.log_store(), CONTAINER)


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


async def cluster(client: httpx.AsyncClient, actor: Actor, store: LogStore) -> str:
    r = await client.post("/v1/clusters", headers=actor.headers, json=SPEC)
    assert r.status_code == 202, r.text
    cid = str(r.json()["id"])
    for node, path, data in (
        ("head", "raylet.out", b"".join(f"raylet line {i}\n".encode() for i in range(1, 101))),
        ("head", "gcs_server.err", b"gcs\n"),
        ("cpu-1", "raylet.out", b"worker raylet\n"),
        ("cpu-1", "serve/controller_1.log", b"serve\n"),
    ):
        store.append(LogKey(actor.tenant.id, cid, node, path), data, offset=0)
    return cid


async def test_list_read_tail_and_zip(client: httpx.AsyncClient, owner: Actor, store: LogStore) -> None:
    cid = await cluster(client, owner, store)
    r = await client.get(f"/v1/clusters/{cid}/logs", headers=owner.headers)
    assert r.status_code == 200, r.text
    assert [(f["node"], f["component"], f["path"]) for f in r.json()["items"]] == [
        ("cpu-1", "raylet", "raylet.out"),
        ("cpu-1", "serve", "serve/controller_1.log"),
        ("head", "gcs_server", "gcs_server.err"),
        ("head", "raylet", "raylet.out"),
    ]
    r = await client.get(f"/v1/clusters/{cid}/logs?node=head&component=raylet", headers=owner.headers)
    assert [(f["path"], f["size"]) for f in r.json()["items"]] == [("raylet.out", 1492)]

    base = f"/v1/clusters/{cid}/logs"
    r = await client.get(f"{base}/head/raylet.out?tail=2", headers=owner.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == "raylet line 99\nraylet line 100\n"
    r = await client.get(f"{base}/head/raylet.out?offset=14&length=14", headers=owner.headers)
    assert r.text == "raylet line 2\n"
    r = await client.get(f"{base}/cpu-1/serve/controller_1.log", headers=owner.headers)
    assert r.text == "serve\n"

    r = await client.get(f"{base}/cpu-1.zip", headers=owner.headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert sorted(archive.namelist()) == ["cpu-1/raylet.out", "cpu-1/serve/controller_1.log"]
        assert archive.read("cpu-1/raylet.out") == b"worker raylet\n"


async def test_list_in_pages(client: httpx.AsyncClient, owner: Actor, store: LogStore) -> None:
    cid = await cluster(client, owner, store)
    base = f"/v1/clusters/{cid}/logs"
    everything = (await client.get(base, headers=owner.headers)).json()
    assert everything["next_cursor"] is None
    walked, cursor = [], None
    while True:
        r = await client.get(base, params={"limit": 3, **({"cursor": cursor} if cursor else {})}, headers=owner.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 3
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == everything["items"]
    # A filter holds across pages; a component filter pages too.
    r = await client.get(base, params={"component": "raylet", "limit": 1}, headers=owner.headers)
    first = r.json()
    assert [(f["node"], f["path"]) for f in first["items"]] == [("cpu-1", "raylet.out")]
    r = await client.get(
        base, params={"component": "raylet", "limit": 1, "cursor": first["next_cursor"]}, headers=owner.headers
    )
    assert [(f["node"], f["path"]) for f in r.json()["items"]] == [("head", "raylet.out")]
    assert r.json()["next_cursor"] is None
    for bad in ({"cursor": "not-ours"}, {"limit": 0}, {"limit": 5001}):
        r = await client.get(base, params=bad, headers=owner.headers)
        assert r.status_code == 422, (bad, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [f"query.{next(iter(bad))}"]


async def test_a_service_version_s_logs(client: httpx.AsyncClient, owner: Actor, store: LogStore) -> None:
    body = {
        **SPEC,
        "name": "web",
        "serve": {"applications": [{"name": "echo", "import_path": "echo:app", "route_prefix": "/echo"}]},
    }
    r = await client.post("/v1/services", headers=owner.headers, json=body)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    store.append(LogKey(owner.tenant.id, f"{sid}-v1", "head", "serve/proxy_1.log"), b"v1 proxy\n", offset=0)
    base = f"/v1/services/{sid}/logs"
    for url in (base, f"{base}?version=1"):
        r = await client.get(url, headers=owner.headers)
        assert r.status_code == 200, r.text
        listed = r.json()
        assert (listed["cluster_id"], listed["version"]) == (f"{sid}-v1", 1)
        assert [(f["node"], f["path"]) for f in listed["items"]] == [("head", "serve/proxy_1.log")]
    r = await client.get(f"{base}/head/serve/proxy_1.log?version=1", headers=owner.headers)
    assert r.text == "v1 proxy\n"
    r = await client.get(f"{base}/head.zip", headers=owner.headers)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.namelist() == ["head/serve/proxy_1.log"]
    # A version it never had, the other kind's route, and another tenant: 404.
    assert (await client.get(f"{base}?version=2", headers=owner.headers)).status_code == 404
    assert (await client.get(f"/v1/clusters/{sid}/logs", headers=owner.headers)).status_code == 404
    cid = await cluster(client, owner, store)
    assert (await client.get(f"/v1/services/{cid}/logs", headers=owner.headers)).status_code == 404


async def test_problems_and_isolation(
    client: httpx.AsyncClient, owner: Actor, factory: Factory, store: LogStore
) -> None:
    cid = await cluster(client, owner, store)
    base = f"/v1/clusters/{cid}/logs"
    for url in (f"{base}/head/missing.log", f"{base}/head/..%2Fx", f"{base}/nobody.zip", f"{base}/HEAD/raylet.out"):
        r = await client.get(url, headers=owner.headers)
        assert r.status_code == 404, (url, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    r = await client.get(f"{base}/head/raylet.out?tail=2&offset=3", headers=owner.headers)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["query.tail"]
    r = await client.get(f"{base}/head/raylet.out?length=-1", headers=owner.headers)
    assert r.status_code == 422

    stranger = await factory.actor()
    for url in (base, f"{base}/head/raylet.out", f"{base}/head.zip", f"/v1/clusters/{cid}/jobs/job_x/logs:search?q=a"):
        r = await client.get(url, headers=stranger.headers)
        assert r.status_code == 404, (url, r.text)
    # The stranger's own cluster of the same name lists only its own (no) files.
    theirs = await client.post("/v1/clusters", headers=stranger.headers, json=SPEC)
    r = await client.get(f"/v1/clusters/{theirs.json()['id']}/logs", headers=stranger.headers)
    assert r.json()["items"] == []


async def test_job_search_needs_the_job(client: httpx.AsyncClient, owner: Actor, store: LogStore) -> None:
    cid = await cluster(client, owner, store)
    r = await client.get(f"/v1/clusters/{cid}/jobs/job_nope/logs:search?q=x", headers=owner.headers)
    assert r.status_code == 404
    r = await client.get(f"/v1/clusters/{cid}/jobs/job_nope/logs:search", headers=owner.headers)
    assert r.status_code == 422
