"""Two control planes on one machine (two checkouts, or a test run beside ``make run``): each
keeps its local Ray nodes under a root of its own, derived from its data dir, and stopping
one ``rayplane dev`` stops only its own clusters.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.e2e.stack import Stack, wait_for
from tests.support.services import scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Databases of their own on the test Redis (7-10 are other e2e modules').
REDIS_DBS = (11, 12)
HEAD_ONLY = {"name": "solo", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}


def redis_url_for(base: str, index: int) -> str:
    return base.rsplit("/", 1)[0] + f"/{index}" if base.startswith("redis://") else base


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


@pytest.fixture
def two_stacks(admin_db_url: str, redis_url: str) -> Iterator[tuple[Stack, Stack]]:
    with (
        scratch_database(admin_db_url) as db_a,
        scratch_database(admin_db_url) as db_b,
        tempfile.TemporaryDirectory(prefix="rpa-") as tmp_a,
        tempfile.TemporaryDirectory(prefix="rpb-") as tmp_b,
    ):
        # No RAYPLANE_LOCAL_RAY_ROOT: each instance derives its root from its data dir.
        a = Stack(Path(tmp_a), db_a, redis_url_for(redis_url, REDIS_DBS[0]), None, queue="-a")
        b = Stack(Path(tmp_b), db_b, redis_url_for(redis_url, REDIS_DBS[1]), None, queue="-b")
        started: list[Stack] = []
        try:
            started.append(a.start())
            started.append(b.start())
            yield a, b
        finally:
            for s in started:
                with contextlib.suppress(Exception):
                    s.delete_all()
                s.stop()
            for s in (a, b):
                leftovers = alive(
                    [
                        p
                        for p in psutil.process_iter(["cmdline"])
                        if str(s.ray_root) in " ".join(p.info["cmdline"] or [])
                    ]
                )
                for p in leftovers:
                    p.kill()
                shutil.rmtree(s.ray_root, ignore_errors=True)


def test_stopping_one_dev_instance_leaves_the_others_ray_nodes_running(two_stacks: tuple[Stack, Stack]) -> None:
    a, b = two_stacks
    assert a.ray_root != b.ray_root
    assert len(str(a.ray_root)) <= 16  # Ray's socket paths under it must fit in 107 bytes
    ids = {}
    for s in (a, b):
        r = s.request("POST", "/v1/clusters", json=HEAD_ONLY)
        assert r.status_code == 202, r.text
        ids[s.url] = r.json()["id"]
    for s in (a, b):
        s.wait_state(ids[s.url], "RUNNING")
    nodes_a = a.ray_node_processes(ids[a.url])
    nodes_b = b.ray_node_processes(ids[b.url])
    assert nodes_a
    assert nodes_b
    assert all(str(a.ray_root) in " ".join(p.cmdline()) for p in nodes_a)
    assert all(str(b.ray_root) in " ".join(p.cmdline()) for p in nodes_b)
    everything_of_b = b.cluster_processes(ids[b.url])

    a.stop()  # Ctrl-C: the supervisor stops its children, then its own local clusters

    wait_for(lambda: not alive(nodes_a), 60, "instance A's Ray nodes to stop")
    assert alive(nodes_b) == nodes_b, "stopping instance A stopped instance B's Ray nodes"
    assert alive(everything_of_b) == everything_of_b
    assert b.cluster(ids[b.url])["state"] == "RUNNING"
