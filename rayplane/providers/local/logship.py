"""The log shipper of a local Ray node: a small process beside the node that copies the
node's Ray session logs into the log store, every ``interval`` seconds, until the node is
gone and its last bytes are stored.

Run as ``python -m rayplane.providers.local.logship <node dir> <spec JSON>``, with the store's
URL (a secret) in ``RAYPLANE_LOG_STORE_URL`` and never on the command line. Started detached
(a session of its own, not the node's), so killing the node, or all of it, leaves the
shipper to ship the final bytes; stopping a cluster waits for its shippers (``wait``).

Offsets: the store's size of a file is where shipping resumes, less the file's *base*: the
store size the file had when this session first shipped to it (0 unless a head restarted
under the same name and its new session continues the old blobs). Bases are kept in
``<node dir>/logship.json`` and written before the first append that depends on them, so a
shipper killed at any point and started again neither skips nor repeats a byte.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from rayplane.logstore import LogKey, LogStore, OffsetMismatch, open_store
from rayplane.logstore.base import valid_path
from rayplane.providers.local import processes

MODULE = "rayplane.providers.local.logship"
STATE_FILE = "logship.json"
LOG_FILE = "logship.log"
STORE_ENV = "RAYPLANE_LOG_STORE_URL"
# Most bytes of one file per append (an Azure append block is at most 4 MiB everywhere).
BATCH = 4 * 1024 * 1024
# After the node's leader died: how long its other processes may keep writing before the
# shipper takes its final pass regardless.
LINGER_SECONDS = 20.0

log = logging.getLogger(MODULE)


@dataclass(frozen=True)
class Shipping:
    """Where a provider's nodes ship their logs."""

    store_url: str = field(repr=False)
    container: str
    interval: float = 1.0


def start(
    shipping: Shipping, node_dir: Path, *, tenant: str, cluster: str, node: str, leader: tuple[int, float]
) -> None:
    """Start the shipper of the node led by ``leader`` (pid, creation time), detached."""
    spec = {
        "tenant": tenant,
        "cluster": cluster,
        "node": node,
        "leader_pid": leader[0],
        "leader_create_time": leader[1],
        "container": shipping.container,
        "interval": shipping.interval,
    }
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", STORE_ENV: shipping.store_url}
    argv = [sys.executable, "-m", MODULE, str(node_dir), json.dumps(spec, separators=(",", ":"))]
    processes.spawn_detached(argv, env=env, log_path=node_dir / LOG_FILE, cwd=node_dir)


def running(directory: Path) -> list[psutil.Process]:
    """Live shippers of node directories at or under ``directory``."""
    root = str(directory).rstrip("/")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        with contextlib.suppress(ValueError, IndexError, psutil.Error):
            at = cmdline.index(MODULE)
            node_dir = cmdline[at + 1]
            if (node_dir == root or node_dir.startswith(root + "/")) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def wait(directory: Path, timeout: float) -> None:
    """Let the shippers under ``directory`` finish their final pass (they end once their node
    has); KILL what still runs after ``timeout``: the directory is about to go."""
    deadline = time.monotonic() + timeout
    left = running(directory)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = running(directory)
    if left:
        processes.kill_processes(left)


