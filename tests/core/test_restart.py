"""After a restart, a local cluster is not shown RUNNING until a pass has seen its nodes."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session, sessionmaker

from rayplane.clusters import restart
from rayplane.clusters.reconcile import Reconciler
from rayplane.settings import Settings
from tests.support.factories import Actor
from tests.support.scripted_provider import ScriptedProvider

SPEC = {
    "name": "again",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
}


async def state(client: httpx.AsyncClient, actor: Actor, cid: str) -> tuple[str, str | None]:
    body = (await client.get(f"/v1/clusters/{cid}", headers=actor.headers)).json()
    return body["state"], body["state_code"]


async def test_running_local_clusters_are_checked_before_they_show_running_again(
    committed: tuple[httpx.AsyncClient, Actor],
    provider: ScriptedProvider,
    sync_sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    client, actor = committed
    reconciler = Reconciler(sync_sessions, {"local": provider}, settings, owner="test-restart")
    r = await client.post("/v1/clusters", headers=actor.headers, json=SPEC)
    assert r.status_code == 202, r.text
    cid = str(r.json()["id"])
    for _ in range(3):
        reconciler.reconcile(cid)
    assert await state(client, actor, cid) == ("RUNNING", None)

    provider.running.pop(cid)  # the restart took the Ray nodes with it
    assert cid in restart.unconfirm(sync_sessions)
    assert await state(client, actor, cid) == ("DEGRADED", "Restarted")
    assert cid not in restart.unconfirm(sync_sessions)  # a second start changes nothing more

    reconciler.reconcile(cid)  # sees no node: starts them again, still DEGRADED
    assert (await state(client, actor, cid))[0] == "DEGRADED"
    reconciler.reconcile(cid)  # sees them: RUNNING again
    assert await state(client, actor, cid) == ("RUNNING", None)
