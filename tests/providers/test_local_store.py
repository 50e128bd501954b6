"""nodes.json, its merge with the caller's state, and the cluster lock."""

from __future__ import annotations

import json
import multiprocessing
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import pytest

from rayplane.providers.base import RetriableError, TerminalError
from rayplane.providers.local import commands, store
from rayplane.providers.local.processes import NodeRecord


def record(name: str, pid: int = 123, group: str = "cpu") -> NodeRecord:
    return NodeRecord(
        name=name,
        group=group,
        index=1,
        pid=pid,
        create_time=1000.5,
        temp_dir=f"/x/{name}",
        log_path=f"/x/{name}/start.log",
        ports={"agent": 20001},
        resources={"num_cpus": 1},
        started_at=1000.0,
    )


def test_cluster_dir_uses_the_last_ten_characters(tmp_path: Path) -> None:
    assert store.cluster_dir(tmp_path, "cl_0123456789abcdef") == tmp_path / "6789abcdef"


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    content = store.ClusterFile(cluster_id="c", nodes={"cpu-1": record("cpu-1")}, next_index=2, head_ports={"gcs": 1})
    store.write(tmp_path, content)
    assert store.read(tmp_path, "c") == content
    assert [p.name for p in tmp_path.iterdir()] == ["nodes.json"]  # no temp file left behind
    assert json.loads((tmp_path / "nodes.json").read_text())["nodes"]["cpu-1"]["pid"] == 123


def test_missing_or_broken_file_reads_empty(tmp_path: Path) -> None:
    assert store.read(tmp_path, "c").nodes == {}
    (tmp_path / "nodes.json").write_text("{not json")
    assert store.read(tmp_path, "c").nodes == {}


def test_the_file_wins_and_state_adds_what_the_file_lost() -> None:
    file = store.ClusterFile(cluster_id="c", nodes={"cpu-1": record("cpu-1", pid=1)}, next_index=2)
    state = store.ClusterFile(
        cluster_id="c", nodes={"cpu-1": record("cpu-1", pid=9), "cpu-7": record("cpu-7", pid=7)}, next_index=8
    ).to_dict()
    merged = store.merge(file, state)
    assert merged.nodes["cpu-1"].pid == 1
    assert merged.nodes["cpu-7"].pid == 7
    assert merged.next_index == 8


def _hold(path: str, held: EventType, seconds: float) -> None:
    """Hold the lock for ``seconds`` (the holder's stand-in for slow work), saying when it has it."""
    with store.locked(Path(path)):
        held.set()
        time.sleep(seconds)


def test_the_lock_excludes_other_processes(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    held = spawn.Event()
    holder = spawn.Process(target=_hold, args=(str(tmp_path), held, 30))
    holder.start()
    try:
        assert held.wait(timeout=20), "the other process never took the lock"
        with pytest.raises(RetriableError), store.locked(tmp_path, timeout=0.5):
            pass
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock
        holder.join()
    with store.locked(tmp_path, timeout=5):
        pass


def test_a_directory_of_another_cluster_is_refused(tmp_path: Path) -> None:
    store.write(tmp_path, store.ClusterFile(cluster_id="cl_other_0123456789"))
    with pytest.raises(TerminalError):
        store.read(tmp_path, "cl_mine_0123456789")


def test_recent_events_are_kept_bounded_and_expire() -> None:
    content = store.ClusterFile(cluster_id="c")
    for i in range(store.MAX_EVENTS + 5):
        content.add_event(f"event {i}", now=1000.0 + i)
    assert len(content.events) == store.MAX_EVENTS
    assert content.recent_events(2, now=1000.0 + store.MAX_EVENTS + 4) == [
        f"event {store.MAX_EVENTS + 2}",
        f"event {store.MAX_EVENTS + 3}",
        f"event {store.MAX_EVENTS + 4}",
    ]
    assert store.ClusterFile.from_dict(content.to_dict(), "c").events == content.events


def test_a_head_never_picks_ports_another_cluster_records(tmp_path: Path) -> None:
    """A reserved Serve port is bound by nothing until Serve runs, so the probe cannot see it."""
    other = store.ClusterFile(cluster_id="other", head_ports={"gcs": 20001, "serve": 20002}, nodes={"w": record("w")})
    store.write(tmp_path / "other", other)
    wanted = store.ClusterFile(cluster_id="me", head_ports={"dashboard": 20002, "serve": 20001})
    ports = store.pick_head_ports(tmp_path, tmp_path / "me", wanted)
    assert set(ports) == {*commands.HEAD_PORTS, commands.SERVE_PORT}
    assert not {20001, 20002} & set(ports.values())  # not even the ones this cluster preferred
    assert store.ports_recorded(tmp_path, tmp_path / "other") == set()  # a cluster skips its own


def test_a_head_from_before_serve_ports_gets_one(tmp_path: Path) -> None:
    head = record("head", group="head")
    cf = store.ClusterFile(cluster_id="c", nodes={"head": head}, head_ports={"agent": 20001})
    store.reserve_serve_port(tmp_path, tmp_path / "c", cf, head)
    port = head.ports[commands.SERVE_PORT]
    assert port != 20001
    assert cf.head_ports[commands.SERVE_PORT] == port
    assert store.read(tmp_path / "c", "c").head_ports[commands.SERVE_PORT] == port
    store.reserve_serve_port(tmp_path, tmp_path / "c", cf, head)
    assert head.ports[commands.SERVE_PORT] == port  # kept
