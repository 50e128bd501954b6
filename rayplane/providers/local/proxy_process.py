"""One Caddy process kept in a directory: started detached, adopted again by a later
control plane, reached through its admin API on loopback, stopped.

The directory holds ``caddy-process.json`` (pid, creation time and admin port: a pid is
trusted only with its creation time, so a reused pid is never adopted), the boot config
and ``caddy.log`` (the process's output). Callers serialise the calls (``CaddyProxy`` holds
a lock around them); nothing here locks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import httpx

from rayplane.providers.local.processes import log_tail, process_of, spawn_detached
from rayplane.providers.local.proxy_config import ProxyError, caddy_binary

STATE_FILE = "caddy-process.json"
BOOT_FILE = "caddy-boot.json"
LOG_FILE = "caddy.log"
POLL = 0.05  # seconds between checks while waiting for a condition, always under a deadline


class CaddyProcess:
    """A Caddy in ``directory``; ``admin_port`` None picks a free loopback port at each
    start. ``change_timeout`` bounds an admin call (a config load provisions and starts the
    new servers before it answers)."""

    def __init__(self, directory: Path, admin_port: int | None, *, start_timeout: float, change_timeout: float) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._wanted_port = admin_port
        self._start_timeout = start_timeout
        self._change_timeout = change_timeout
        self.pid: int | None = None
        self.create_time = 0.0
        self.admin_port: int | None = None
        # trust_env=False: an HTTP(S)_PROXY of the environment must not carry admin calls.
        # No kept connection: a config load closes the admin server's idle ones (see admin).
        self._http = httpx.Client(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE

    def ensure(self, boot_config: Any) -> None:
        """Adopt the live process (its admin API answering within the start timeout, as it
        may be starting), else start one on ``boot_config`` (a function of the admin port).
        The caller then loads the config it wants."""
        if self.find() is None or not self._wait_admin(self._start_timeout):
            self._start(boot_config)

    def find(self) -> Any:
        """The live process this object knows, else the one recorded in the directory (then
        known); None if neither lives."""
        if self.pid is not None:
            proc = process_of(self.pid, self.create_time)
            if proc is not None:
                return proc
        try:
            state = json.loads((self.directory / STATE_FILE).read_text())
            pid, create_time, port = int(state["pid"]), float(state["create_time"]), int(state["admin_port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        proc = process_of(pid, create_time)
        if proc is None:
            return None
        self.pid, self.create_time, self.admin_port = pid, create_time, port
        return proc

    def admin(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None, retry: bool | None = None
    ) -> Any:
        """One admin API call; its JSON answer (None when empty). Raises ProxyError with
        Caddy's error text (``PortTaken`` when it is a taken address, else ``AdminApi``),
        or ``AdminUnreachable`` when no answer came (then a change may or may not have been
        made). Caddy replaces its admin server at every config load (``admin.go``,
        ``replaceLocalAdminServer``: a new socket, the old one shut down meanwhile), so a
        connection can be reset then: calls use a new connection each, and GETs (``retry``
        by default) are tried again."""
        if self.admin_port is None:
            raise ProxyError("caddy is not running (call ensure_running)", code="AdminApi")
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        attempts = 3 if (method == "GET" if retry is None else retry) else 1
        for attempt in range(attempts):
            try:
                resp = self._http.request(method, url, json=body, timeout=timeout or self._change_timeout)
                break
            except httpx.TransportError as exc:
                if attempt == attempts - 1:
                    raise ProxyError(
                        f"caddy's admin API did not answer {method} {path}", code="AdminUnreachable", detail=str(exc)
                    ) from exc
                time.sleep(POLL)  # a pause before trying again, not a wait for a condition
        if resp.status_code >= 400:
            try:
                text = str(resp.json().get("error", resp.text))
            except ValueError:
                text = resp.text
            code = "PortTaken" if "address already in use" in text else "AdminApi"
            raise ProxyError(f"caddy refused {method} {path} ({resp.status_code})", code=code, detail=text.strip())
        return resp.json() if resp.content.strip() else None

    def load_if_changed(self, config: Any) -> None:
        """Load ``config`` whole unless Caddy holds exactly it (no reload for nothing).
        Idempotent, so a load that got no answer is checked and tried again."""
        for attempt in range(3):
            if self.admin("GET", "/config/") == config:
                return
            try:
                self.admin("POST", "/load", config)
                return
            except ProxyError as exc:
                if exc.code != "AdminUnreachable" or attempt == 2:
                    raise

    def stop(self, grace: float) -> None:
        """Ask Caddy to stop (it waits for in-flight requests up to its grace period);
        KILL it if it is still there ``grace`` + 5 s later."""
        proc = self.find()
        if proc is not None:
            with contextlib.suppress(ProxyError):
                self.admin("POST", "/stop", timeout=5.0)
            if not self._wait_gone(grace + 5.0):
                with contextlib.suppress(Exception):
                    proc.kill()
                self._wait_gone(5.0)
        (self.directory / STATE_FILE).unlink(missing_ok=True)
        self.pid, self.admin_port = None, None

    def close(self) -> None:
        self._http.close()

    def _start(self, boot_config: Any) -> None:
        """Start Caddy on the boot config; a process of ours that does not answer is killed
        first. A picked admin port can be taken meanwhile: then another is tried."""
        stale = self.find()
        if stale is not None:
            with contextlib.suppress(Exception):
                stale.kill()
        binary = caddy_binary()
        attempts = 1 if self._wanted_port is not None else 3
        for attempt in range(attempts):
            port = self._wanted_port or _free_loopback_port()
            try:
                self._start_on(binary, port, boot_config(port))
                return
            except ProxyError as exc:
                if exc.code != "PortTaken" or attempt == attempts - 1:
                    raise

    def _start_on(self, binary: Path, port: int, config: Any) -> None:
        boot = self.directory / BOOT_FILE
        boot.write_text(json.dumps(config))
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # Caddy keeps its own files (certificates, locks) under these: inside our directory.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.directory),
            "XDG_CONFIG_HOME": str(self.directory / "xdg-config"),
            "XDG_DATA_HOME": str(self.directory / "xdg-data"),
        }
        try:
            pid, create_time = spawn_detached(
                [str(binary), "run", "--config", str(boot)], env=env, log_path=self.log_path, cwd=self.directory
            )
        except (OSError, RuntimeError) as exc:
            raise ProxyError("could not start caddy", code="StartFailed", detail=str(exc)) from exc
        self.pid, self.create_time, self.admin_port = pid, create_time, port
        if not self._wait_admin(self._start_timeout):
            log = _log_since(self.log_path, log_start)
            with contextlib.suppress(Exception):
                proc = process_of(pid, create_time)
                if proc is not None:
                    proc.kill()
            self.pid, self.admin_port = None, None
            if "address already in use" in log:
                raise ProxyError(f"caddy's admin port {port} is taken", code="PortTaken", detail=log)
            raise ProxyError("caddy did not start", code="StartFailed", detail=log)
        state = {"pid": pid, "create_time": create_time, "admin_port": port, "started_at": time.time()}
        write_atomic(self.directory / STATE_FILE, state)

    def _wait_gone(self, timeout: float) -> bool:
        """The process is gone (a zombie counts as gone: it is not our child, and whoever
        reaps it may take its time) before the deadline."""
        deadline = time.monotonic() + timeout
        while self.pid is not None and process_of(self.pid, self.create_time) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        return True

    def _wait_admin(self, timeout: float) -> bool:
        """The admin API answers before the deadline, while the process lives."""
        deadline = time.monotonic() + timeout
        while self.pid is not None and process_of(self.pid, self.create_time) is not None:
            with contextlib.suppress(ProxyError):
                self.admin("GET", "/config/", timeout=1.0, retry=False)
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        return False


def write_atomic(path: Path, value: Any) -> None:
    """Readers see the old file or the new one, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_since(path: Path, offset: int) -> str:
    """The log written since ``offset`` (its last 2000 characters)."""
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    return log_tail(path, limit=min(2000, max(0, size - offset)))
