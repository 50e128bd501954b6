"""What every user-facing command shares: global options, exit codes, the API client, and
one error handler that turns any failure into ``error: …`` and an exit code, never a traceback.
"""

from __future__ import annotations

import enum
import functools
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer

from cli.client import ApiError, ApiUnreachable, Cluster, RayplaneClient
from cli.config import ConfigError, Overrides, Target, find_dev_env, resolve
from cli.kinds import CLUSTERS, Kind
from cli.kinds import R as Res
from cli.messages import detail_text, field_errors
from cli.output import Format, print_error

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "[bold]Exit codes[/bold]: 0 ok · 1 API or job failure · 2 usage or configuration error ·"
    " 3 not found · 4 conflict or stale version · 5 timed out waiting · 130 interrupted."
)


def root_epilog() -> str:
    """The end of ``rayplane --help``: where to start, which depends on what is configured here.

    With a dev stack's ``.rayplane/dev.env`` in reach (or a key in the environment) there is
    nothing to log in to; telling the user to start with ``rayplane login`` would send them
    the wrong way.
    """
    dev_env = find_dev_env(Path.cwd())
    if dev_env is not None:
        start = f"The dev stack's {dev_env} is used: no login needed. Try [bold]rayplane clusters list[/bold]"
    elif os.environ.get("RAYPLANE_API_KEY"):
        start = "RAYPLANE_API_KEY is set: no login needed. Try [bold]rayplane clusters list[/bold]"
    else:
        start = "Start with [bold]rayplane login[/bold] (or [bold]make run[/bold] in a checkout)"
    return (
        f"{start}, then [bold]rayplane clusters create --help[/bold]; [bold]rayplane doctor[/bold] checks the"
        " setup. Each command's --help has examples; docs/cli.md has the whole reference.\n\n" + EXIT_CODES_HELP
    )


P = ParamSpec("P")
R = TypeVar("R")


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    OutputFormat | None,
    typer.Option("--output", "-o", help="table (default), json or yaml.", case_sensitive=False, show_default=False),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


class CliError(Exception):
    """A failure the CLI reports as ``error: <message>`` with the given exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE, field_errors: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field_errors = field_errors or []


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    raise CliError(message, code)


@dataclass
class Globals:
    """The root command's options, set once per invocation by :func:`global_options`."""

    output: OutputFormat | None = None
    overrides: Overrides = field(default_factory=Overrides)
    target: Target | None = None


GLOBALS = Globals()


def global_options(
    output: OutputOption = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Use this profile of the config file.", show_default=False)
    ] = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="The API's base URL (beats env and profiles).", show_default=False)
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="An API key (beats env and profiles).", show_default=False)
    ] = None,
) -> None:
    """Options every command accepts before its name: ``rayplane -o json --profile work clusters list``."""
    GLOBALS.output = output or _env_format()
    GLOBALS.overrides = Overrides(api_url=api_url, api_key=api_key, profile=profile)
    GLOBALS.target = None


def _env_format() -> OutputFormat | None:
    value = os.environ.get("RAYPLANE_OUTPUT", "").lower()
    return OutputFormat(value) if value in OutputFormat.__members__ else None


def fmt(local: OutputFormat | None) -> Format:
    """The output format: the command's ``-o``, else the global one, else ``table``."""
    chosen = local or GLOBALS.output or OutputFormat.table
    return chosen.value


def target() -> Target:
    if GLOBALS.target is None:
        GLOBALS.target = resolve(GLOBALS.overrides)
    return GLOBALS.target


def client(timeout: float = 30.0) -> RayplaneClient:
    """A client for the resolved API URL and credential (exit 2 when there is none)."""
    t = target()
    if not t.has_credential:
        fail(
            f"no credential for {t.api_url}: run `rayplane login`, set RAYPLANE_API_KEY, or pass --api-key",
            EXIT_USAGE,
        )
    if t.entra is not None:
        from cli.entra import token_provider

        return RayplaneClient(t.api_url, token_provider(t.entra, t.profile or "default"), timeout=timeout)
    return RayplaneClient(t.api_url, t.api_key, timeout=timeout)


def exit_code_for(status: int) -> int:
    if status == 404:
        return EXIT_NOT_FOUND
    if status in (409, 412):
        return EXIT_CONFLICT
    if status in (400, 401, 415, 422):
        return EXIT_USAGE
    return EXIT_FAILURE


def problem_line(exc: ApiError) -> str:
    """``<title>: <detail>``, leaving the detail out when it only repeats the field errors."""
    detail = exc.detail
    fields = exc.field_errors
    if fields and all(f"{name}: {msg}" in detail for name, msg in fields[:5]):
        detail = ""
    line = f"{exc.title}: {detail_text(detail)}" if detail and detail != exc.title else exc.title
    if exc.status == 401 and GLOBALS.target is not None:
        line += f" (credential from {GLOBALS.target.credential_source}; run `rayplane login`)"
    if exc.status >= 500 and exc.request_id:
        line += f" (request id {exc.request_id})"
    return line


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command; report failures as one ``error:`` line (plus field errors) and exit."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except ApiError as exc:
            print_error(problem_line(exc), field_errors(exc.field_errors))
            raise typer.Exit(exit_code_for(exc.status)) from None
        except ApiUnreachable as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_FAILURE) from None
        except ConfigError as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except CliError as exc:
            print_error(exc.message, exc.field_errors)
            raise typer.Exit(exc.code) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            quiet_broken_pipe()
        except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
            if os.environ.get("RAYPLANE_DEBUG"):
                traceback.print_exc(file=sys.stderr)
            print_error(f"unexpected {type(exc).__name__}: {exc} (set RAYPLANE_DEBUG=1 for a traceback)")
            raise typer.Exit(EXIT_FAILURE) from None

    return wrapper


def quiet_broken_pipe() -> NoReturn:
    """The reader of stdout went away (``rayplane clusters list | head -1``): exit quietly.

    stdout is pointed at /dev/null first, so the interpreter's final flush of what is still
    buffered cannot fail again with a second complaint. Exit 1, as click does when ``--help``
    meets a closed pipe.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os._exit(EXIT_FAILURE)


def is_cluster_id(ref: str) -> bool:
    return CLUSTERS.is_id(ref)


def resolve_ref(api: RayplaneClient, kind: Kind[Res], ref: str) -> Res:
    """The cluster or service named ``ref`` (a name or an id); a deleted one if no live one has it."""
    if kind.is_id(ref):
        return kind.get(api, ref).body
    for found in kind.iterate(api, None):
        if found["name"] == ref:
            return found
    gone = [r for r in kind.iterate(api, ["DELETED"]) if r["name"] == ref]
    if gone:
        return max(gone, key=lambda r: r["id"])
    fail(f"no {kind.noun} named {ref!r} (see `rayplane {kind.group} list`)", EXIT_NOT_FOUND)


def resolve_cluster(api: RayplaneClient, ref: str) -> Cluster:
    """The cluster named ``ref`` (a name or a ``cls_…`` id); a deleted one if no live one has it."""
    return resolve_ref(api, CLUSTERS, ref)


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` unless ``--yes``; refuse (exit 2) when there is no terminal to ask on."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question.rstrip('?')}: pass --yes to confirm when not running in a terminal", EXIT_USAGE)
    if not typer.confirm(question, default=False):
        fail("cancelled; nothing was changed", EXIT_FAILURE)
