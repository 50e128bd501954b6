"""The per-cluster directory and its ``nodes.json``: what exists on this machine.

``nodes.json`` is rewritten atomically as each node starts or stops, so a caller killed
half-way leaves a record that the next call (from any process) adopts instead of starting
a duplicate. An exclusive ``flock`` on the directory serialises callers; the kernel
releases it when a holder dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rayplane.providers.base import RetriableError, TerminalError
from rayplane.providers.local import commands
from rayplane.providers.local.processes import NodeRecord, is_alive, pick_ports

STATE_FILE = "nodes.json"
LOCK_FILE = ".lock"
# Ray puts unix sockets at <temp dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store;
# Linux caps a socket path at 107 bytes. This is the part below a node's temp dir.
RAY_SOCKET_SUFFIX_LEN = len("/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")
MAX_SOCKET_PATH = 107
MAX_EVENTS = 20


def cluster_dir(root: Path, cluster_id: str) -> Path:
    """``<root>/<last 10 characters of the cluster id>`` (kept short for Ray's sockets)."""
    short = "".join(c for c in cluster_id if c.isalnum() or c in "-_")[-10:] or "cluster"
    return root / short


@dataclass
class ClusterFile:
    """The content of ``nodes.json``."""

    cluster_id: str
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    next_index: int = 1
    # The last head's ports, tried first when a head starts again (same dashboard URL).
    head_ports: dict[str, int] = field(default_factory=dict)
    # Recent facts worth showing users (a node that died, and why): {"at": epoch s, "message"}.
    events: list[dict[str, Any]] = field(default_factory=list)
    # The owning tenant, for the log shipper's names (set by ``ensure``; not stored).
    tenant: str = ""

    def add_event(self, message: str, *, now: float | None = None) -> None:
        self.events = [*self.events, {"at": time.time() if now is None else now, "message": message}][-MAX_EVENTS:]

    def recent_events(self, seconds: float, *, now: float | None = None) -> list[str]:
        since = (time.time() if now is None else now) - seconds
        return [str(e.get("message")) for e in self.events if float(e.get("at") or 0) >= since]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "next_index": self.next_index,
            "head_ports": dict(self.head_ports),
            # Not "events": these notes are shown as observation messages while recent, and
            # are not cluster events (an older file's "events" key is still read).
            "notes": list(self.events),
            "nodes": {name: rec.to_dict() for name, rec in sorted(self.nodes.items())},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], cluster_id: str) -> ClusterFile:
        nodes: dict[str, NodeRecord] = {}
        for name, rec in (raw.get("nodes") or {}).items():
            with contextlib.suppress(TypeError, KeyError):
                nodes[name] = NodeRecord.from_dict(rec)
        ports = raw.get("head_ports") or {}
        return cls(
            cluster_id=cluster_id,
            nodes=nodes,
            next_index=int(raw.get("next_index") or 1),
            head_ports={str(k): int(v) for k, v in ports.items()} if isinstance(ports, dict) else {},
            events=[e for e in raw.get("notes") or raw.get("events") or [] if isinstance(e, dict)],
        )

    def head(self) -> NodeRecord | None:
        return next((r for r in self.nodes.values() if r.group == "head"), None)

    def workers(self) -> list[NodeRecord]:
        return sorted((r for r in self.nodes.values() if r.group != "head"), key=lambda r: r.index)


def ports_recorded(root: Path, skip: Path) -> set[int]:
    """Ports that the clusters under ``root`` other than ``skip`` record (their heads' reserved
    Serve ports included, which no free-port probe sees while Serve is not deployed)."""
    used: set[int] = set()
    for other in root.glob(f"*/{STATE_FILE}"):
        if other.parent == skip:
            continue
        try:
            raw = json.loads(other.read_text())
            used.update(int(p) for p in (raw.get("head_ports") or {}).values())
            for rec in (raw.get("nodes") or {}).values():
                used.update(int(p) for p in (rec.get("ports") or {}).values())
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return used


