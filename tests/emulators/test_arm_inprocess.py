"""What only an in-process app can show: the ARM surface's hooks into the shared context.

The ``cluster_deleted`` callbacks and the fleet live in the emulator process, so these tests
build the app with :func:`emulators.azure.app.create_app` and talk to it through httpx's ASGI
transport over plain HTTP (the SDK itself is exercised over HTTPS in ``test_arm.py``).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulators.azure.app import EmulatorContext, EmulatorSettings, create_app
from emulators.azure.fleet import cluster_key

ORIGIN = "http://testserver"
API = {"api-version": "2026-08-01"}


Client = tuple[httpx.AsyncClient, EmulatorContext]


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[Client]:
    app = create_app(EmulatorSettings(data_dir=tmp_path, origin=ORIGIN))
    ctx: EmulatorContext = app.state.context
    token = ctx.entra.keys.mint(origin=ORIGIN, tenant=str(uuid.uuid4()))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN, headers=headers) as http:
        await http.put("/_emulator/arm/config", json={"operation_seconds": 0, "retry_after": 0})
        yield http, ctx
    ctx.store.close()


async def _wait(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    for _ in range(100):
        doc: dict[str, Any] = (await http.get(url)).json()
        if doc["status"] != "InProgress":
            return doc
        await asyncio.sleep(0.01)
    raise AssertionError(f"operation {url} never finished")


def _broken_surface(key: str) -> None:
    raise RuntimeError(f"cannot forget {key}")


async def test_cluster_delete_notifies_fleet_callbacks_and_drops_tokens(
    app_client: Client,
) -> None:
    http, ctx = app_client
    deleted: list[str] = []
    ctx.cluster_deleted.append(deleted.append)
    ctx.cluster_deleted.append(_broken_surface)  # a failing surface must not stop the delete
    sub = str(uuid.uuid4())
    path = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c1"
    body = {
        "location": "eastus",
        "properties": {"agentPoolProfiles": [{"name": "sys", "vmSize": "Standard_D2s_v5", "count": 2}]},
    }
    created = await http.put(path, params=API, json=body)
    assert created.status_code == 201
    assert created.headers["Azure-AsyncOperation"].startswith(f"{ORIGIN}/subscriptions/{sub}/providers/")
    assert (await _wait(http, created.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    key = cluster_key(sub, "rg", "c1")
    assert [n.pool for n in ctx.fleet.nodes(key)] == ["sys", "sys"]

    creds = (await http.post(f"{path}/listClusterUserCredential", params=API)).json()
    assert creds["kubeconfigs"][0]["name"] == "clusterUser"
    assert len(list(ctx.store.scan("kube.token"))) == 1

    gone = await http.delete(path, params=API)
    assert gone.status_code == 202
    assert (await _wait(http, gone.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    assert deleted == [key]
    assert ctx.fleet.nodes(key) == []
    assert list(ctx.store.scan("kube.token")) == []
    assert (await http.get(path, params=API)).status_code == 404
    assert (await http.delete(path, params=API)).status_code == 204


async def test_http_kubeconfig_has_no_ca_and_reset_wipes_resources(app_client: Client) -> None:
    http, ctx = app_client
    sub = str(uuid.uuid4())
    path = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c1"
    body = {"location": "eastus", "properties": {"agentPoolProfiles": [{"name": "sys", "count": 1}]}}
    created = await http.put(path, params=API, json=body)
    await _wait(http, created.headers["Azure-AsyncOperation"])
    creds = (await http.post(f"{path}/listClusterAdminCredential", params=API)).json()
    config = yaml.safe_load(base64.b64decode(creds["kubeconfigs"][0]["value"]))
    assert config["clusters"][0]["cluster"] == {"server": f"{ORIGIN}/kubernetes/{sub}/rg/c1"}
    deleted: list[str] = []
    ctx.cluster_deleted.append(deleted.append)
    answer = (await http.post("/_emulator/arm/reset", json={"resources": True})).json()
    assert answer["clusters_deleted"] == [cluster_key(sub, "rg", "c1")]
    assert deleted == [cluster_key(sub, "rg", "c1")]
    assert (await http.get(path, params=API)).status_code == 404
    assert ctx.fleet.nodes(cluster_key(sub, "rg", "c1")) == []


async def test_bad_bodies_and_unknown_paths_answer_in_arm_format(app_client: Client) -> None:
    http, _ = app_client
    sub = str(uuid.uuid4())
    path = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c1"
    not_json = await http.put(path, params=API, content=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "InvalidRequestContent"
    unknown = await http.get(f"/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines", params=API)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "InvalidResourceType"
    patch = await http.patch(path, params=API, json={})
    assert patch.status_code == 405
    listing = f"/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters"
    bad_token = await http.get(listing, params={**API, "$skipToken": "__8"})
    assert (bad_token.status_code, bad_token.json()["error"]["code"]) == (400, "InvalidSkipToken")
    missing_pool = await http.get(f"{path}/agentPools/p1", params=API)
    assert missing_pool.status_code == 404
    assert set(missing_pool.json()["error"]) == {"code", "message", "details"}
