"""The whole control plane as separate processes, for end-to-end tests.

``Stack`` runs ``rayplane dev`` (API, one Celery worker, beat) against the test session's
Postgres (a scratch database) and Redis (a database index of its own), with local Ray
clusters under a short temporary directory. Tests drive it over HTTP like any client.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from rayplane.identity.bootstrap import read_env_file
from rayplane.procs import stop_process_group
from rayplane.settings import default_ray_root
from tests.support.services import scratch_database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Stack:
    def __init__(
        self, workdir: Path, database_url: str, redis_url: str, ray_root: Path | None, *, queue: str = ""
    ) -> None:
        """``ray_root`` None: the control plane derives its own from its data dir."""
        self.workdir = workdir
        self.ray_root = ray_root if ray_root is not None else default_ray_root((workdir / "data").resolve())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "stack.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RAYPLANE_")},
            "RAYPLANE_ENV": "dev",
            "RAYPLANE_DATABASE_URL": database_url,
            "RAYPLANE_REDIS_URL": redis_url,
            "RAYPLANE_DATA_DIR": str(workdir / "data"),
            "RAYPLANE_API_PORT": str(self.port),
            **({"RAYPLANE_LOCAL_RAY_ROOT": str(ray_root)} if ray_root is not None else {}),
            "RAYPLANE_LOCAL_CPUS": "2",
            "RAYPLANE_LOCAL_MEMORY_GIB": "8",
            "RAYPLANE_SWEEP_INTERVAL_SECONDS": "1",
            "RAYPLANE_RECONCILE_STEADY_SECONDS": "2",
            "RAYPLANE_SWEEP_HOLD_SECONDS": "10",
            "RAYPLANE_SCALE_DOWN_IDLE_SECONDS": "20",
            "RAYPLANE_METRICS_SCRAPE_SECONDS": "5",
            "RAYPLANE_TASK_QUEUE": f"e2e-{os.getpid()}{queue}",
            "RAYPLANE_LOG_LEVEL": "INFO",
            # Tests that want the console's emulator say so (tests/web/test_dev_console.py).
            "RAYPLANE_DEV_CONSOLE_EMULATOR": "0",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}

    def start(self, *dev_args: str) -> Stack:
        """Run ``rayplane dev DEV_ARGS…`` (its terminal output in ``self.log``) until ready."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "dev", *dev_args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._ready, 120, "the API's /readyz")
        key = read_env_file(self.workdir / "data" / "dev.env")["RAYPLANE_API_KEY"]
        self.headers = {"Authorization": f"Bearer {key}"}
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"rayplane dev exited:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, timeout=60, sig=signal.SIGINT)

    # ---- HTTP helpers ------------------------------------------------------------------
    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(
            method, self.url + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=30, **kw
        )

    @staticmethod
    def path(cid: str) -> str:
        """A cluster's or a service's resource path (services live under /v1/services)."""
        return f"/v1/services/{cid}" if cid.startswith("svc_") else f"/v1/clusters/{cid}"

    def cluster(self, cid: str) -> dict[str, Any]:
        r = self.request("GET", self.path(cid))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_state(self, cid: str, state: str, timeout: float = 360) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            c = self.cluster(cid)
            if c["state"] == "FAILED" and state != "FAILED":
                raise AssertionError(f"cluster FAILED: {c['state_reason']}\n{self.log.read_text()[-3000:]}")
            return c if c["state"] == state else None

        return dict(wait_for(reached, timeout, f"{cid} to be {state}"))

    def events(self, cid: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"{self.path(cid)}/events", params={"limit": 200}).json()["items"])

    # ---- processes ---------------------------------------------------------------------
    def worker_process(self) -> psutil.Process | None:
        """The Celery worker the supervisor runs now (None between a crash and its restart)."""
        assert self.proc is not None
        for p in psutil.Process(self.proc.pid).children(recursive=False):
            try:
                cmd = p.cmdline()
            except psutil.Error:
                continue
            if "worker" in cmd and any("celery" in part for part in cmd):
                return p
        return None

    def delete_all(self, timeout: float = 180) -> None:
        """Delete every live cluster and service and wait until they are gone (test cleanup)."""
        live = [
            c["id"]
            for kind in ("clusters", "services")
            for c in self.request("GET", f"/v1/{kind}", params={"limit": 200}).json()["items"]
        ]
        for cid in live:
            self.request("DELETE", self.path(cid))
        for cid in live:
            self.wait_state(cid, "DELETED", timeout=timeout)

    def ray_node_processes(self, cid: str) -> list[psutil.Process]:
        """The ``ray start --block`` processes of one cluster (found by its directory)."""
        marker = cid[-10:]
        found = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "ray" in cmd and " start" in cmd and "--block" in cmd and str(self.ray_root) in cmd and marker in cmd:
                found.append(p)
        return found

    def cluster_processes(self, cid: str) -> list[psutil.Process]:
        """Every process whose command line names the cluster's directory."""
        marker = str(self.ray_root)
        found = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
            except psutil.Error:
                continue
            if marker in cmd and cid[-10:] in cmd:
                found.append(p)
        return found


def redis_url_for(base: str, db: int) -> str:
    """Database ``db`` of the suite's TCP Redis (one per e2e module), or its unix socket as is."""
    if base.startswith("redis://"):
        return base.rsplit("/", 1)[0] + f"/{db}"
    return base


@contextmanager
def local_stack(
    admin_db_url: str, redis_url: str, redis_db: int, env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """A started ``rayplane dev`` on a scratch database, Redis database ``redis_db`` and a Ray
    root of its own, with ``env`` on top of its environment. On exit every cluster is deleted
    and the stack stopped; a Ray process that outlives it is killed and fails the test."""
    with scratch_database(admin_db_url) as db, tempfile.TemporaryDirectory(prefix="rpe-") as tmp:
        ray_root = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))
        s = Stack(Path(tmp), db, redis_url_for(redis_url, redis_db), ray_root)
        s.env.update(env or {})
        try:
            yield s.start()
        finally:
            try:
                s.delete_all()
            finally:
                s.stop()
            leftovers = [
                p
                for p in psutil.process_iter(["cmdline", "status"])
                if str(ray_root) in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
            ]
            for p in leftovers:
                p.kill()
            shutil.rmtree(ray_root, ignore_errors=True)
            assert leftovers == [], "Ray processes outlived the test stack"
