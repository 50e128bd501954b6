"""Account commands: ``rayplane tenant``, ``api-keys`` and ``members``.

Clouds are in :mod:`cli.clouds`; usage, overview and the budget in :mod:`cli.billing`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, TypeVar

import typer

from cli.client import ApiKey, Member, Tenant
from cli.context import (
    EXIT_CODES_HELP,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    OutputOption,
    YesOption,
    client,
    confirm,
    fail,
    fmt,
    handle_errors,
)
from cli.output import Column, age, notice, out, render_list, render_one

ROLES = ("viewer", "member", "admin", "owner")


def _group(name: str, help_: str, example: str) -> typer.Typer:
    text = f"{help_}\n\nExample: [bold]{example}[/bold]"
    return typer.Typer(name=name, help=text, no_args_is_help=True, epilog=EXIT_CODES_HELP, rich_markup_mode="rich")


tenant_app = _group("tenant", "Your tenant (organisation).", "rayplane tenant get")
keys_app = _group("api-keys", "API keys for the CLI and automation.", "rayplane api-keys list")
members_app = _group("members", "People in your tenant and their roles.", "rayplane members list")

RoleOption = Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")]
T = TypeVar("T", ApiKey, Member)


def _role(value: str) -> str:
    if value.lower() not in ROLES:
        fail(f"unknown role {value!r}; one of {', '.join(ROLES)}", EXIT_USAGE)
    return value.lower()


def _find(items: Iterable[T], ref: str, keys: tuple[str, ...], what: str) -> T:
    """The one item whose id (or another of ``keys``) is ``ref``."""
    matches = [i for i in items if any(str(i.get(k) or "") == ref for k in keys)]
    if not matches:
        fail(f"no {what} {ref!r}", EXIT_NOT_FOUND)
    if len(matches) > 1:
        ids = ", ".join(str(m["id"]) for m in matches)
        fail(f"{ref!r} names several {what}s ({ids}); use the id", EXIT_USAGE)
    return matches[0]


# ---- tenant ------------------------------------------------------------------------------
def tenant_fields(t: Tenant) -> list[tuple[str, object]]:
    return [
        ("Name", t["name"]),
        ("Display name", t["display_name"]),
        ("ID", t["id"]),
        ("Status", t["status"]),
        ("Entra tenant", t.get("entra_tenant_id")),
        ("Created", t["created_at"]),
    ]


@tenant_app.command("get", epilog=EXIT_CODES_HELP)
@handle_errors
def tenant_get(output: OutputOption = None) -> None:
    """Show the tenant your credential belongs to.

    Example: [bold]rayplane tenant get -o json[/bold]
    """
    with client() as api:
        render_one(api.get_tenant(), tenant_fields, fmt(output))


# ---- api keys ----------------------------------------------------------------------------
KEY_COLUMNS = [
    Column("ID", lambda k: k["id"]),
    Column("NAME", lambda k: k["name"]),
    Column("ROLE", lambda k: k["role"]),
    Column("PREFIX", lambda k: f"rpk_{k['prefix']}_…"),
    Column("CREATED", lambda k: age(k["created_at"])),
    Column("LAST USED", lambda k: age(k.get("last_used_at")) if k.get("last_used_at") else "never"),
    Column("STATE", lambda k: "revoked" if k.get("revoked_at") else "active"),
]


@keys_app.command("list", epilog=EXIT_CODES_HELP)
@handle_errors
def keys_list(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include revoked keys.")] = False,
    output: OutputOption = None,
) -> None:
    """List API keys (the secrets themselves are never shown again).

    Example: [bold]rayplane api-keys list --all[/bold]
    """
    with client() as api:
        items = list(api.iter_api_keys(include_revoked=all_))
    render_list(items, KEY_COLUMNS, fmt(output), empty="No API keys.")


@keys_app.command("create", epilog=EXIT_CODES_HELP)
@handle_errors
def keys_create(
    name: Annotated[str, typer.Argument(help="A name to recognise the key by.")],
    role: RoleOption = "member",
    expires_at: Annotated[
        str | None, typer.Option(help="Expiry, ISO 8601 (e.g. 2027-01-31T00:00:00Z).", show_default=False)
    ] = None,
    output: OutputOption = None,
) -> None:
    """Create an API key. The key is printed once: store it now.

    Example: [bold]rayplane api-keys create ci --role member -o json | jq -r .key[/bold]
    """
    with client() as api:
        created = api.create_api_key(name, _role(role), expires_at)
    if fmt(output) != "table":
        render_one(created, lambda r: [], fmt(output))
        return
    out().print(created["key"], soft_wrap=True)
    notice(f"Created {created['id']} ({created['name']}, {created['role']}). This is the only time the key is shown.")


@keys_app.command("revoke", epilog=EXIT_CODES_HELP)
@handle_errors
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id (key_…), name or prefix.")],
    yes: YesOption = False,
    output: OutputOption = None,
) -> None:
    """Revoke an API key; anything using it stops working at once.

    Example: [bold]rayplane api-keys revoke ci --yes[/bold]
    """
    with client() as api:
        found = _find(api.iter_api_keys(), key, ("id", "name", "prefix"), "API key")
        confirm(f"Revoke API key {found['name']} ({found['id']})?", yes)
        revoked = api.revoke_api_key(found["id"])
    if fmt(output) != "table":
        render_one(revoked, lambda r: [], fmt(output))
    else:
        out().print(f"Revoked {revoked['id']} ({revoked['name']}).")


# ---- members -----------------------------------------------------------------------------
MEMBER_COLUMNS = [
    Column("ID", lambda m: m["id"]),
    Column("NAME", lambda m: m.get("display_name")),
    Column("EMAIL", lambda m: m.get("email")),
    Column("ROLE", lambda m: m["role"]),
    Column("OID", lambda m: m["oid"]),
    Column("ADDED", lambda m: age(m["created_at"])),
]


def member_fields(m: Member) -> list[tuple[str, object]]:
    return [
        ("ID", m["id"]),
        ("Name", m.get("display_name")),
        ("Email", m.get("email")),
        ("Role", m["role"]),
        ("Entra object id", m["oid"]),
    ]


@members_app.command("list", epilog=EXIT_CODES_HELP)
@handle_errors
def members_list(output: OutputOption = None) -> None:
    """List the members of your tenant.

    Example: [bold]rayplane members list[/bold]
    """
    with client() as api:
        items = list(api.iter_members())
    render_list(items, MEMBER_COLUMNS, fmt(output), empty="No members.")


@members_app.command("add", epilog=EXIT_CODES_HELP)
@handle_errors
def members_add(
    oid: Annotated[str, typer.Argument(help="The user's Entra object id.")],
    role: RoleOption = "member",
    email: Annotated[str | None, typer.Option(help="Email, for display.", show_default=False)] = None,
    name: Annotated[str | None, typer.Option(help="Display name.", show_default=False)] = None,
    output: OutputOption = None,
) -> None:
    """Add a person (by Entra object id) with a role.

    Example: [bold]rayplane members add 5f1c…-… --role admin --email ada@contoso.com[/bold]
    """
    with client() as api:
        member = api.add_member(oid, _role(role), email=email, display_name=name)
    render_one(member, member_fields, fmt(output))


@members_app.command("remove", epilog=EXIT_CODES_HELP)
@handle_errors
def members_remove(
    member: Annotated[str, typer.Argument(help="Member id (mem_…), email or Entra object id.")],
    yes: YesOption = False,
) -> None:
    """Remove a member from your tenant.

    Example: [bold]rayplane members remove ada@contoso.com --yes[/bold]
    """
    with client() as api:
        found = _find(api.iter_members(), member, ("id", "email", "oid"), "member")
        label = found.get("email") or found.get("display_name") or found["oid"]
        confirm(f"Remove {label} ({found['id']}) from the tenant?", yes)
        api.remove_member(found["id"])
    out().print(f"Removed {label} ({found['id']}).")
