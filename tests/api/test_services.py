"""``/v1/services`` as the API answers it (the reconciler's side is in tests/e2e): the cluster
conventions (202 + operation, ETag/If-Match, idempotency, tenant isolation), every field
error at once, in-place changes against new versions, ``:rollback``, and the wall between
/v1/clusters and /v1/services."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from rayplane.clouds.models import Cloud
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.states import transition
from rayplane.clusters.values import ClusterKind, State
from rayplane.common.principal import Role
from rayplane.db.ids import new_id
from tests.support.factories import Actor, Factory


def body(name: str = "echo", **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 0, "max_nodes": 1}],
        "serve": {
            "applications": [
                {"name": "echo", "import_path": "echo:app", "route_prefix": "/echo"},
                {"name": "counter", "import_path": "counter:app", "route_prefix": "/counter"},
            ]
        },
    }
    out.update(over)
    return out


@pytest.fixture
async def owner(factory: Factory, redis_url: str) -> Actor:
    if not redis_url.startswith(("redis://", "rediss://")):
        pytest.skip("a service's head keeps its GCS in a TCP Redis; this run's is a unix socket")
    return await factory.actor()


async def create(client: httpx.AsyncClient, owner: Actor, **over: Any) -> httpx.Response:
    r = await client.post("/v1/services", headers=owner.headers, json=body(**over))
    assert r.status_code == 202, r.text
    return r


async def test_create_answers_202_with_an_operation_and_the_service(
    client: httpx.AsyncClient, owner: Actor, session: AsyncSession
) -> None:
    r = await create(client, owner)
    svc = r.json()
    assert svc["id"].startswith("svc_")
    assert r.headers["Location"] == f"/v1/services/{svc['id']}"
    assert r.headers["ETag"] == '"1"'
    assert r.headers["Operation-Location"].startswith("/v1/operations/op_")
    assert (svc["state"], svc["version"], svc["active_version"], svc["endpoint_url"]) == ("PENDING", 1, None, None)
    assert svc["spec"]["head"]["gcs_fault_tolerance"] is True
    assert svc["rollout"] == {
        "strategy": "blue_green",
        "step_percent": 20,
        "interval_seconds": 30,
        "max_surge_percent": 100,
        "health_timeout_seconds": 600,
    }
    assert [a["name"] for a in svc["serve"]["applications"]] == ["echo", "counter"]
    row = (await session.execute(select(Cluster).where(Cluster.id == svc["id"]))).scalar_one()
    assert row.kind == ClusterKind.SERVICE
    op = await client.get(r.headers["Operation-Location"], headers=owner.headers)
    assert (op.json()["kind"], op.json()["status"]) == ("create", "Running")


async def test_every_error_at_once_and_nothing_created(
    client: httpx.AsyncClient, owner: Actor, session: AsyncSession
) -> None:
    bad = body(
        serve={
            "applications": [
                {"name": "a", "import_path": "not a path", "route_prefix": "/x"},
                {"name": "a", "import_path": "m:app", "route_prefix": "/x"},
            ]
        },
        rollout={"strategy": "incremental", "step_percent": 0, "health_timeout_seconds": 1},
        worker_groups=[{"name": "cpu", "vm_size": "Standard_Nope_v9", "min_nodes": 0, "max_nodes": 1}],
    )
    r = await client.post("/v1/services", headers=owner.headers, json=bad)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields >= {
        "body.serve.applications.0.import_path",
        "body.serve.applications.1.name",
        "body.serve.applications.1.route_prefix",
        "body.rollout.step_percent",
        "body.rollout.health_timeout_seconds",
        "body.worker_groups.0.vm_size",
    }, r.json()
    rows = (await session.execute(select(Cluster).where(Cluster.tenant_id == owner.tenant.id))).scalars().all()
    assert rows == []


async def test_a_shape_error_names_the_field(client: httpx.AsyncClient, owner: Actor) -> None:
    r = await client.post("/v1/services", headers=owner.headers, json=body(serve={"applications": "echo"}))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["body.serve.applications"]
    r = await client.post("/v1/services", headers=owner.headers, json={**body(), "replicas": 3})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["body.replicas"]
    # A service's head always keeps its GCS in Redis: not a choice to make (or to turn off).
    off = body(head={"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": False})
    r = await client.post("/v1/services", headers=owner.headers, json=off)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["body.head.gcs_fault_tolerance"]


async def test_clusters_and_services_are_apart(client: httpx.AsyncClient, owner: Actor) -> None:
    svc = (await create(client, owner)).json()
    cluster = await client.post(
        "/v1/clusters", headers=owner.headers, json={"name": "plain", "head": {"vm_size": "Standard_D2s_v5"}}
    )
    assert cluster.status_code == 202, cluster.text
    cid = cluster.json()["id"]
    listed = await client.get("/v1/clusters", headers=owner.headers)
    assert [c["id"] for c in listed.json()["items"]] == [cid]
    services = await client.get("/v1/services", headers=owner.headers)
    assert [s["id"] for s in services.json()["items"]] == [svc["id"]]
    for path in (f"/v1/clusters/{svc['id']}", f"/v1/clusters/{svc['id']}/jobs", f"/v1/services/{cid}"):
        assert (await client.get(path, headers=owner.headers)).status_code == 404, path
    assert (await client.post(f"/v1/clusters/{svc['id']}:stop", headers=owner.headers)).status_code == 404
    # One name space for both: a service cannot take a cluster's name.
    clash = await client.post("/v1/services", headers=owner.headers, json=body(name="plain"))
    assert clash.status_code == 409


async def test_another_tenant_sees_nothing(client: httpx.AsyncClient, owner: Actor, factory: Factory) -> None:
    svc = (await create(client, owner)).json()
    other = await factory.actor()
    assert (await client.get(f"/v1/services/{svc['id']}", headers=other.headers)).status_code == 404
    assert (await client.get("/v1/services", headers=other.headers)).json()["items"] == []
    patch = await client.patch(f"/v1/services/{svc['id']}", headers=other.headers, json={"image": "x"})
    assert patch.status_code == 404
    assert (await client.delete(f"/v1/services/{svc['id']}", headers=other.headers)).status_code == 404


async def test_a_serve_change_is_in_place_and_an_image_change_a_new_version(
    client: httpx.AsyncClient, owner: Actor, session: AsyncSession
) -> None:
    sid = (await create(client, owner)).json()["id"]
    serve = body()["serve"]
    serve["applications"][0]["deployments"] = [{"name": "Echo", "user_config": {"greeting": "hi"}}]
    inplace = await client.patch(
        f"/v1/services/{sid}", headers={**owner.headers, "If-Match": '"1"'}, json={"serve": serve}
    )
    assert inplace.status_code == 202, inplace.text
    assert (inplace.json()["version"], inplace.headers["ETag"]) == (1, '"2"')
    stale = await client.patch(f"/v1/services/{sid}", headers={**owner.headers, "If-Match": '"1"'}, json={"image": "x"})
    assert stale.status_code == 412
    new = await client.patch(
        f"/v1/services/{sid}", headers={**owner.headers, "If-Match": '"2"'}, json={"image": "img:2"}
    )
    assert new.status_code == 202, new.text
    assert (new.json()["version"], new.json()["spec"]["image"]) == (2, "img:2")
    again = await client.patch(f"/v1/services/{sid}", headers=owner.headers, json={"image": "img:3"})
    assert again.json()["version"] == 3  # supersedes version 2; numbers are never given twice
    row = (await session.execute(select(Cluster).where(Cluster.id == sid))).scalar_one()
    await session.refresh(row)
    assert row.service is not None
    assert row.service.previous is not None
    assert row.service.previous.spec.image is None  # what version 1 runs, for a rollback
    assert row.service.latest == 3
    ops = (await session.execute(select(Operation).where(Operation.cluster_id == sid))).scalars().all()
    assert sorted(o.kind for o in ops) == ["create", "update", "update", "update"]


async def test_rollback_needs_a_rollout(client: httpx.AsyncClient, owner: Actor, session: AsyncSession) -> None:
    sid = (await create(client, owner)).json()["id"]
    none = await client.post(f"/v1/services/{sid}:rollback", headers=owner.headers)
    assert none.status_code == 409
    assert "no rollout" in none.json()["detail"]
    await client.patch(f"/v1/services/{sid}", headers=owner.headers, json={"image": "img:2"})
    row = (await session.execute(select(Cluster).where(Cluster.id == sid))).scalar_one()
    await session.refresh(row)

    def roll_out(sync: Session) -> None:  # as the reconciler moves it (the API never does)
        for to in (State.PROVISIONING, State.RUNNING, State.ROLLING_OUT):
            transition(sync, row, to, reason="test")
        sync.flush()

    await session.run_sync(roll_out)
    r = await client.post(f"/v1/services/{sid}:rollback", headers=owner.headers)
    assert r.status_code == 202, r.text
    await session.refresh(row)
    assert row.rollback_requested is True
    op = await client.get(r.headers["Operation-Location"], headers=owner.headers)
    assert op.json()["kind"] == "rollback"


async def test_create_is_idempotent(client: httpx.AsyncClient, owner: Actor) -> None:
    headers = {**owner.headers, "Idempotency-Key": "svc-create-1"}
    first = await client.post("/v1/services", headers=headers, json=body())
    again = await client.post("/v1/services", headers=headers, json=body())
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert len((await client.get("/v1/services", headers=owner.headers)).json()["items"]) == 1


async def test_a_viewer_may_read_but_not_deploy(client: httpx.AsyncClient, owner: Actor, factory: Factory) -> None:
    svc = (await create(client, owner)).json()
    viewer = await factory.actor(Role.VIEWER, owner.tenant)
    assert (await client.get(f"/v1/services/{svc['id']}", headers=viewer.headers)).status_code == 200
    assert (await client.post("/v1/services", headers=viewer.headers, json=body("other"))).status_code == 403
    assert (await client.delete(f"/v1/services/{svc['id']}", headers=viewer.headers)).status_code == 403


def with_code(**env: Any) -> dict[str, Any]:
    """``body()``'s Serve config with ``env`` as every application's runtime_env."""
    apps = [{**a, "runtime_env": env} for a in body()["serve"]["applications"]]
    return {"applications": apps}


async def test_where_the_code_may_come_from_depends_on_the_cloud(
    client: httpx.AsyncClient, owner: Actor, session: AsyncSession, tmp_path: Any
) -> None:
    """A local working_dir reaches local nodes (the provider uploads it) but not AKS nodes;
    a gcs:// package belongs to one Ray cluster and py_modules are URIs everywhere."""
    session.add(
        Cloud(
            id=new_id("cld"),
            tenant_id=owner.tenant.id,
            name="aks",
            provider="azure",
            config={"subscription_id": "3a9e5f21-7c4b-4e8d-a1f6-9b2c7d5e0f48"},
            ray_versions=["2.52.0"],
        )
    )
    await session.flush()
    local_dir = str(tmp_path)
    r = await client.post(
        "/v1/services", headers=owner.headers, json=body(cloud="aks", serve=with_code(working_dir=local_dir))
    )
    assert r.status_code == 422, r.text
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    for i in (0, 1):
        assert "cannot read a local path" in fields[f"body.serve.applications.{i}.runtime_env.working_dir"]
    remote = with_code(working_dir="https://code.example/shop-1.4.zip", py_modules=["azure://code/lib.zip"])
    r = await client.post("/v1/services", headers=owner.headers, json=body(cloud="aks", serve=remote))
    assert not any("runtime_env" in e["field"] for e in r.json().get("errors", [])), r.text

    r = await client.post(
        "/v1/services", headers=owner.headers, json=body(serve=with_code(working_dir="gcs://_ray_pkg_1.zip"))
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == [
        "body.serve.applications.0.runtime_env.working_dir",
        "body.serve.applications.1.runtime_env.working_dir",
    ]
    r = await client.post(
        "/v1/services", headers=owner.headers, json=body(serve=with_code(working_dir=local_dir, py_modules=[local_dir]))
    )
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {
        "body.serve.applications.0.runtime_env.py_modules.0",
        "body.serve.applications.1.runtime_env.py_modules.0",
    }
    rows = (await session.execute(select(Cluster).where(Cluster.tenant_id == owner.tenant.id))).scalars().all()
    assert rows == []
    await create(client, owner, serve=with_code(working_dir=local_dir))
