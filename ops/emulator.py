"""The Azure emulator as a child process of ``rayplane dev``, started by its module name.

``ops`` does not import ``emulators``: the emulator is a development component, the
``rayplane-emulators`` distribution (``emulators/pyproject.toml``), absent from production
installs. :func:`emulator_available` says whether this interpreter can run it;
:class:`AzureEmulator` runs ``python -m emulators.azure`` (see ``emulators/azure/__main__.py``
for its protocol: it writes its origin to ``DATA_DIR/origin`` once it accepts connections,
and clients trust ``DATA_DIR/ca.pem``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from rayplane.procs import die_with_parent, stop_process_group

EMULATOR_MODULE = "emulators.azure"
MISSING = (
    "RAYPLANE_DEMO_AZURE=1 needs the Azure emulator, a development component that is not part of the"
    " rayplane package: from a source checkout, `pip install -e ./emulators` (`make run` installs it)"
)
_POLL_SECONDS = 0.05
# The emulator's switch between real Ray nodes and its simulated dashboard (read by
# emulators/azure/kube/config.py; named here, not imported: ops never imports the emulator).
RAY_BACKEND_ENV = "AZURE_EMULATOR_RAY_BACKEND"


def emulator_available() -> bool:
    """Whether ``python -m emulators.azure`` can run here (without importing it)."""
    # find_spec of a top-level name locates the package without executing it; asking for
    # "emulators.azure" would import "emulators".
    return importlib.util.find_spec(EMULATOR_MODULE.partition(".")[0]) is not None


class EmulatorStartError(RuntimeError):
    """The emulator did not come up; the message carries the tail of its log."""


class AzureEmulator:
    """One ``python -m emulators.azure`` process over HTTPS on a free port, state in ``data_dir``."""

    def __init__(self, data_dir: Path, startup_timeout: float = 30.0) -> None:
        self.data_dir = data_dir.resolve()
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._origin: str | None = None

    @property
    def origin(self) -> str:
        """``https://127.0.0.1:PORT``; raises before a successful :meth:`start`."""
        if self._origin is None:
            raise RuntimeError("the emulator has not been started")
        return self._origin

    @property
    def ca_path(self) -> Path:
        """The CA bundle that verifies the emulator's certificate."""
        return self.data_dir / "ca.pem"

    @property
    def log_path(self) -> Path:
        """Where the process's stdout and stderr go."""
        return self.data_dir / "emulator.log"

    def start(self) -> str:
        """Start the process; its origin once ``/_emulator/health`` answers.

        Raises :class:`EmulatorStartError` (with the log's tail) if the process exits or the
        startup deadline passes; the process is stopped in both cases.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        origin_file = self.data_dir / "origin"
        origin_file.unlink(missing_ok=True)  # a stale origin from the last run must not count
        argv = [sys.executable, "-m", EMULATOR_MODULE, "--data-dir", str(self.data_dir)]
        argv += ["--port", "0", "--host", "127.0.0.1", "--log-level", "warning"]
        env = dict(os.environ)
        # The demo runs real Ray in the emulated RayClusters' pods (a job sees its cluster's
        # nodes); tests and the fleet benchmark set "simulated" to run without Ray.
        env.setdefault(RAY_BACKEND_ENV, "real")
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # it must not outlive `rayplane dev`, even a SIGKILLed one
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmulatorStartError(f"the Azure emulator exited with code {code}:\n{self._log_tail()}")
            if origin_file.exists():
                origin = origin_file.read_text().strip()
                if self._answers(origin):
                    self._origin = origin
                    return origin
            if time.monotonic() > deadline:
                self.stop()
                raise EmulatorStartError(
                    f"the Azure emulator was not ready after {self.startup_timeout}s:\n{self._log_tail()}"
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=_POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM the emulator's process group, SIGKILL it after a deadline; no-op if not started."""
        if self._proc is not None:
            stop_process_group(self._proc, timeout=10)

    def _answers(self, origin: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        try:
            return httpx.get(f"{origin}/_emulator/health", verify=context, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""
