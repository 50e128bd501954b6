"""``rayplane login`` / ``logout`` and ``rayplane config``: credentials and profiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.client import ApiError, RayplaneClient, Tenant
from cli.config import DEFAULT_API_URL, DEFAULT_PROFILE, ConfigFile, config_path, find_dev_env, read_env_file
from cli.context import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    GLOBALS,
    OutputOption,
    exit_code_for,
    fail,
    fmt,
    handle_errors,
    problem_line,
    target,
)
from cli.output import Column, emit, notice, out, render_list, render_one

app = typer.Typer(rich_markup_mode="rich")
config_app = typer.Typer(
    name="config",
    help="Show the resolved configuration and manage profiles.\n\nExample: [bold]rayplane config show[/bold]",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
    rich_markup_mode="rich",
)

ProfileOption = Annotated[
    str | None, typer.Option("--profile", "-p", help="Profile to use (default: the current one).", show_default=False)
]


def _profile_name(local: str | None, config: ConfigFile) -> str:
    return local or GLOBALS.overrides.profile or os.environ.get("RAYPLANE_PROFILE") or config.current or DEFAULT_PROFILE


def _login_url(local: str | None, config: ConfigFile, profile: str) -> str:
    """--api-url, RAYPLANE_API_URL, the profile's URL, ./.rayplane/dev.env, the default."""
    existing = (config.get(profile) or {}).get("api_url")
    dev_env = find_dev_env(Path.cwd())
    dev_url = read_env_file(dev_env).get("RAYPLANE_API_URL") if dev_env else None
    chosen = local or GLOBALS.overrides.api_url or os.environ.get("RAYPLANE_API_URL") or existing or dev_url
    return (chosen or DEFAULT_API_URL).rstrip("/")


def _read_key(given: str | None) -> str:
    if given and given != "-":
        return given.strip()
    if given == "-" or not sys.stdin.isatty():
        key = sys.stdin.readline().strip()
        if not key:
            fail("no API key on standard input", EXIT_USAGE)
        return key
    return str(typer.prompt("API key", hide_input=True)).strip()


def _verify(url: str, token: str) -> Tenant:
    with RayplaneClient(url, token) as api:
        try:
            return api.get_tenant()
        except ApiError as exc:
            if exc.status in (401, 403):
                fail(f"the API at {url} refused the credential: {problem_line(exc)}", EXIT_USAGE)
            fail(problem_line(exc), exit_code_for(exc.status))


def _shadowing_notes(profile: str) -> list[str]:
    notes = []
    if os.environ.get("RAYPLANE_API_KEY"):
        notes.append(f"RAYPLANE_API_KEY is set and takes precedence over profile {profile!r}")
    dev_env = find_dev_env(Path.cwd())
    if dev_env is not None:
        notes.append(f"{dev_env} takes precedence over profile {profile!r} in this directory (use --profile)")
    return notes


@app.command(rich_help_panel="Account", epilog=EXIT_CODES_HELP)
@handle_errors
def login(
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="The key; '-' reads it from stdin.", show_default=False)
    ] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", help="The API's base URL.", show_default=False)] = None,
    profile: ProfileOption = None,
    device_code: Annotated[
        bool, typer.Option("--device-code", help="Sign in with Entra ID in a browser instead of an API key.")
    ] = False,
    authority: Annotated[
        str | None,
        typer.Option(help="Entra authority URL (env RAYPLANE_LOGIN_AUTHORITY).", show_default=False),
    ] = None,
    client_id: Annotated[
        str | None, typer.Option(help="The CLI's Entra app id (env RAYPLANE_LOGIN_CLIENT_ID).", show_default=False)
    ] = None,
    scope: Annotated[
        str | None, typer.Option(help="API scope to ask for (env RAYPLANE_LOGIN_SCOPE).", show_default=False)
    ] = None,
    output: OutputOption = None,
) -> None:
    """Check a credential against the API and save it in a profile (file mode 0600).

    With an API key: the key is asked for without echo, read from stdin when piped, or
    given with --api-key. With --device-code: sign in with Entra ID on any device.

    Examples:
      [bold]rayplane login[/bold]
      [bold]echo $KEY | rayplane login --api-url https://rayplane.example.com --profile prod[/bold]
      [bold]rayplane login --device-code --client-id 0b7c… --scope api://rayplane/.default[/bold]
    """
    config = ConfigFile.load(config_path())
    name = _profile_name(profile, config)
    url = _login_url(api_url, config, name)
    if device_code:
        from cli.entra import device_code_login, settings_from_env

        auth, cid, scp = settings_from_env(authority, client_id, scope)
        if not cid or not scp:
            fail("--device-code needs --client-id and --scope (or RAYPLANE_LOGIN_CLIENT_ID/_SCOPE)", EXIT_USAGE)
        token, fields = device_code_login(cid, auth, scp, lambda text: notice(text, "bold"))
        tenant = _verify(url, token)
        entry: dict[str, Any] = {"api_url": url, **fields}
    else:
        key = _read_key(api_key or GLOBALS.overrides.api_key)
        tenant = _verify(url, key)
        entry = {"api_url": url, "api_key": key}
    previous = config.get(name) or {}
    if previous.get("auth") == "entra" and entry.get("account") != previous.get("account"):
        from cli.entra import forget

        forget(previous)
    config.profiles[name] = entry
    config.current = name
    config.save()
    result = {"profile": name, "api_url": url, "config": str(config.path), "tenant": tenant}
    if fmt(output) != "table":
        emit(result, fmt(output))
    else:
        out().print(f"Logged in to tenant {tenant['name']!r} ({tenant['id']}) at {url}.")
        out().print(f"Saved as profile {name!r} in {config.path}.")
    for note in _shadowing_notes(name):
        notice(f"note: {note}", "yellow")


