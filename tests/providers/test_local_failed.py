"""A terminal error on a RUNNING local cluster, with real Ray processes: the cluster goes
FAILED, stops being billed, its Ray nodes are stopped, and it can still be stopped,
started and deleted.

The terminal error is a real one: the worker loses the ``ray`` CLI (neither beside its
interpreter nor on ``PATH`` any more, as after an upgrade that dropped the ``local`` extra),
so the next ``ensure`` raises ``RayNotInstalled`` while the nodes started earlier keep
running. The
reconciler runs in this process, as a worker runs it, against the real API and database.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.clusters.reconcile import Reconciler
from rayplane.clusters.values import State
from rayplane.providers.base import TerminalError
from rayplane.providers.local import LocalProvider, processes, store
from rayplane.settings import Settings
from rayplane.usage.models import UsageInterval
from tests.support.factories import Actor

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SPEC = {
    "name": "fails",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
}


@pytest.fixture
def local() -> Iterator[LocalProvider]:
    with tempfile.TemporaryDirectory(prefix="rpf-", dir="/tmp") as root:
        provider = LocalProvider(Path(root))
        try:
            yield provider
        finally:
            provider.stop_all()


def cluster_dir_processes(provider: LocalProvider, cid: str) -> int:
    cdir = store.cluster_dir(provider.root, cid)
    return len(processes.processes_under(cdir)) if cdir.exists() else 0


def until(reconciler: Reconciler, sessions: sessionmaker[Session], cid: str, state: State, timeout: float) -> None:
    """Reconcile pass after pass until the cluster is in ``state`` (Ray needs a few)."""
    deadline = time.monotonic() + timeout
    while True:
        reconciler.reconcile(cid)
        with sessions() as s:
            current = s.get(Cluster, cid)
            assert current is not None
            if current.state == state:
                return
            reason = current.state_reason
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid} still {current.state} ({reason}) after {timeout} s")
        time.sleep(0.5)


def open_intervals(sessions: sessionmaker[Session], cid: str) -> int:
    with sessions() as s:
        stmt = select(UsageInterval).where(UsageInterval.cluster_id == cid, UsageInterval.ended_at.is_(None))
        return len(list(s.execute(stmt).scalars()))


async def test_a_running_local_cluster_that_fails_releases_its_nodes_and_can_be_stopped_and_deleted(
    committed: tuple[httpx.AsyncClient, Actor],
    local: LocalProvider,
    sync_sessions: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, actor = committed
    reconciler = Reconciler(sync_sessions, {"local": local}, settings, owner="test-local-failed")
    r = await client.post("/v1/clusters", headers=actor.headers, json=SPEC)
    assert r.status_code == 202, r.text
    cid = str(r.json()["id"])
    until(reconciler, sync_sessions, cid, State.RUNNING, timeout=300)
    assert cluster_dir_processes(local, cid) > 0
    assert open_intervals(sync_sessions, cid) == 2

    ray_dir = str(processes.ray_binary().parent)
    monkeypatch.setattr(sys, "executable", str(Path(tempfile.gettempdir()) / "no-such-venv" / "python"))
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != ray_dir))
    with pytest.raises(TerminalError):
        processes.ray_binary()
    reconciler.reconcile(cid)
    with sync_sessions() as s:
        failed = s.get(Cluster, cid)
        assert failed is not None
        assert (failed.state, failed.state_code, failed.release_pending) == (State.FAILED, "RayNotInstalled", True)
    assert open_intervals(sync_sessions, cid) == 0  # billed no more from the instant it failed

    assert reconciler.reconcile(cid) == "release"
    assert cluster_dir_processes(local, cid) == 0  # no Ray process of the cluster is left
    with sync_sessions() as s:
        kinds = [e.kind for e in s.execute(select(ClusterEvent).where(ClusterEvent.cluster_id == cid)).scalars()]
    assert "compute_released" in kinds

    r = await client.post(f"/v1/clusters/{cid}:stop", headers=actor.headers)
    assert r.status_code == 202
    until(reconciler, sync_sessions, cid, State.STOPPED, timeout=60)

    monkeypatch.undo()
    r = await client.delete(f"/v1/clusters/{cid}", headers=actor.headers)
    assert r.status_code == 202
    until(reconciler, sync_sessions, cid, State.DELETED, timeout=60)
    with sync_sessions() as s:
        running = s.execute(select(Operation).where(Operation.cluster_id == cid, Operation.status == "Running"))
        assert list(running.scalars()) == []
    assert not store.cluster_dir(local.root, cid).exists()
