"""The operator verbs through the ``rayplane`` command: listed after the user's, answered by
``python -m ops`` (help, exit codes), and a demo that needs the emulator says so when it is
not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import OPERATOR_PANEL, OPERATOR_VERBS, app
from ops.emulator import emulator_available
from tests.cli.support import clean_env

# What a production install looks like to `import emulators`: a sitecustomize runs first in
# every interpreter started with this PYTHONPATH, the one the CLI execs into included.
NO_EMULATORS = "import sys\nsys.modules['emulators'] = None  # find_spec and import both fail\n"


def run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=120, check=False
    )


def without_emulators(tmp_path: Path) -> str:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_EMULATORS)
    return str(site)


def test_root_help_lists_the_operator_verbs_last_under_their_panel() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    panel = next(i for i, line in enumerate(lines) if f" {OPERATOR_PANEL} " in line)

    def row(command: str) -> int:
        """The line listing ``command`` in a panel (``│ clusters   Create, …``)."""
        return next(i for i, line in enumerate(lines) if line.startswith(f"│ {command} "))

    for user_command in ("version", "clusters", "jobs", "login", "logout", "api-keys", "clouds"):
        assert row(user_command) < panel, user_command
    for verb, help_line in OPERATOR_VERBS.items():
        assert row(verb) > panel, verb
        assert help_line[:40] in lines[row(verb)]


@pytest.mark.parametrize("verb", list(OPERATOR_VERBS))
def test_operator_help_is_the_operator_commands_own(verb: str, tmp_path: Path) -> None:
    result = run("-m", "cli", verb, "--help", cwd=tmp_path, COLUMNS="200")
    assert result.returncode == 0, result.stderr
    assert f"Usage: rayplane {verb}" in result.stdout
    assert "Example" in result.stdout


def test_operator_exit_codes_pass_through(tmp_path: Path) -> None:
    stale = tmp_path / "stale.json"
    stale.write_text("{}")
    result = run("-m", "cli", "openapi", "--check", "--output", str(stale), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "is out of date" in result.stderr
    no_database = run("-m", "cli", "migrate", cwd=tmp_path, RAYPLANE_DATA_DIR=str(tmp_path / "data"))
    assert no_database.returncode == 2, no_database.stderr
    assert no_database.stderr.strip() == "rayplane: RAYPLANE_DATABASE_URL is not set"


def test_the_emulator_is_found_here_and_not_without_its_distribution(tmp_path: Path) -> None:
    assert emulator_available()
    probe = "from ops.emulator import emulator_available; print(emulator_available())"
    result = run("-c", probe, cwd=tmp_path, PYTHONPATH=without_emulators(tmp_path))
    assert result.stdout.strip() == "False", result.stderr


def test_demo_without_the_emulator_exits_2_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = run(
        "-m",
        "cli",
        "dev",
        cwd=tmp_path,
        PYTHONPATH=without_emulators(tmp_path),
        RAYPLANE_DEMO_AZURE="1",
        RAYPLANE_DATA_DIR=str(data),
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "development component" in lines[0]
    assert "pip install -e ./emulators" in lines[0]
    assert not (data / "postgres").exists()  # it stopped before starting anything


def test_loading_the_cli_loads_no_control_plane_module(tmp_path: Path) -> None:
    """At run time too (the AST check is tests/core/test_adapters.py): not even `rayplane`."""
    probe = (
        "import sys, cli.main\n"
        "inside = {'rayplane', 'api', 'workers', 'ops', 'emulators'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & inside))\n"
    )
    result = run("-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_dev_takes_verbose_through_the_pass_through(tmp_path: Path) -> None:
    """`rayplane dev --verbose` reaches ops unchanged (its effect: tests/e2e/test_dev_output.py)."""
    result = run("-m", "cli", "dev", "--help", cwd=tmp_path, COLUMNS="200")
    assert result.returncode == 0, result.stderr
    assert "--verbose" in result.stdout
    assert ".rayplane/logs/" in result.stdout
