"""Running the CLI as a user does: ``python -m cli …`` (what the ``rayplane`` script runs) in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

Result = subprocess.CompletedProcess[str]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any RAYPLANE_* or RAY_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYPLANE_", "RAY_"))}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@dataclass
class Cli:
    """The CLI in a scratch home: its own config file and a working directory without dev.env."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.home / "config" / "rayplane.yaml"

    def environ(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        return clean_env(RAYPLANE_CONFIG=str(self.config), **self.env, **(env or {}))

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cli", *args]

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 300, env: Mapping[str, str] | None = None
    ) -> Result:
        self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            self.argv(*args),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
            env=self.environ(env),
            check=False,
        )


def assert_clean_failure(result: Result) -> None:
    """Failed with an ``error:`` line and without a Python traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.startswith("error: ") or "\nerror: " in result.stderr, result.stderr


def explain(result: Result) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
