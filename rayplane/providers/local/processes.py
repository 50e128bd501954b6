"""Detached node processes: start them so they outlive their starter, find them again by
pid *and* creation time, stop them by session and process group (TERM, a deadline, KILL).

A node is one ``ray start --block`` process leading its own session and process group.
Ray's gcs_server, raylet, dashboard and agents are its children in that group; task and
actor workers get process groups of their own but stay in the session. Job drivers run in
sessions of their own (Ray's job supervisor starts them with ``start_new_session``), so
stopping also kills every descendant seen under the leader.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from rayplane.providers.base import TerminalError

# Ports Rayplane picks for Ray: below the kernel's ephemeral range (32768-60999 on Linux),
# above Ray's default worker port range (10002-19999) that other Ray installs may use.
PORT_RANGE = (20000, 32000)
CREATE_TIME_TOLERANCE = 0.05

# A short-lived intermediate: starts the node in a new session, prints its pid and exits
# at once, so the node is re-parented (to init or a subreaper) and never becomes a zombie
# of the starter, and dies with neither the intermediate nor the starter.
# With a "user" (uid, gid), the node drops to it (no supplementary groups) before exec, and
# creates its files private to it.
_LAUNCHER = r"""
import json, os, subprocess, sys
spec = json.loads(sys.stdin.read())
who = {}
if spec.get("user"):
    uid, gid = spec["user"]
    who = {"user": uid, "group": gid, "extra_groups": [], "umask": 0o077}
