"""The local node's log shipper against a node directory laid out as Ray lays it out, with a
real process as the node's leader (no Ray needed): resuming without repeating or losing a
byte, the final pass after the node died, and a head restarted in its directory."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from rayplane.logstore import LogKey, LogStore, open_store
from rayplane.providers.local import logship
from rayplane.providers.local.logship import Shipper


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return open_store(f"file://{tmp_path / 'store'}", "rayplane-logs")


def leader() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "120"], start_new_session=True)


@pytest.fixture
def node() -> Iterator[subprocess.Popen[bytes]]:
    proc = leader()
    yield proc
    proc.kill()
    proc.wait()


def new_session(node_dir: Path, name: str) -> Path:
    logs = node_dir / name / "logs"
    (logs / "serve").mkdir(parents=True)
    link = node_dir / "session_latest"
    link.unlink(missing_ok=True)
    link.symlink_to(node_dir / name)
    return logs


def spec(proc: subprocess.Popen[bytes]) -> dict[str, object]:
    created = psutil.Process(proc.pid).create_time()
    return {"tenant": "ten_1", "cluster": "cls_1", "node": "head", "leader_pid": proc.pid,
            "leader_create_time": created, "interval": 0.1}  # fmt: skip


def write(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def test_resumes_where_the_store_ends(tmp_path: Path, store: LogStore, node: subprocess.Popen[bytes]) -> None:
    node_dir = tmp_path / "head"
    logs = new_session(node_dir, "session_2026-12-04_10-00-00_000001_1")
    write(logs / "raylet.out", b"a\nb\n")
    write(logs / "serve" / "controller_1.log", b"serve\n")
    first = Shipper(store, node_dir, spec(node))
    assert first.ship_once() == 10
    assert first.ship_once() == 0
    write(logs / "raylet.out", b"c\n")
    # A shipper started again (its state file, the store's sizes) ships only what is new.
    again = Shipper(store, node_dir, spec(node))
    assert again.ship_once() == 2
    first.ship_once()  # the old one learns the store moved on, and writes nothing twice
    assert store.read(LogKey("ten_1", "cls_1", "head", "raylet.out")) == b"a\nb\nc\n"
    assert store.read(LogKey("ten_1", "cls_1", "head", "serve/controller_1.log")) == b"serve\n"


def test_final_bytes_after_the_node_died(tmp_path: Path, store: LogStore) -> None:
    proc = leader()
    node_dir = tmp_path / "head"
    logs = new_session(node_dir, "session_2026-12-04_10-00-00_000001_1")
    shipper = Shipper(store, node_dir, spec(proc))
    done = threading.Thread(target=shipper.run)
    done.start()
    write(logs / "raylet.out", b"before\n")
    proc.kill()
    proc.wait()
    write(logs / "raylet.out", b"last words\n")
    done.join(timeout=logship.LINGER_SECONDS)
    assert not done.is_alive()
    assert store.read(LogKey("ten_1", "cls_1", "head", "raylet.out")) == b"before\nlast words\n"


def test_a_head_started_again_continues_its_files(tmp_path: Path, store: LogStore) -> None:
    node_dir = tmp_path / "head"
    old = leader()
    logs = new_session(node_dir, "session_2026-12-04_10-00-00_000001_1")
    write(logs / "raylet.out", b"old session\n")
    Shipper(store, node_dir, spec(old)).ship_once()
    old.kill()
    old.wait()
    time.sleep(2)  # the new leader is younger than the old session link (psutil times are coarse)
    new = leader()
    try:
        shipper = Shipper(store, node_dir, spec(new))
        assert shipper.ship_once() == 0  # the old session_latest is not the new node's
        logs = new_session(node_dir, "session_2026-12-04_10-05-00_000001_2")
        write(logs / "raylet.out", b"new\n")
        assert shipper.ship_once() == 4
        restarted = Shipper(store, node_dir, spec(new))  # its base comes back from the state file
        write(logs / "raylet.out", b"more\n")
        assert restarted.ship_once() == 5
    finally:
        new.kill()
        new.wait()
    assert store.read(LogKey("ten_1", "cls_1", "head", "raylet.out")) == b"old session\nnew\nmore\n"


def test_the_process_ships_and_ends_with_its_node(tmp_path: Path, store: LogStore) -> None:
    """``start`` runs the shipper detached, the store URL in its environment only."""
    proc = leader()
    node_dir = tmp_path / "head"
    logs = new_session(node_dir, "session_2026-12-04_10-00-00_000001_1")
    write(logs / "raylet.out", b"hello\n")
    shipping = logship.Shipping(f"file://{tmp_path / 'store'}", "rayplane-logs", interval=0.2)
    created = psutil.Process(proc.pid).create_time()
    logship.start(shipping, node_dir, tenant="ten_1", cluster="cls_1", node="head", leader=(proc.pid, created))
    try:
        (shipper,) = logship.running(tmp_path)
        assert str(tmp_path / "store") not in " ".join(shipper.cmdline())
        key = LogKey("ten_1", "cls_1", "head", "raylet.out")
        deadline = time.monotonic() + 30
        while store.size(key) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.read(key) == b"hello\n"
    finally:
        proc.kill()
        proc.wait()
    write(logs / "raylet.out", b"bye\n")
    logship.wait(tmp_path, timeout=logship.LINGER_SECONDS + 10)
    assert not logship.running(tmp_path)
    assert store.read(key) == b"hello\nbye\n"
    assert "ended" in (node_dir / logship.LOG_FILE).read_text()
    assert os.stat(node_dir / logship.STATE_FILE).st_size > 0
