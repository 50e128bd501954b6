"""Run the Azure emulator as a subprocess, for tests (Rayplane's and the emulator's own).

Usage::

    emu = EmulatorProcess(tmp_path / "azure").start()   # HTTPS on a free port
    try:
        ClientSecretCredential(tid, app_id, "emulator-secret", authority=emu.authority,
                               disable_instance_discovery=True, connection_verify=str(emu.ca_path))
        token = emu.mint_token(tid, {"oid": user_oid, "aud": "api://rayplane"})
    finally:
        emu.stop()

``start()`` returns once the origin answers ``GET /_emulator/health`` or raises
:class:`EmulatorStartError` (with the log's tail) if the process exits or the deadline passes.
The process runs in its own process group; ``stop()`` sends SIGTERM to the group, waits up to
a deadline, then SIGKILL. Output (uvicorn's log included) goes to ``DATA_DIR/emulator.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from emulators.azure.keys import KeyStore

_REPO_ROOT = Path(__file__).resolve().parents[2]
_POLL_SECONDS = 0.05


class EmulatorStartError(RuntimeError):
    """The emulator did not come up; the message carries the tail of its log."""


class EmulatorProcess:
    """One ``python -m emulators.azure`` subprocess serving state from ``data_dir``."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        http: bool = False,
        port: int = 0,
        host: str = "127.0.0.1",
        startup_timeout: float = 30.0,
        log_level: str = "warning",
        python: str = sys.executable,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.http = http
        self.host = host
        self.requested_port = port
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._origin: str | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Self:
        """Start the process and wait until its origin answers; idempotent while running."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        origin_file = self.data_dir / "origin"
        origin_file.unlink(missing_ok=True)
        argv = [self.python, "-m", "emulators.azure", "--data-dir", str(self.data_dir)]
        argv += ["--port", str(self.requested_port), "--host", self.host, "--log-level", self.log_level]
        if self.http:
            argv.append("--http")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmulatorStartError(f"emulator exited with code {code}:\n{self.log_tail()}")
            if origin_file.exists() and self._answers(origin_file.read_text().strip()):
                self._origin = origin_file.read_text().strip()
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise EmulatorStartError(f"emulator not ready after {self.startup_timeout}s:\n{self.log_tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=_POLL_SECONDS)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; the exit code (None if never started)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        return proc.returncode

    def restart(self) -> Self:
        """Stop, then start again on the same port (so the origin and issuers stay the same)."""
        if self._origin is not None:
            self.requested_port = self.port
        self.stop()
        self._proc = None
        return self.start()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- where it is ---------------------------------------------------------------------
    @property
    def origin(self) -> str:
        """``https://127.0.0.1:PORT`` (or ``http://``); raises before the first successful start."""
        if self._origin is None:
            raise RuntimeError("the emulator has not been started")
        return self._origin

    @property
    def port(self) -> int:
        """The TCP port it serves on."""
        port = urlsplit(self.origin).port
        assert port is not None
        return port

    @property
    def authority(self) -> str:
        """``HOST:PORT``, the form azure-identity's ``authority=`` takes."""
        return urlsplit(self.origin).netloc

    @property
    def ca_path(self) -> Path | None:
        """The CA bundle that verifies its certificate (``DATA_DIR/ca.pem``); None with ``http``."""
        return None if self.http else self.data_dir / "ca.pem"

    @property
    def log_path(self) -> Path:
        """Where the process's stdout and stderr go."""
        return self.data_dir / "emulator.log"

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting only the emulator's CA; None with ``http``."""
        return None if self.ca_path is None else ssl.create_default_context(cafile=str(self.ca_path))

    def key_store(self) -> KeyStore:
        """The signing keys in ``data_dir``, for minting in-process (see :meth:`KeyStore.mint`)."""
        return KeyStore(self.data_dir)

    # -- test API (/_emulator) -------------------------------------------------------------
    def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Send JSON ``body`` to ``origin + path``; the decoded JSON answer. HTTPError on >= 400."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.origin + path, data=data, method=method)  # noqa: S310
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30, context=self.ssl_context()) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")

    def mint_token(self, tenant: str, claims: dict[str, Any] | None = None, **options: Any) -> str:
        """A token from ``POST /_emulator/entra/tokens``; ``options`` are client_id, audience,
        lifetime_seconds, alg, kid, untrusted (see ``MintRequest``)."""
        body = {"tenant": tenant, "claims": claims or {}, **options}
        token: str = self.request_json("POST", "/_emulator/entra/tokens", body)["access_token"]
        return token

    def rotate_keys(self) -> str:
        """Publish a new signing key and sign with it from now on; its kid."""
        kid: str = self.request_json("POST", "/_emulator/entra/rotate")["kid"]
        return kid

    def configure_entra(self, **fields: Any) -> dict[str, Any]:
        """Change what the token endpoint accepts (client_secret, client_certificates,
        federated_credentials, device_code_interval); the whole new config."""
        config: dict[str, Any] = self.request_json("POST", "/_emulator/entra/config", fields)
        return config

    def register_application(self, tenant: str, client_id: str, **fields: Any) -> dict[str, Any]:
        """Register ``client_id`` in ``tenant`` (which makes the tenant strict); ``fields`` are
        display_name, secrets (``[{"value", "end_date_time"}]``), certificates (PEM strings),
        federated_credentials (``[{"issuer", "subject", "audiences"}]``). The registration,
        with ``principal_id`` (the ``oid`` role assignments name)."""
        app: dict[str, Any] = self.request_json("PUT", f"/_emulator/entra/applications/{tenant}/{client_id}", fields)
        return app

    def delete_application(self, tenant: str, client_id: str) -> None:
        """Forget a registration (the tenant stays strict while it has others)."""
        self.request_json("DELETE", f"/_emulator/entra/applications/{tenant}/{client_id}")

    def assign_role(
        self,
        scope: str,
        role: str,
        *,
        principal_id: str | None = None,
        client_id: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Give ``role`` (a built-in role's name or GUID) at ``scope`` to a principal (an ``oid``, or
        the service principal of ``client_id``); the assignment's ARM body. Enforced only where the
        ARM config enforces roles (``enforce_roles``, ``enforce_roles_subscriptions``)."""
        body: dict[str, Any] = {"scope": scope, "role": role}
        body.update({"principalId": principal_id} if principal_id else {"clientId": client_id})
        assignment: dict[str, Any] = self.request_json(
            "PUT", f"/_emulator/arm/role-assignments/{name or uuid.uuid4()}", body
        )
        return assignment

    def approve_device_code(self, user_code: str, claims: dict[str, Any] | None = None, deny: bool = False) -> None:
        """Sign a user with ``claims`` in for the pending device code (or decline it)."""
        self.request_json(
            "POST",
            "/_emulator/entra/devicecode/approve",
            {"user_code": user_code, "claims": claims or {}, "deny": deny},
        )

    def _answers(self, origin: str) -> bool:
        context = None if self.http else ssl.create_default_context(cafile=str(self.data_dir / "ca.pem"))
        try:
            with urllib.request.urlopen(f"{origin}/_emulator/health", timeout=2, context=context) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False