@app.command(rich_help_panel="Account", epilog=EXIT_CODES_HELP)
@handle_errors
def logout(profile: ProfileOption = None) -> None:
    """Forget the credential of a profile (its API URL stays).

    Example: [bold]rayplane logout --profile prod[/bold]
    """
    config = ConfigFile.load(config_path())
    name = _profile_name(profile, config)
    entry = config.require(name)
    if entry.get("auth") == "entra":
        from cli.entra import forget

        forget(entry)
    config.profiles[name] = {"api_url": entry["api_url"]} if entry.get("api_url") else {}
    config.save()
    out().print(f"Logged out of profile {name!r}.")


def _mask(key: str | None) -> str | None:
    if not key:
        return None
    return key[:12] + "…" if len(key) > 16 else "…"


@config_app.command("show", epilog=EXIT_CODES_HELP)
@handle_errors
def show(output: OutputOption = None) -> None:
    """Where requests go and which credential they carry, and where each setting came from.

    Example: [bold]rayplane config show[/bold]
    """
    t = target()
    kind = "entra (device code)" if t.entra else "api key" if t.api_key else None
    record = {
        "api_url": t.api_url,
        "api_url_from": t.url_source,
        "credential": kind,
        "credential_from": t.credential_source,
        "api_key": _mask(t.api_key),
        "account": (t.entra or {}).get("account"),
        "profile": t.profile,
        "config_file": str(t.config_path),
    }
    render_one(record, lambda r: [(k.replace("_", " "), v) for k, v in r.items()], fmt(output))


@config_app.command("profiles", epilog=EXIT_CODES_HELP)
@handle_errors
def profiles(output: OutputOption = None) -> None:
    """List the profiles in the config file; * marks the current one.

    Example: [bold]rayplane config profiles -o yaml[/bold]
    """
    config = ConfigFile.load(config_path())
    rows = [
        {
            "name": name,
            "current": name == (config.current or DEFAULT_PROFILE),
            "api_url": p.get("api_url"),
            "auth": "entra" if p.get("auth") == "entra" else "api key" if p.get("api_key") else None,
            "account": p.get("account"),
        }
        for name, p in sorted(config.profiles.items())
    ]
    columns = [
        Column("", lambda r: "*" if r["current"] else " "),
        Column("PROFILE", lambda r: r["name"]),
        Column("API URL", lambda r: r["api_url"]),
        Column("AUTH", lambda r: r["auth"] or "(logged out)"),
        Column("ACCOUNT", lambda r: r["account"]),
    ]
    render_list(rows, columns, fmt(output), empty=f"No profiles in {config.path}; run `rayplane login`.")


@config_app.command("use", epilog=EXIT_CODES_HELP)
@handle_errors
def use(name: Annotated[str, typer.Argument(help="Profile to make current.")]) -> None:
    """Make a profile the current one.

    Example: [bold]rayplane config use prod[/bold]
    """
    config = ConfigFile.load(config_path())
    config.require(name)
    config.current = name
    config.save()
    out().print(f"Current profile: {name!r}.")
