"""Running the real Azure CLI (``az``) against the emulator, as a subprocess.

``az`` lives in a venv of its own (``.cache/az-venv``, made by ``make az`` from
``tests/support/az-requirements.txt``); a missing install fails the test with the command that
makes it, never skips. Every :class:`AzCli` has its own ``AZURE_CONFIG_DIR``, so the user's
``~/.azure`` is never read or written, trusts only the emulator's CA (``REQUESTS_CA_BUNDLE``),
and turns MSAL's instance discovery off (``AZURE_CORE_INSTANCE_DISCOVERY=false``, the CLI's
documented setting for clouds other than Azure's own: with it on, MSAL asks
login.microsoftonline.com about any authority it does not know). Telemetry, surveys and colour
are off.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
AZ_VENV = Path(os.environ.get("AZ_VENV", REPO / ".cache" / "az-venv"))
CLOUD = "RayplaneEmu"


def az_binary() -> Path:
    """The installed ``az``; fails the calling test when it is missing."""
    binary = AZ_VENV / "bin" / "az"
    if not binary.exists():
        pytest.fail(f"the Azure CLI is not installed at {binary}: run `make az` (ops/install-az.sh)")
    return binary


class AzError(AssertionError):
    """An ``az`` command exited non-zero; the message has its arguments and stderr."""

    def __init__(self, args: list[str], code: int, stderr: str) -> None:
        super().__init__(f"az {' '.join(args)} exited {code}:\n{stderr}")
        self.code = code
        self.stderr = stderr


class AzCli:
    """One isolated ``az`` configuration pointed at an emulator origin."""

    def __init__(self, config_dir: Path, ca_bundle: Path, *, timeout: float = 120.0) -> None:
        self.binary = az_binary()
        self.config_dir = config_dir
        self.timeout = timeout
        config_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "MSAL_"))}
        env.update(
            {
                "AZURE_CONFIG_DIR": str(config_dir),
                "REQUESTS_CA_BUNDLE": str(ca_bundle),
                "AZURE_CORE_INSTANCE_DISCOVERY": "false",
                "AZURE_CORE_COLLECT_TELEMETRY": "false",
                "AZURE_CORE_SURVEY_MESSAGE": "false",
                "AZURE_CORE_NO_COLOR": "true",
                "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
            }
        )
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``az ARGS``; raises :class:`AzError` on a non-zero exit when ``check``."""
        argv = [str(self.binary), *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=self.timeout, check=False)
        if check and done.returncode != 0:
            raise AzError(list(args), done.returncode, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        """``az ARGS -o json``, decoded (None for empty output)."""
        out = self.run(*args, "--output", "json").stdout.strip()
        return json.loads(out) if out else None

    def fails(self, *args: str) -> str:
        """``az ARGS``, which must fail; its stderr."""
        done = self.run(*args, check=False)
        assert done.returncode != 0, f"az {' '.join(args)} succeeded:\n{done.stdout}"
        return done.stderr


def until(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    """``check()``'s first truthy value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
