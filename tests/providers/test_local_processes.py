"""Detached node processes: started in their own session, found by pid and creation time,
stopped by process group with TERM, a deadline, then KILL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from rayplane.providers.local import processes
from rayplane.providers.local.processes import NodeRecord

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# Ignores SIGTERM and starts a child that ignores it too, in a process group of its own
# (as Ray's raylet does with task workers) but the same session: only SIGKILL to every
# session member ends it.
STUBBORN = [
    sys.executable,
    "-c",
    textwrap.dedent(
        """
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c",
            "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); os.setpgrp(); time.sleep(120)"])
        time.sleep(120)
        """
    ),
]


def spawn(tmp_path: Path, argv: list[str], name: str = "n") -> NodeRecord:
    pid, created = processes.spawn_detached(argv, env=dict(os.environ), log_path=tmp_path / f"{name}.log", cwd=tmp_path)
    return make_record(tmp_path, name, pid, created)


def make_record(tmp_path: Path, name: str, pid: int, created: float) -> NodeRecord:
    return NodeRecord(
        name=name,
        group="cpu",
        index=1,
        pid=pid,
        create_time=created,
        temp_dir=str(tmp_path),
        log_path=str(tmp_path / f"{name}.log"),
        ports={},
        resources={},
        started_at=time.time(),
    )


def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def spawned() -> Iterator[list[NodeRecord]]:
    records: list[NodeRecord] = []
    yield records
    processes.stop_nodes(records, timeout=0)


def test_spawned_process_leads_its_own_session_and_is_not_our_child(tmp_path: Path, spawned: list[NodeRecord]) -> None:
    rec = spawn(tmp_path, SLEEPER)
    spawned.append(rec)
    proc = psutil.Process(rec.pid)
    assert os.getsid(rec.pid) == rec.pid == os.getpgid(rec.pid)
    assert proc.ppid() != os.getpid()
    assert processes.is_alive(rec)


def test_spawned_process_survives_its_starter_killed(tmp_path: Path, spawned: list[NodeRecord]) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from rayplane.providers.local import processes
        pid, created = processes.spawn_detached({SLEEPER!r}, env=dict(os.environ),
            log_path=Path({str(tmp_path / "x.log")!r}), cwd=Path({str(tmp_path)!r}))
        print(pid, created, flush=True)
        time.sleep(120)
        """
    )
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    pid_text, created_text = starter.stdout.readline().split()
    rec = make_record(tmp_path, "x", int(pid_text), float(created_text))
    spawned.append(rec)
    starter.kill()
    starter.wait()
    # The starter's death has reached the node once the node has another parent; whatever that
    # death would do to a node still tied to it (a parent-death signal, a hangup) is done by then.
    until(lambda: psutil.Process(rec.pid).ppid() != starter.pid, "the node to be reparented")
    assert processes.is_alive(rec)


def test_a_reused_pid_is_not_ours(tmp_path: Path, spawned: list[NodeRecord]) -> None:
    rec = spawn(tmp_path, SLEEPER)
    spawned.append(rec)
    impostor = NodeRecord(**{**rec.to_dict(), "create_time": rec.create_time - 100})
    assert processes.process_of(impostor.pid, impostor.create_time) is None
    assert processes.stop_nodes([impostor], timeout=0.2) == []
    assert processes.is_alive(rec)  # never signalled


def test_a_zombie_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, "the child to exit unreaped")
    created = psutil.Process(child.pid).create_time()
    assert processes.process_of(child.pid, created) is None
    child.wait()


def test_stop_ends_a_polite_group_with_term(tmp_path: Path, spawned: list[NodeRecord]) -> None:
    rec = spawn(tmp_path, SLEEPER)
    spawned.append(rec)
    started = time.monotonic()
    assert processes.stop_nodes([rec], timeout=10) == []
    assert time.monotonic() - started < 5
    assert not processes.is_alive(rec)


def pgids(members: list[psutil.Process]) -> set[int]:
    out = set()
    for proc in members:
        with contextlib.suppress(OSError):
            out.add(os.getpgid(proc.pid))
    return out


def test_stop_kills_a_session_that_ignores_term(tmp_path: Path, spawned: list[NodeRecord]) -> None:
    rec = spawn(tmp_path, STUBBORN)
    spawned.append(rec)
    until(lambda: len(pgids(processes.session_members(rec.pid))) >= 2, "the child's own process group")
    members = processes.session_members(rec.pid)
    assert len(members) == 2
    assert len(pgids(members)) == 2  # the child left the leader's process group
    assert processes.stop_nodes([rec], timeout=0.5) == []
    assert processes.session_members(rec.pid) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)


def test_stop_cleans_up_a_session_whose_leader_died(tmp_path: Path, spawned: list[NodeRecord]) -> None:
    rec = spawn(tmp_path, STUBBORN)
    spawned.append(rec)
    until(lambda: len(processes.session_members(rec.pid)) >= 2, "the leader's child")
    os.kill(rec.pid, signal.SIGKILL)
    until(lambda: not processes.is_alive(rec), "the killed leader to be dead")
    assert len(processes.record_session(rec)) == 1
    assert processes.stop_nodes([rec], timeout=0) == []
    assert processes.record_session(rec) == []


def test_pick_ports_prefers_the_previous_ones_when_free() -> None:
    first = processes.pick_ports(3)
    assert len(set(first)) == 3
    assert all(processes.PORT_RANGE[0] <= p < processes.PORT_RANGE[1] for p in first)
    assert processes.pick_ports(3, preferred=first) == first
    assert not set(processes.pick_ports(3, avoid=first)) & set(first)


def test_a_taken_preferred_port_is_replaced_and_the_others_kept() -> None:
    first = processes.pick_ports(3)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", first[1]))
        taken.listen()
        assert not processes.port_is_free(first[1])
        again = processes.pick_ports(3, preferred=first)
    assert again[0] == first[0]
    assert again[2] == first[2]
    assert again[1] != first[1]
    assert len(set(again)) == 3
    # A position without a preference gets a port no other position wants.
    fresh = processes.pick_ports(3, preferred=[first[0], None, first[2]])
    assert (fresh[0], fresh[2]) == (first[0], first[2])
    assert fresh[1] not in first


def test_a_port_whose_connections_linger_in_time_wait_counts_as_free() -> None:
    port = processes.pick_ports(1)[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        client.close()
    assert processes.port_is_free(port)


def test_log_tail_reads_the_end(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("a" * 5000 + "END")
    assert processes.log_tail(path, 10).endswith("END")
    assert processes.log_tail(tmp_path / "missing") == ""