class Shipper:
    def __init__(self, store: LogStore, node_dir: Path, spec: dict[str, Any]) -> None:
        self.store = store
        self.node_dir = node_dir
        self.tenant = str(spec["tenant"])
        self.cluster = str(spec["cluster"])
        self.node = str(spec["node"])
        self.leader = (int(spec["leader_pid"]), float(spec["leader_create_time"]))
        self.interval = float(spec.get("interval", 1.0))
        self.state_path = node_dir / STATE_FILE
        self.session: str | None = None
        self.bases: dict[str, int] = {}
        self.offsets: dict[str, int] = {}  # bytes of each local file already in the store
        self._load()

    def _load(self) -> None:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            raw = json.loads(self.state_path.read_text())
            # Only this node's own state: a head started again in the directory finds the
            # last head's state, whose session is not its own.
            if raw["leader"] == list(self.leader) and (self.node_dir / str(raw["session"])).is_dir():
                self.session = str(raw["session"])
                self.bases = {str(k): int(v) for k, v in raw["bases"].items()}

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"leader": list(self.leader), "session": self.session, "bases": self.bases}))
        os.replace(tmp, self.state_path)

    def find_session(self) -> str | None:
        """The session this node started: ``session_latest`` once Ray has (re)made it after
        the leader started (a head restarted in its directory finds its old one first)."""
        link = self.node_dir / "session_latest"
        try:
            if link.lstat().st_ctime < self.leader[1] - 0.5:
                return None
            name = Path(os.readlink(link)).name
        except OSError:
            return None
        if self.session != name:
            self.session, self.bases, self.offsets = name, {}, {}
            self._save()
        return name

    def _files(self, logs: Path) -> list[tuple[str, int]]:
        out = []
        for dirpath, _dirs, names in os.walk(logs):
            for name in names:
                path = Path(dirpath) / name
                rel = path.relative_to(logs).as_posix()
                with contextlib.suppress(OSError):
                    if valid_path(rel) and path.is_file() and not path.is_symlink():
                        out.append((rel, path.stat().st_size))
        return out

    def ship_once(self) -> int:
        """Store what the session's files gained since the last pass; the bytes shipped."""
        if self.session is None and self.find_session() is None:
            return 0
        logs = self.node_dir / str(self.session) / "logs"
        shipped = 0
        for rel, size in self._files(logs):
            key = LogKey(self.tenant, self.cluster, self.node, rel)
            if rel not in self.offsets:
                self._resume(key, size)
            offset = self.offsets[rel]
            if size <= offset:
                continue
            with open(logs / rel, "rb") as fh:
                fh.seek(offset)
                data = fh.read(BATCH)
            try:
                self.store.append(key, data, offset=self.bases[rel] + offset)
            except OffsetMismatch as exc:
                # Another writer, or an append applied whose answer was lost: trust the store.
                self.offsets[rel] = max(0, exc.actual - self.bases[rel])
                continue
            self.offsets[rel] = offset + len(data)
            shipped += len(data)
        return shipped

    def _resume(self, key: LogKey, local_size: int) -> None:
        stored = self.store.size(key)
        base = self.bases.get(key.path)
        if base is None or not 0 <= stored - base <= local_size:
            # First sight in this session (or the local file was truncated): continue after
            # what the store holds; the base is on disk before any append depends on it.
            base = stored
            self.bases[key.path] = base
            self._save()
        self.offsets[key.path] = stored - base

    def _node_processes_left(self) -> bool:
        pid, created = self.leader
        return any(
            p.create_time() >= created - processes.CREATE_TIME_TOLERANCE
            for p in processes.session_members(pid)
            if p.pid != os.getpid()
        )

    def run(self) -> None:
        """Ship until the node has ended (leader and every process of its session) and a last
        pass found nothing new; at most ``LINGER_SECONDS`` after the leader ended."""
        dead_since: float | None = None
        failures = 0
        while True:
            alive = processes.process_of(*self.leader) is not None
            if not alive and dead_since is None:
                dead_since = time.monotonic()
            try:
                shipped = self.ship_once()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a store outage must not end shipping
                failures += 1
                shipped = -1
                log.warning("shipping failed (%s): %s", type(exc).__name__, exc)
            if dead_since is not None:
                lingered = time.monotonic() - dead_since > LINGER_SECONDS
                if (shipped == 0 and not self._node_processes_left()) or lingered or not self.node_dir.exists():
                    if shipped != 0:
                        with contextlib.suppress(Exception):
                            self.ship_once()
                    return
            time.sleep(min(self.interval * (2 ** min(failures, 4)), 15.0))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # TERM (a cluster stopping) ends the node; the shipper keeps going until its final pass.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    node_dir, spec = Path(argv[0]), json.loads(argv[1])
    store = open_store(os.environ[STORE_ENV], str(spec["container"]))
    Shipper(store, node_dir, spec).run()
    log.info("node %s ended; its logs are stored", spec["node"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
