"""Every command has help with an example and the exit codes; failures are one clean line."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from tests.cli.support import Cli, assert_clean_failure

USER_GROUPS = ("clusters", "services", "jobs", "budget", "config", "tenant", "api-keys", "members", "clouds")
USER_COMMANDS = ("login", "logout", "usage", "overview", "doctor")
OPERATOR_VERBS = ("dev", "migrate", "api", "worker", "beat", "openapi")
REPO = Path(__file__).resolve().parents[2]


def user_commands() -> list[tuple[str, ...]]:
    """Paths of every user-facing command, e.g. ``("clusters", "create")``, ``("services", "rollout", "status")``."""
    root = typer.main.get_command(app)
    found: list[tuple[str, ...]] = [(name,) for name in USER_COMMANDS]

    def walk(path: tuple[str, ...], group: Any) -> None:
        found.append(path)
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk((*path, name), command)
            else:
                found.append((*path, name))

    for group in USER_GROUPS:
        walk((group,), root.commands[group])  # type: ignore[attr-defined]
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


def test_root_help_lists_the_users_commands_first_and_the_operators_under_their_own_heading() -> None:
    lines = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output.splitlines()
    heading = next(i for i, line in enumerate(lines) if "Run the control plane" in line)
    first_word = [line.strip("│ ").split(" ")[0] for line in lines]
    below = set(first_word[heading + 1 :])
    assert set(OPERATOR_VERBS) <= below
    assert not (set(USER_GROUPS) | set(USER_COMMANDS)) & below
    assert {w for w in first_word[:heading] if w in OPERATOR_VERBS} == set()


@pytest.mark.parametrize("path", [(), *user_commands()], ids=lambda p: " ".join(p) or "root")
def test_help_shows_no_type_placeholders_for_flags(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert "<bool>" not in result.output
    assert "<str>" not in result.output


def test_root_help_in_a_dev_checkout_does_not_send_the_user_to_login(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert "Start with rayplane login" in cli("--help", timeout=60).stdout
    (tmp_path / ".rayplane").mkdir()
    (tmp_path / ".rayplane" / "dev.env").write_text("RAYPLANE_API_URL=http://127.0.0.1:8123\nRAYPLANE_API_KEY=rpk_x\n")
    text = " ".join(cli("--help", timeout=60).stdout.split())
    assert "Start with rayplane login" not in text
    assert "no login needed" in text


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (("clustrs",), "error: No such command 'clustrs'. Did you mean 'clusters'?"),
        (("clusters", "lsit"), "error: No such command 'lsit'. Did you mean 'list'?"),
        (("clusters", "get"), "error: Missing argument 'cluster'. (see 'rayplane clusters get --help')"),
    ],
)
def test_usage_errors_are_one_line_with_the_suggestion(tmp_path: Path, argv: tuple[str, ...], line: str) -> None:
    result = Cli(tmp_path)(*argv, timeout=60)
    assert result.returncode == 2
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def test_a_closed_pipe_on_stdout_ends_quietly(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as after `| head -1`
    try:
        proc = subprocess.run(
            cli.argv("--help"), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, env=cli.environ()
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 1


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as '-'."""
    found = set()
    for line in doc.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("doc", ["README.md", "docs/cli.md"])
def test_relative_links_of_the_docs_resolve(doc: str) -> None:
    source = REPO / doc
    broken = []
    for target in LINK.findall(source.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (source.parent / path).resolve() if path else source
        if not resolved.exists() or (anchor and anchor not in _anchors(resolved)):
            broken.append(target)
    assert broken == []


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
