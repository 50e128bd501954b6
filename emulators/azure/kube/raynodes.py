"""Real Ray behind the emulated Ray pods (``ray_backend: "real"``).

Each Ray pod of a RayCluster (head or worker, made by the simulated KubeRay operator) is
backed by one ``ray start --block`` process (:mod:`emulators.azure.kube.rayargs` builds its
command line), started in a session of its own with ``PR_SET_PDEATHSIG`` so that it gets
SIGTERM if the emulator dies, and Ray's own reaper takes the node's other processes down
when the leader goes (``ray start --block`` spawns one).

Ownership and lifecycle:

* **Start**: the kubelet (:class:`Workloads`) asks :meth:`gate` before it marks a bound Ray
  pod Running; the first ask starts the node, and the answer is True once the node serves
  (head: its dashboard and dashboard agent accept connections; worker: its agent does), as
  a readiness probe would hold a real pod. A worker starts only once its RayCluster's head
  node serves (KubeRay's ``wait-gcs-ready``). :meth:`poll` reports clusters whose nodes
  changed (came up, died), so the controller reconciles them again.
* **Restart**: a node whose ``ray start`` exited, or a worker whose head node is gone, is
  cleaned up by :meth:`sync`, and the controller starts a new node for its still-Running
  pod (a worker once the new head serves), as the kubelet restarts a crashed container.
* **Stop**: a node whose pod is gone, terminal, or belongs to another head is stopped by
  :meth:`sync` (a pod deleted by scale down, eviction, suspend, or its cluster's deletion):
  SIGTERM to the leader, which shuts the node down, then after ``ray_stop_seconds`` SIGKILL to
  every process carrying the node's marker. Stopping runs in a task; the pod is already gone.
* **Shutdown**: :meth:`shutdown` stops every node, waiting at most ``ray_stop_seconds``.
* **Restart**: the emulator's instance marker is derived from its data dir; on start
  :meth:`kill_stale` kills every process whose environment carries that instance's marker
  (nodes of a previous run that outlived it), before any new node starts.

Directories: each node's temp dir, ``HOME``, ``TMPDIR`` and ``start.log`` live under
``root/<8 hex of the pod uid>``. Ray's unix socket paths (``<temp dir>/session_<stamp>/
sockets/plasma_store``) must stay under 107 bytes, so ``root`` is ``DATA_DIR/r`` when that
is short enough, else a directory named after the data dir under the system temp dir.

Races: everything runs on the event loop except the stop tasks' waits, which only signal
processes they found by marker; a pod recreated with the same name has a new uid and so a
new node.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.azure.kube import rayargs

log = logging.getLogger(__name__)
Obj = dict[str, Any]
_PORT_RANGE = (20000, 32000)  # below the kernel's ephemeral range; Ray's defaults are outside it
_SOCKET_ROOM = 70  # "/session_2026-12-04_00-40-11_123456_1234567/sockets/plasma_store" and slack
_UNIX_PATH_MAX = 107


@dataclass
class Node:
    """One started Ray node (a pod's Ray container)."""

    cluster: str
    pod_uid: str
    rc_uid: str
    is_head: bool
    proc: subprocess.Popen[bytes]
    marker: str
    directory: Path
    ports: dict[str, int]
    head_uid: str | None = None  # workers: the head pod whose GCS they joined
    up: bool = False
    dead: bool = False
    started: float = field(default_factory=time.monotonic)


def _die_with_parent() -> None:
    """``preexec_fn``: SIGTERM when the emulator dies (``ray start --block`` then shuts down)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def ray_cli() -> Path:
    """The ``ray`` CLI of the emulator's own environment (Ray is installed beside it)."""
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return beside
    found = shutil.which("ray")
    if found is None:
        raise RuntimeError("ray_backend 'real' needs the ray CLI next to the emulator's Python")
    return Path(found)


def accepts(port: int) -> bool:
    """Something listens on 127.0.0.1:``port`` (a connect to localhost answers at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - a probe: Ray binds all interfaces for some ports
        except OSError:
            return False
    return True


def marked_pids(prefix: str) -> list[int]:
    """Pids of live processes whose environment has ``MARKER_ENV`` starting with ``prefix``
    (processes of other users are unreadable and skipped)."""
    needle = f"{rayargs.MARKER_ENV}={prefix}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(needle) for item in environ.split(b"\0")):
            out.append(int(entry.name))
    return out


def kill_marked(prefix: str) -> int:
    """SIGKILL every process carrying the marker ``prefix`` (and the groups they lead)."""
    pids = marked_pids(prefix)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def instance_marker(data_dir: Path) -> str:
    """The marker prefix of an emulator's Ray processes: one per data dir, stable across runs."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12] + ":"


def ray_root(data_dir: Path) -> Path:
    """Where an emulator's nodes keep their directories: ``DATA_DIR/r`` if Ray's socket paths
    fit under it, else ``<system temp>/azr-<instance>``."""
    root = data_dir.resolve() / "r"
    if len(str(root)) + 10 + _SOCKET_ROOM > _UNIX_PATH_MAX:
        root = Path(tempfile.gettempdir()) / f"azr-{instance_marker(data_dir)[:-1]}"
    return root


def node_dir(root: Path, pod_uid: str) -> Path:
    return root / hashlib.sha256(pod_uid.encode()).hexdigest()[:8]


class RayNodes:
    """The real Ray nodes of every emulated cluster; see the module docstring."""

    def __init__(self, data_dir: Path, *, stop_seconds: Callable[[], float]) -> None:
        self.instance = instance_marker(data_dir)[:-1]
        self.root = ray_root(data_dir)
        self.nodes: dict[str, Node] = {}  # pod uid -> node
        self.stop_seconds = stop_seconds
        self._stopping: set[asyncio.Task[None]] = set()
        # Pods whose old node is still stopping: a new node would share its marker and
        # directory (and be killed with it), so none starts until the old one is gone.
        self._draining: set[str] = set()
        self._ray: Path | None = None

    # -- restart ---------------------------------------------------------------------------
    def kill_stale(self) -> int:
        """Kill nodes of a previous run of this emulator (same data dir) and clear their dirs."""
        killed = kill_marked(self.instance + ":")
        if self.root.exists():
            for child in self.root.iterdir():
                shutil.rmtree(child, ignore_errors=True)
        if killed:
            log.warning("killed %d Ray processes left by a previous emulator run", killed)
        return killed

    # -- the kubelet's gate ------------------------------------------------------------------
    def gate(self, cluster: str, pod: Obj, rc: Obj | None, token: str | None) -> bool:
        """Whether the Ray pod may be Running: start its node if needed; True once it serves.
        Pods KubeRay did not make (no RayCluster owner) are not Ray's business: True."""
        if rc is None:
            return True
        uid = str(pod["metadata"]["uid"])
        node = self.nodes.get(uid)
        if node is None and uid in self._draining:
            return False
        if node is None:
            node = self._start(cluster, pod, rc, token)
            if node is None:
                return False
        return node.up

    def _head_of(self, rc_uid: str) -> Node | None:
        return next((n for n in self.nodes.values() if n.rc_uid == rc_uid and n.is_head and not n.dead), None)

    def _start(self, cluster: str, pod: Obj, rc: Obj, token: str | None) -> Node | None:
        is_head = pod["metadata"].get("labels", {}).get("ray.io/node-type") == "head"
        head = None if is_head else self._head_of(str(rc["metadata"]["uid"]))
        if not is_head and (head is None or not head.up):
            return None  # wait-gcs-ready: no GCS to join yet
        uid = str(pod["metadata"]["uid"])
        directory = node_dir(self.root, uid)
        shutil.rmtree(directory, ignore_errors=True)
        (directory / "home").mkdir(parents=True)
        names = rayargs.HEAD_PORTS if is_head else rayargs.WORKER_PORTS
        ports = dict(zip(names, self._pick_ports(len(names)), strict=True))
        if self._ray is None:
            self._ray = ray_cli()
        marker = f"{self.instance}:{uid}"
        plan = rayargs.plan(
            ray=self._ray,
            rc=rc,
            pod=pod,
            is_head=is_head,
            temp_dir=directory / "t",
            home=directory / "home",
            ports=ports,
            gcs_port=None if head is None else head.ports["gcs"],
            token=token,
            marker=marker,
            max_cpus=self.max_cpus,
            max_memory_bytes=self.max_memory_bytes,
        )
        with open(directory / "start.log", "ab") as out:
            proc = subprocess.Popen(
                plan.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=plan.env,
                cwd=directory / "home",
                start_new_session=True,  # its own process group: killed as one
                preexec_fn=_die_with_parent,
            )
        node = Node(
            cluster,
            uid,
            str(rc["metadata"]["uid"]),
            is_head,
            proc,
            marker,
            directory,
            ports,
            head_uid=None if head is None else head.pod_uid,
        )
        self.nodes[uid] = node
        log.info("started Ray %s node for pod %s (pid %d)", "head" if is_head else "worker", uid, proc.pid)
        return node

    max_cpus = 2
    max_memory_bytes = 2 * 1024**3

    def _pick_ports(self, count: int) -> list[int]:
        taken = {p for n in self.nodes.values() for p in n.ports.values()}
        rng = random.SystemRandom()
        chosen: list[int] = []
        for _ in range(5000):
            if len(chosen) == count:
                return chosen
            port = rng.randrange(*_PORT_RANGE)
            if port not in taken and port not in chosen and _free(port):
                chosen.append(port)
        raise RuntimeError("no free ports left for Ray nodes")

    # -- observation -------------------------------------------------------------------------
    def poll(self) -> set[str]:
        """Clusters whose nodes changed since the last poll (came up, or died)."""
        changed = set()
        for node in self.nodes.values():
            if node.dead:
                continue
            if node.proc.poll() is not None:
                node.dead = True
                changed.add(node.cluster)
                log.warning("Ray node of pod %s exited with %s", node.pod_uid, node.proc.returncode)
                continue
            if not node.up:
                wanted = ("dashboard", "agent") if node.is_head else ("agent",)
                if all(accepts(node.ports[p]) for p in wanted):
                    node.up = True
                    changed.add(node.cluster)
        return changed

    def starting(self) -> bool:
        return any(not n.up and not n.dead for n in self.nodes.values())

    def dashboard(self, rc_uid: str) -> int | None:
        """The dashboard port of the RayCluster's serving head node, if any."""
        head = self._head_of(rc_uid)
        return head.ports["dashboard"] if head is not None and head.up else None

    def metrics_port(self, pod_uid: str) -> int | None:
        """The metrics export port of the pod's serving node (the pod proxy's target), if any."""
        node = self.nodes.get(pod_uid)
        return node.ports["metrics"] if node is not None and node.up and not node.dead else None

    def log_path(self, pod_uid: str) -> Path | None:
        node = self.nodes.get(pod_uid)
        return None if node is None else node.directory / "start.log"

    # -- stopping ----------------------------------------------------------------------------
    def sync(self, wanted: Callable[[Node], bool]) -> None:
        """Stop every node for which ``wanted`` is False (its pod is gone or terminal), nodes
        whose leader exited, and workers whose head node is gone. A Running pod left without
        a node gets a new one from the controller (:meth:`gate`), as a restarted container."""
        for uid, node in list(self.nodes.items()):
            stale_head = node.head_uid is not None and (
                node.head_uid not in self.nodes or self.nodes[node.head_uid].dead
            )
            if node.dead or not wanted(node) or stale_head:
                del self.nodes[uid]
                self._draining.add(uid)
                task = asyncio.get_running_loop().create_task(self._stop(node))
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    async def _stop(self, node: Node) -> None:
        try:
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_seconds()
            # Polling: the end of another session's processes is no event this loop can await.
            while time.monotonic() < deadline and (node.proc.poll() is None or marked_pids(node.marker)):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            self._kill(node)
        finally:
            self._draining.discard(node.pod_uid)

    def _kill(self, node: Node) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        kill_marked(node.marker)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.proc.wait(timeout=5)
        shutil.rmtree(node.directory, ignore_errors=True)

    def shutdown(self) -> None:
        """Stop every node (the emulator is stopping): TERM, a deadline, then KILL."""
        nodes = list(self.nodes.values())
        self.nodes.clear()
        for task in list(self._stopping):
            task.cancel()
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_seconds()
        while time.monotonic() < deadline and any(n.proc.poll() is None for n in nodes):
            time.sleep(0.1)
        for node in nodes:
            self._kill(node)
        kill_marked(self.instance + ":")  # stopped tasks' nodes and anything they left
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only when empty: a temp-dir root should not pile up