def pick_head_ports(root: Path, cdir: Path, cf: ClusterFile) -> dict[str, int]:
    """Ports for a head starting in ``cdir``: Ray's (``commands.HEAD_PORTS``) and the Serve
    port (``commands.SERVE_PORT``). The last head's are asked for first, so that its dashboard,
    GCS and Serve addresses stay the same across stop/start and restarts (``pick_ports``
    replaces only those now taken); the ports other clusters under ``root`` record are
    avoided, since a reserved Serve port is bound by nothing until Serve is deployed."""
    names = (*commands.HEAD_PORTS, commands.SERVE_PORT)
    try:
        preferred = [cf.head_ports.get(p) for p in names]
        picked = pick_ports(len(names), preferred=preferred, avoid=ports_recorded(root, cdir))
    except RuntimeError as exc:
        raise RetriableError(str(exc), code="NoFreePorts") from exc
    return dict(zip(names, picked, strict=True))


def reserve_serve_port(root: Path, cdir: Path, cf: ClusterFile, head: NodeRecord) -> None:
    """Give a head started before Serve ports existed one, recorded as if picked at its start."""
    if commands.SERVE_PORT in head.ports:
        return
    used = {port for rec in cf.nodes.values() for port in rec.ports.values()} | ports_recorded(root, cdir)
    try:
        (port,) = pick_ports(1, preferred=[cf.head_ports.get(commands.SERVE_PORT)], avoid=used)
    except RuntimeError as exc:
        raise RetriableError(str(exc), code="NoFreePorts") from exc
    head.ports[commands.SERVE_PORT] = cf.head_ports[commands.SERVE_PORT] = port
    write(cdir, cf)


def read(path: Path, cluster_id: str) -> ClusterFile:
    try:
        raw = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return ClusterFile(cluster_id=cluster_id)
    if not isinstance(raw, dict):
        return ClusterFile(cluster_id=cluster_id)
    owner = raw.get("cluster_id")
    if owner and owner != cluster_id:  # two ids ending alike: never touch the other's nodes
        raise TerminalError(f"{path} belongs to cluster {owner}, not {cluster_id}", code="DirectoryConflict")
    return ClusterFile.from_dict(raw, cluster_id)


def write(path: Path, content: ClusterFile) -> None:
    """Atomic replace: a reader sees the old or the new file, never half of one."""
    path.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".nodes-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(content.to_dict(), fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path / STATE_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def merge(file: ClusterFile, state: dict[str, Any]) -> ClusterFile:
    """The file wins for every node it names; ``state`` adds nodes the file lost (which the
    caller then checks by pid and creation time before trusting them)."""
    from_state = ClusterFile.from_dict(state, file.cluster_id)
    nodes = dict(from_state.nodes)
    nodes.update(file.nodes)
    return ClusterFile(
        cluster_id=file.cluster_id,
        nodes=nodes,
        next_index=max(file.next_index, from_state.next_index),
        head_ports=file.head_ports or from_state.head_ports,
        events=file.events or from_state.events,
    )


@contextlib.contextmanager
def locked(path: Path, timeout: float = 180.0) -> Iterator[None]:
    """Hold the cluster's lock; RetriableError when another caller keeps it past ``timeout``."""
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK_FILE).open("a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RetriableError(f"another caller is working on {path}", code="ClusterBusy") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def live_head(state: dict[str, Any]) -> NodeRecord | None:
    """The head of a provider state (its ``nodes.json`` first, when the state names the
    directory) if its process runs."""
    cluster_id = str(state.get("cluster_id") or "")
    cf = ClusterFile.from_dict(state, cluster_id)
    if state.get("cluster_dir"):
        cf = merge(read(Path(str(state["cluster_dir"])), cluster_id), state)
    head = cf.head()
    return head if head is not None and is_alive(head) else None
