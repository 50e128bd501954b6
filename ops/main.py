"""The operator verbs: ``dev``, ``migrate``, ``api``, ``worker``, ``beat``, ``openapi``.

Run as ``python -m ops VERB …``; ``rayplane VERB …`` execs into exactly that, so these are
what the container image's roles and ``make run`` run. Configuration comes from ``RAYPLANE_*``
settings; a configuration error is one ``rayplane: …`` line and exit 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from ops.emulator import MISSING, emulator_available
from rayplane.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="rayplane",
    help="Rayplane operator verbs: run the control plane and its processes.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

OPENAPI_PATH = Path("openapi") / "openapi.json"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"rayplane: {exc}", err=True)
        raise typer.Exit(2) from None


def _configure_logging(settings: Settings, fmt: str | None = None) -> None:
    from rayplane.logs import configure_logging

    configure_logging(settings.log_level, fmt or settings.log_format)


@app.command()
def dev(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every log line, not only warnings and errors"),
) -> None:
    """Run the whole control plane here: API, worker and beat, on embedded Postgres and Redis.

    Example: [bold]rayplane dev[/bold] (what `make run` does). Ctrl-C stops everything.
    With [bold]RAYPLANE_DEMO_AZURE=1[/bold] it also runs the Azure emulator (a development
    component) and registers the emulated cloud 'azure-demo'.
    The services' logs go to .rayplane/logs/ (JSON, one file per service); the terminal shows
    the banner, then warnings and errors ([bold]--verbose[/bold]: everything).
    """
    from ops.dev import run_dev

    settings = _settings()
    if settings.demo_azure and not emulator_available():
        typer.echo(f"rayplane: {MISSING}", err=True)
        raise typer.Exit(2)
    # The supervisor sets up its own logging: to its file, and readable on the terminal.
    raise typer.Exit(run_dev(settings, verbose=verbose))


@app.command()
def migrate(revision: str = typer.Argument("head", help="Target revision")) -> None:
    """Apply database migrations (needs RAYPLANE_DATABASE_URL).

    Example: [bold]RAYPLANE_DATABASE_URL=postgresql://… rayplane migrate[/bold]
    """
    from rayplane.db.migrate import upgrade

    settings = _settings()
    _configure_logging(settings)
    if not settings.database_url:
        typer.echo("rayplane: RAYPLANE_DATABASE_URL is not set", err=True)
        raise typer.Exit(2)
    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {revision}")


def _exec(kind: str) -> None:
    from ops.dev import process_argv

    settings = _settings()
    argv = process_argv(kind, settings)
    os.execv(argv[0], argv)  # noqa: S606 - replace this process: signals go straight to the server


@app.command()
def api() -> None:
    """Run the API server (uvicorn) in the foreground.

    Example: [bold]RAYPLANE_ENV=production … rayplane api[/bold]
    """
    _exec("api")


@app.command()
def worker() -> None:
    """Run one Celery worker in the foreground.

    Example: [bold]rayplane worker[/bold]
    """
    _exec("worker")


@app.command()
def beat() -> None:
    """Run Celery beat (the periodic sweeps) in the foreground. Run exactly one.

    Example: [bold]rayplane beat[/bold]
    """
    _exec("beat")


@app.command()
def openapi(
    output: Path = typer.Option(OPENAPI_PATH, "--output", "-o", help="Where to write the document"),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the file differs instead of writing it"),
) -> None:
    """Write the OpenAPI document of the API to openapi/openapi.json.

    Example: [bold]rayplane openapi[/bold], or [bold]rayplane openapi --check[/bold] in CI.
    """
    from api.openapi import render

    text = render()
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            typer.echo(f"{output} is out of date; run `rayplane openapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    typer.echo(f"wrote {output} ({len(json.loads(text)['paths'])} paths)")