with open(spec["log"], "ab", buffering=0) as log:
    proc = subprocess.Popen(
        spec["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env=spec["env"], cwd=spec["cwd"], start_new_session=True, close_fds=True, **who,
    )
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


@dataclass
class NodeRecord:
    """What Rayplane keeps about one node it started (JSON-able via ``to_dict``)."""

    name: str
    group: str  # "head" for the head node
    index: int
    pid: int
    create_time: float
    temp_dir: str
    log_path: str
    ports: dict[str, int]
    resources: dict[str, int]
    started_at: float
    # Workers: the head they joined, so a worker of a replaced head is never kept.
    head_pid: int | None = None
    head_create_time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NodeRecord:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


def ray_binary() -> Path:
    """The ``ray`` CLI next to this interpreter (the same virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return beside
    found = shutil.which("ray")
    if found is None:
        raise TerminalError("the ray CLI is not installed (install rayplane's 'local' extra)", code="RayNotInstalled")
    return Path(found)


def spawn_detached(
    argv: Sequence[str], *, env: dict[str, str], log_path: Path, cwd: Path, user: tuple[int, int] | None = None
) -> tuple[int, float]:
    """Start ``argv`` in a new session through a short-lived intermediate; (pid, create_time).

    ``env`` is the node's whole environment (nothing of ours is added); ``user`` (uid, gid)
    runs it as that user, which needs root."""
    spec = json.dumps(
        {"argv": list(argv), "env": env, "log": str(log_path), "cwd": str(cwd), "user": list(user) if user else None}
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", _LAUNCHER],
        input=spec.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise RuntimeError(f"could not start {argv[0]}: {done.stderr.decode(errors='replace')[-2000:]}")
    pid = int(done.stdout)
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        create_time = 0.0  # died at once; recorded anyway so the caller sees it dead
    return pid, create_time


def process_of(pid: int, create_time: float) -> psutil.Process | None:
    """The live (non-zombie) process ``pid`` if it is the one created at ``create_time``."""
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(record: NodeRecord) -> bool:
    return process_of(record.pid, record.create_time) is not None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def session_members(sid: int) -> list[psutil.Process]:
    """Live, non-zombie processes of session ``sid``.

    A node's leader starts a session; everything Ray starts for the node stays in it,
    including task and actor workers that the raylet puts in process groups of their own
    (so a signal to the leader's process group alone would miss them)."""
    members = []
    for proc in psutil.process_iter():
        if _sid(proc.pid) != sid:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return list(proc.children(recursive=True))
    except psutil.Error:
        return []


def _alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def record_session(rec: NodeRecord) -> list[psutil.Process]:
    """Live processes of the node's session, including when its leader is gone.

    A session (or process-group) id cannot be reused while any member lives; if the
    leader's pid now belongs to a newer process, the old session is empty and nothing is
    returned."""
    try:
        if abs(psutil.Process(rec.pid).create_time() - rec.create_time) > CREATE_TIME_TOLERANCE:
            return []
    except psutil.NoSuchProcess:
        pass
    except psutil.Error:
        return []
    members = []
    for proc in session_members(rec.pid):
        with contextlib.suppress(psutil.Error):
            if proc.create_time() >= rec.create_time - CREATE_TIME_TOLERANCE:
                members.append(proc)
    return members


def stop_nodes(records: Sequence[NodeRecord], *, timeout: float = 10.0) -> list[str]:
    """Stop these nodes together: TERM each leader, wait up to ``timeout`` for each node's
    session to end, then KILL what remains (the leader's process group, every session
    member and every descendant seen). Returns the names of nodes that still had live
    processes after the KILL (should be empty)."""
    tracked: dict[str, list[psutil.Process]] = {}
    by_name = {rec.name: rec for rec in records}
    for rec in records:
        proc = process_of(rec.pid, rec.create_time)
        tracked[rec.name] = [] if proc is None else [proc, *_descendants(proc)]
        if proc is not None:
            # `ray start --block` shuts its node down on SIGTERM; a TERM to the whole group
            # can leave the head's gcs_server and monitor running, so only the leader gets it.
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)

    def remaining(name: str) -> list[psutil.Process]:
        return _alive([*tracked[name], *record_session(by_name[name])])

    pending = set(by_name)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {name for name in pending if remaining(name)}
        if pending:
            time.sleep(0.2)
    for name in pending:
        rec = by_name[name]
        for proc in list(tracked[name]):
            tracked[name].extend(_descendants(proc))
        _kill(rec.pid, remaining(name))
    deadline = time.monotonic() + 5.0
    while pending and time.monotonic() < deadline:
        pending = {name for name in pending if remaining(name)}
        if pending:
            time.sleep(0.1)
    return sorted(pending)


def _kill(pgid: int | None, procs: list[psutil.Process]) -> None:
    # A member of the group still runs, so its id cannot have been reused: killpg is safe.
    if pgid is not None and any(_pgid(p.pid) == pgid for p in procs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()  # psutil checks the process is still the one it saw


def processes_under(directory: Path) -> list[psutil.Process]:
    """Live processes with an option pointing under ``directory`` (``--temp-dir=``,
    ``--log_dir=``, ``--raylet_socket_name=`` ...: Ray's own processes carry their node's
    temp dir that way; a shell merely looking at the directory does not)."""
    needle = "=" + str(directory).rstrip("/") + "/"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid == os.getpid() or not any(arg.startswith("-") and needle in arg for arg in cmdline):
            continue
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def node_leaders_under(directory: Path) -> list[psutil.Process]:
    """``ray start`` leaders (of any node) whose --temp-dir lies under ``directory``."""
    needle = "--temp-dir=" + str(directory).rstrip("/") + "/"
    leaders = []
    for proc in processes_under(directory):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.cmdline()
            if "start" in cmdline and any(arg.startswith(needle) for arg in cmdline) and _pgid(proc.pid) == proc.pid:
                leaders.append(proc)
    return leaders


def kill_processes(procs: Sequence[psutil.Process], *, timeout: float = 5.0) -> None:
    """KILL these processes and their groups when they lead one; wait (bounded)."""
    for proc in procs:
        leads_group = _pgid(proc.pid) == proc.pid
        _kill(proc.pid if leads_group else None, [proc, *_descendants(proc)])
    deadline = time.monotonic() + timeout
    while _alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` (IPv4 or IPv6). The probe binds with SO_REUSEADDR, as Ray's
    servers do, so that connections of a node just stopped, still in TIME_WAIT, do not make its
    port look taken (it is not: the node starting again binds it)."""
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):  # noqa: S104 - probing only
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (97, 99):  # no IPv6 here
                continue
            return False
    return True


def pick_ports(count: int, *, avoid: Iterable[int] = (), preferred: Sequence[int | None] = ()) -> list[int]:
    """``count`` distinct ports free right now. Position ``i`` keeps ``preferred[i]`` when that
    port is given, free, not in ``avoid`` and not already chosen; every other position gets a
    random free port from PORT_RANGE (a clash with another starter is caught when the node
    fails). Each port is kept or replaced on its own: one taken port does not move the others
    (a head that starts again keeps its dashboard address when only another port is taken)."""
    avoid_set = set(avoid)
    chosen: list[int] = []
    for i in range(count):
        wanted = preferred[i] if i < len(preferred) else None
        if wanted is not None and wanted not in avoid_set and wanted not in chosen and port_is_free(wanted):
            chosen.append(wanted)
        else:
            chosen.append(_random_port(avoid_set, chosen, preferred))
    return chosen


def _random_port(avoid: set[int], chosen: list[int], preferred: Sequence[int | None]) -> int:
    """A free port from PORT_RANGE outside ``avoid`` and ``chosen``; the preferred ports are
    left for the positions that want them."""
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randrange(*PORT_RANGE)
        if port in avoid or port in chosen or port in preferred or not port_is_free(port):
            continue
        return port
    raise RuntimeError("no free ports left in the range Rayplane uses for Ray")


def log_tail(path: Path, limit: int = 2000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def last_error(log_path: Path) -> str:
    """The most telling line at the end of a node's ``ray start`` output."""
    lines = [line.strip() for line in log_tail(log_path, 4000).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line or "failed" in line.lower():
            return line[:300]
    return lines[-1][:300] if lines else "no output"
