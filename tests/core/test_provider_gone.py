"""A cloud whose provider is gone (an `azure-demo` cloud after a restart without the demo):
it shows as unavailable with the reason and the fix, creates on it are refused, and its
clusters' deletes finish instead of looping."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.clouds.models import Cloud
from rayplane.clusters.models import Cluster, ClusterEvent
from rayplane.clusters.reconcile import Reconciler
from rayplane.clusters.values import State
from rayplane.db.ids import new_id
from rayplane.settings import Settings
from tests.support.factories import Actor

SPEC = {
    "name": "orphan",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 0, "max_nodes": 1}],
}


async def test_a_cluster_whose_provider_is_gone_fails_once_and_its_delete_finishes(
    committed: tuple[httpx.AsyncClient, Actor], sync_sessions: sessionmaker[Session], settings: Settings
) -> None:
    client, actor = committed
    r = await client.post("/v1/clusters", headers=actor.headers, json=SPEC)
    assert r.status_code == 202, r.text
    cid = str(r.json()["id"])
    gone = Reconciler(sync_sessions, {}, settings, owner="test-no-provider")  # no provider of any kind
    gone.reconcile(cid)
    with sync_sessions() as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        assert (cluster.state, cluster.state_code) == (State.FAILED, "ProviderUnavailable")
        assert "RAYPLANE_DEMO_AZURE=1" in (cluster.state_reason or "")
    r = await client.delete(f"/v1/clusters/{cid}", headers=actor.headers)
    assert r.status_code == 202
    passes = 0
    while passes < settings.max_attempts:
        passes += 1
        gone.reconcile(cid)
        with sync_sessions() as s:
            cluster = s.get(Cluster, cid)
            assert cluster is not None
            if cluster.state == State.DELETED:
                break
    assert passes == 1  # closed at once, not retried until the maximum
    with sync_sessions() as s:
        events = list(s.execute(select(ClusterEvent).where(ClusterEvent.cluster_id == cid)).scalars())
    unreachable = [e for e in events if e.code == "ProviderUnavailable" and e.kind == "error"]
    assert any("its resources may remain there" in (e.reason or "") for e in unreachable)
    op = (await client.get(r.headers["Operation-Location"], headers=actor.headers)).json()
    assert op["status"] == "Succeeded"


async def test_an_azure_cloud_without_an_azure_app_shows_unavailable_and_refuses_creates(
    committed: tuple[httpx.AsyncClient, Actor], sync_sessions: sessionmaker[Session], settings: Settings
) -> None:
    assert "azure" not in settings.served_providers()
    client, actor = committed
    with sync_sessions() as s, s.begin():
        s.add(
            Cloud(
                id=new_id("cld"),
                tenant_id=actor.tenant.id,
                name="azure-demo",
                provider="azure",
                status="READY",
                is_default=False,
                config={"subscription_id": "3a9e5f21-7c4b-4e8d-a1f6-9b2c7d5e0f48"},
                ray_versions=["2.52.0"],
            )
        )
    clouds = {c["name"]: c for c in (await client.get("/v1/clouds", headers=actor.headers)).json()["items"]}
    assert clouds["azure-demo"]["status"] == "UNAVAILABLE"
    assert "RAYPLANE_DEMO_AZURE=1" in clouds["azure-demo"]["status_reason"]
    r = await client.post("/v1/clusters", headers=actor.headers, json={**SPEC, "cloud": "azure-demo"})
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["body.cloud"]
    assert "unavailable" in r.json()["errors"][0]["message"]
