"""The ``rayplane`` command: the user verbs (clusters, jobs, account, …) registered from their
modules, and the operator verbs (dev, migrate, api, worker, beat, openapi) as pass-throughs.

An operator verb replaces this process with ``python -m ops VERB ARGS…`` (``os.execv``): the
CLI never imports the control plane, and signals (Ctrl-C on ``rayplane dev``, SIGTERM to a
container running ``rayplane api``) reach the process that handles them, with its exit code.
Everything after the verb, ``--help`` included, is the operator command's own.

Exit codes are in docs/cli.md and every ``--help`` epilog: 0 ok, 1 API or job failure, 2 usage
or configuration, 3 not found, 4 conflict, 5 timed out waiting, 130 interrupted.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, NoReturn

import typer

from cli import __version__, account, billing, clouds, clusters, doctor, jobs, login, logs, metrics, services
from cli.context import EXIT_FAILURE, global_options, quiet_broken_pipe, root_epilog
from cli.output import print_error

# Typer ships its own copy of click; its exception classes are reached through a public one.
ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_SUGGESTIONS = re.compile(r" Did you mean ('[^']*')(?:, '[^']*')*\?$")


def usage_line(exc: Exception) -> str:
    """A usage error as one line: the complaint and the best suggestion, or where help is."""
    message = " ".join(str(getattr(exc, "format_message", exc.__str__)()).split())
    message = _SUGGESTIONS.sub(r" Did you mean \1?", message).replace("Value error, ", "")
    if "Did you mean" not in message and "Possible options" not in message:
        ctx = getattr(exc, "ctx", None)
        path = ctx.command_path if ctx is not None else "rayplane"
        message += f" (see '{path} --help')"
    return message


def _plain_placeholders() -> None:
    """Help without ``<bool>`` after flags (a flag takes no value) and without ``<str>``.

    Typer's rich help prints each parameter's Python type as its placeholder; a user reading
    ``--wait <bool>`` would type ``--wait true``. Flags get no placeholder; a string option
    gets its own name in capitals, as click does (``--cloud CLOUD``); a string argument
    none, since its name is already shown (``CLUSTER``).
    """
    for kind, is_option in (("TyperOption", True), ("TyperArgument", False)):
        cls = getattr(typer.core, kind, None)
        shown = getattr(cls, "display_type_rich", None)
        if cls is None or shown is None:  # another Typer: its own help format
            continue

        def display_type_rich(self: Any, ctx: Any, shown: Any = shown, is_option: bool = is_option) -> str | None:
            if getattr(self, "is_flag", False):
                return None
            value = shown(self, ctx)
            if value != "<str>":
                return value  # type: ignore[no-any-return]
            return str(self.name).upper() if is_option and self.name else None

        setattr(cls, "display_type_rich", display_type_rich)  # noqa: B010 - mypy: a method is read-only


_plain_placeholders()


class RayplaneTyper(typer.Typer):
    """The root app: the same commands, with usage errors on one line instead of a panel.

    Typer draws a usage error as a box with a usage header; a user who mistyped a word needs
    the one line that says what was wrong and what was meant.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        command = typer.main.get_command(self)
        kwargs.setdefault("prog_name", "rayplane")
        kwargs["standalone_mode"] = False  # errors come back here to be told in one line
        try:
            result = command.main(*args, **kwargs)
        except ClickException as exc:
            print_error(usage_line(exc))
            sys.exit(int(getattr(exc, "exit_code", 2)))
        except BrokenPipeError:
            quiet_broken_pipe()
        except Exception as exc:
            if type(exc).__name__ != "Abort":  # EOF at a prompt
                raise
            print_error("cancelled; nothing was changed")
            sys.exit(EXIT_FAILURE)
        sys.exit(result if isinstance(result, int) else 0)


app = RayplaneTyper(
    name="rayplane",
    help="Rayplane: managed Ray clusters and Serve services on Azure, or on this machine in dev mode.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

OPERATOR_PANEL = "Run the control plane"
RAY_PANEL = "Clusters, services and jobs"

# The operator verbs and their one-line help (the full help is `rayplane VERB --help`, answered
# by ops). Kept here as text so listing them imports nothing.
OPERATOR_VERBS = {
    "dev": "Run the whole control plane here: API, worker and beat, on embedded Postgres and Redis.",
    "migrate": "Apply database migrations (needs RAYPLANE_DATABASE_URL).",
    "api": "Run the API server (uvicorn) in the foreground.",
    "worker": "Run one Celery worker in the foreground.",
    "beat": "Run Celery beat (the periodic sweeps) in the foreground. Run exactly one.",
    "openapi": "Write (or --check) the OpenAPI document of the API, openapi/openapi.json.",
}

# The user-facing commands (see docs/cli.md), grouped in help panels in this order, and the
# options every command accepts. Typer lists a group's own commands before those of the apps
# added to it, so every command comes from an added app and the panels keep this order.
app.callback(epilog=root_epilog())(global_options)
app.add_typer(clusters.app, rich_help_panel=RAY_PANEL)
app.add_typer(services.app, rich_help_panel=RAY_PANEL)
app.add_typer(jobs.app, rich_help_panel=RAY_PANEL)
app.add_typer(metrics.app)
app.add_typer(logs.app)
app.add_typer(billing.reports_app)
app.add_typer(billing.budget_app, rich_help_panel=billing.PANEL)
app.add_typer(login.app)
app.add_typer(login.config_app, rich_help_panel="Account")
app.add_typer(account.tenant_app, rich_help_panel="Account")
app.add_typer(account.keys_app, rich_help_panel="Account")
app.add_typer(account.members_app, rich_help_panel="Account")
app.add_typer(clouds.app, rich_help_panel="Account")
app.add_typer(doctor.app)


@doctor.app.command(rich_help_panel="Help")
def version() -> None:
    """Print the version.

    Example: [bold]rayplane version[/bold]
    """
    typer.echo(__version__)


def exec_ops(verb: str, args: list[str]) -> NoReturn:
    """Become ``python -m ops VERB ARGS…`` in this same process (same pid, same signals)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "ops", verb, *args])  # noqa: S606 - argv we build


# Typer lists a group's own commands before those of the apps added to it, so the operator
# verbs live in an app of their own, added last: `rayplane --help` lists them after the user's.
operator_app = typer.Typer()


def _operator_command(verb: str) -> None:
    def command(ctx: typer.Context) -> None:
        exec_ops(verb, list(ctx.args))

    operator_app.command(
        verb,
        help=OPERATOR_VERBS[verb],
        rich_help_panel=OPERATOR_PANEL,
        add_help_option=False,  # `rayplane dev --help` is answered by ops
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(command)


for _verb in OPERATOR_VERBS:
    _operator_command(_verb)
app.add_typer(operator_app)


if __name__ == "__main__":
    app()
