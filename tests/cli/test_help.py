"""Every command has help with an example and the exit codes; failures are one clean line."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from tests.cli.support import Cli, assert_clean_failure

USER_GROUPS = ("clusters", "jobs", "config", "tenant", "api-keys", "members", "clouds")
USER_COMMANDS = ("login", "logout")


def user_commands() -> list[tuple[str, ...]]:
    """Paths of every user-facing command, e.g. ``("clusters", "create")``."""
    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = [(name,) for name in USER_COMMANDS]
    for group in USER_GROUPS:
        sub = root.commands[group]  # type: ignore[attr-defined]
        found.append((group,))
        found.extend((group, name) for name in sub.commands)
    return found


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("path", user_commands(), ids=" ".join)
def test_help_has_an_example_and_the_exit_codes(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, result.output
    if len(path) > 1 or path[0] in USER_COMMANDS:
        assert "Exit codes" in result.output
        assert "130 interrupted" in result.output


def test_root_help_lists_the_commands_and_completion_is_on() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in (*USER_GROUPS, *USER_COMMANDS, "--install-completion", "--output", "--profile"):
        assert name in result.output


def test_unreachable_api_is_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, {"RAYPLANE_API_KEY": "rpk_x"})
    url = f"http://127.0.0.1:{closed_port()}"
    result = cli("--api-url", url, "clusters", "list", timeout=60)
    assert_clean_failure(result)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot reach the API at {url}: connection refused"


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    no_key = cli("clusters", "list", timeout=60)
    assert_clean_failure(no_key)
    assert no_key.returncode == 2
    assert "run `rayplane login`" in no_key.stderr
    bad_workers = cli("--api-key", "rpk_x", "clusters", "create", "--name", "x", "--workers", "cpu=Std:4-1")
    assert_clean_failure(bad_workers)
    assert bad_workers.returncode == 2
    assert bad_workers.stderr.strip() == "error: 'cpu=Std:4-1': MIN (4) is larger than MAX (1)"
    bad_option = cli("clusters", "list", "--bogus", timeout=60)
    assert bad_option.returncode == 2
    assert "Traceback" not in bad_option.stderr


def test_the_cli_imports_no_server_code() -> None:
    """Loading the command imports neither FastAPI, Celery, SQLAlchemy nor the api/workers packages."""
    probe = (
        "import sys, cli.main\n"
        "heavy = {'fastapi', 'starlette', 'celery', 'api', 'workers', 'sqlalchemy', 'ray', 'msal'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
