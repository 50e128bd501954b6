"""``rayplane services``: deploy Ray Serve applications from a file, watch their versions and
traffic, roll back, stop, start and delete them.

Every command takes a service by name or by id (``svc_…``). ``deploy -f`` is the one command
for the first deploy and every change after it: it creates the service named in the file, or
sends the file's fields that differ to the live service of that name (with ``If-Match``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from cli.client import Accepted, ApiError, ApiUnreachable, RayplaneClient, Service
from cli.context import (
    EXIT_CODES_HELP,
    EXIT_CONFLICT,
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    OutputFormat,
    OutputOption,
    YesOption,
    client,
    fail,
    fmt,
    handle_errors,
    resolve_ref,
)
from cli.kinds import SERVICES
from cli.lifecycle import request_action, show_events
from cli.output import Format, details, emit, notice, print_table, render_list, render_one, table
from cli.service_files import (
    fixed_field_errors,
    load_service_file,
    service_patch,
)
from cli.specs import SpecError
from cli.views import (
    APPLICATION_COLUMNS,
    SERVICE_COLUMNS,
    applications_of,
    given_up,
    one_line,
    rollout_fields,
    rollout_running,
    service_fields,
    status_fields,
)
from cli.watch import EventFeed, follow_to, request_goes_on

app = typer.Typer(
    name="services",
    help="Deploy Ray Serve applications with zero-downtime rollouts; watch, roll back, stop and delete them."
    "\n\nExample: [bold]rayplane services deploy -f service.yaml --wait[/bold]",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
    rich_markup_mode="rich",
)
rollout_app = typer.Typer(
    name="rollout",
    help="A service's rollout: the active and pending versions and the traffic between them.\n\n"
    "Example: [bold]rayplane services rollout status demo[/bold]",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
    rich_markup_mode="rich",
)
app.add_typer(rollout_app)

ServiceArg = Annotated[str, typer.Argument(help="Service name or id (svc_…).", show_default=False)]
WaitOption = Annotated[bool, typer.Option("--wait", "-w", help="Show progress and wait until it is done.")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait (then exit 5).")]
STATES = (
    *("PENDING", "PROVISIONING", "DEPLOYING", "RUNNING", "ROLLING_OUT", "ROLLING_BACK", "DEGRADED"),
    *("STOPPING", "STOPPED", "STARTING", "FAILED", "DELETING", "DELETED"),
)

#: What ``PATCH /v1/services/{id}`` takes; the rest of a file (its cloud) is fixed once the service exists.
#: Fields of the cluster spec, read from the service's ``spec`` rather than its top level.


def show_service(s: Service, output: OutputFormat | None) -> None:
    """The service as a detail view (naming its cloud), or as JSON/YAML."""
    form = fmt(output)
    cloud = s.get("cloud_id")
    if form == "table" and cloud:
        with contextlib.suppress(ApiError, ApiUnreachable), client() as api:
            cloud = next((f"{x['name']} ({x['id']})" for x in api.list_clouds() if x["id"] == cloud), cloud)
    render_one(s, lambda r: service_fields(r, cloud), form)


def find_live(api: RayplaneClient, name: str) -> Service | None:
    """The service of that name that is not DELETED, if there is one."""
    return next((s for s in api.iter_services() if s["name"] == name and s["state"] != "DELETED"), None)


def _cloud_names(api: RayplaneClient, wanted: Mapping[str, Any]) -> dict[str, str]:
    return {c["id"]: c["name"] for c in api.list_clouds()} if wanted.get("cloud") else {}


def _update(
    api: RayplaneClient, s: Service, wanted: Mapping[str, Any], file: str
) -> tuple[Accepted[Service] | None, dict[str, Any], Service]:
    """PATCH the live service with what differs (If-Match; on a conflict, read again and retry once).

    Returns the 202 answer (None when nothing differs), the patch, and the service it was
    compared with.
    """
    names = _cloud_names(api, wanted)
    for attempt in (1, 2):
        current = api.get_service(s["id"])
        errors = fixed_field_errors(wanted, current.body, names)
        if errors:
            raise CliError(
                f"{file} asks for a change that needs a new service; delete {s['name']} and deploy again",
                EXIT_USAGE,
                errors,
            )
        patch = service_patch(wanted, current.body)
        if not patch:
            return None, patch, current.body
        try:
            return api.update_service(s["id"], patch, if_match=current.etag), patch, current.body
        except ApiError as exc:
            if exc.status != 412 or attempt == 2:
                raise
            notice("the service changed meanwhile; comparing the file with the new version", "yellow")
    raise AssertionError("unreachable")


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def deploy(
    file: Annotated[
        str,
        typer.Option(
            "--file", "-f", help="Service file (YAML/JSON; '-' for stdin).", metavar="FILE", show_default=False
        ),
    ],
    wait_: WaitOption = False,
    timeout: TimeoutOption = 1800,
    output: OutputOption = None,
) -> None:
    """Create the service named in the file, or update the live one of that name.

    Examples:
      [bold]rayplane services deploy -f service.yaml --wait[/bold]
      [bold]curl $(rayplane services endpoint hello)/hello[/bold]

    The file has the fields of POST /v1/services: name, cloud, ray_version, image,
    head.vm_size, worker_groups[] (name, vm_size, min_nodes, max_nodes, spot), labels,
    serve.applications[] (name, import_path, route_prefix, runtime_env, deployments[]) and
    rollout (strategy blue_green|incremental, step_percent, interval_seconds,
    max_surge_percent, health_timeout_seconds). A local runtime_env.working_dir is relative to
    the file.

    When a service of that name is live, only the fields that differ are sent (PATCH with
    If-Match; fields left out of the file stay as they are; nothing is sent when nothing
    differs; its cloud cannot change). A change of serve (or of a group's node range)
    applies in place; a new image, Ray version or VM size rolls out a new version. With
    --wait, prints its events until the request ends: exit 0 when it succeeded, 1 when it
    failed or the new version was rolled back, 5 on timeout.
    """
    try:
        wanted = load_service_file(file)
    except SpecError as exc:
        fail(str(exc), EXIT_USAGE)
    name = wanted["name"]
    with client() as api:
        live = find_live(api, name)
        if live is not None and live["state"] == "DELETING":
            fail(f"service {name} ({live['id']}) is being deleted; deploy again once it is gone", EXIT_CONFLICT)
        feed: EventFeed | None = None
        if live is None:
            accepted = api.create_service(wanted)
            verb, how = "create", ""
        else:
            feed = EventFeed(api, live["id"], SERVICES)
            if wait_:
                feed.skip_existing()
            update, change, live = _update(api, live, wanted, file)
            if update is None:
                notice(f"service {name} ({live['id']}) already runs what {file} says; nothing to deploy")
                show_service(live, output)
                return
            accepted = update
            verb, how = "update", f": {', '.join(change)}; {_how(live, update.resource)}"
        s = accepted.resource
        with request_goes_on(s["name"], "RUNNING", verb, SERVICES) if wait_ else contextlib.nullcontext():
            notice(f"{'Creating' if verb == 'create' else 'Updating'} service {s['name']} ({s['id']}){how}")
            if wait_:
                s = follow_to(api, accepted, "RUNNING", timeout, feed, verb=verb, kind=SERVICES)
                _check_rolled_back(s)
        if not wait_ and fmt(output) == "table":
            notice(f"Watch it with: rayplane services events {s['name']} --follow", "dim")
    show_service(s, output)


def _how(before: Service, after: Service) -> str:
    """How an accepted update reaches the service: in place, or by a new version."""
    if (after.get("version") or 0) > (before.get("version") or 0):
        strategy = str((after.get("rollout") or {}).get("strategy") or "blue_green")
        return f"version {after['version']} rolls out ({strategy})"
    return f"applied in place on version {after.get('active_version') or after.get('version')}"


def _check_rolled_back(s: Service) -> None:
    """A deploy whose new version was given up on failed, even if its operation ended."""
    wanted = given_up(s)
    if wanted is not None:
        why = s.get("failure") or s.get("state_reason") or "no reason given"
        raise CliError(
            f"version {wanted} of {s['name']} was rolled back; version {s['active_version']} serves: {one_line(why)}",
            EXIT_FAILURE,
        )


# ---- reading -------------------------------------------------------------------------
@app.command("list", epilog=EXIT_CODES_HELP)
@handle_errors
def list_(
    state: Annotated[
        list[str] | None, typer.Option(help=f"Only these states (repeatable): {', '.join(STATES)}.", metavar="STATE")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="Only with this label (repeatable).", metavar="KEY=VALUE")
    ] = None,
    cloud: Annotated[str | None, typer.Option(help="Only on this cloud (name or id).", show_default=False)] = None,
    output: OutputOption = None,
) -> None:
    """List services (all pages). Deleted ones show only with --state DELETED.

    Examples:
      [bold]rayplane services list[/bold]
      [bold]rayplane services list --state ROLLING_OUT --label team=web -o json[/bold]
    """
    states = [s.upper() for s in state or []]
    with client() as api:
        items = list(api.iter_services(states=states or None, cloud=cloud, labels=label))
    render_list(items, SERVICE_COLUMNS, fmt(output), empty="No services. Deploy one: rayplane services deploy --help")


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def get(service: ServiceArg, output: OutputOption = None) -> None:
    """Show one service: state, versions, traffic, applications, rollout policy, endpoint.

    Example: [bold]rayplane services get hello -o yaml[/bold]
    """
    with client() as api:
        show_service(resolve_ref(api, SERVICES, service), output)


def render_status(s: Service, form: Format) -> None:
    """``services status``: the head (state, endpoint, traffic) and one row per application and version."""
    if form != "table":
        emit(s, form)
        return
    print_table(details(status_fields(s)))
    apps = applications_of(s)
    sys.stdout.write("\n")
    if apps:
        print_table(table(apps, APPLICATION_COLUMNS))
    else:
        sys.stdout.write("No applications reported yet.\n")
    sys.stdout.flush()


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def status(service: ServiceArg, output: OutputOption = None) -> None:
    """Live status: each version's applications as Serve reports them, the traffic split, the endpoint.

    Example: [bold]rayplane services status hello[/bold]
    """
    with client() as api:
        render_status(resolve_ref(api, SERVICES, service), fmt(output))


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def endpoint(service: ServiceArg) -> None:
    """Print the service's endpoint URL, and nothing else.

    Example: [bold]curl $(rayplane services endpoint hello)/hello[/bold]
    """
    with client() as api:
        s = resolve_ref(api, SERVICES, service)
    url = s.get("endpoint_url")
    if not url:
        fail(f"service {s['name']} has no endpoint while {s['state']}", EXIT_CONFLICT)
    sys.stdout.write(url + "\n")


@rollout_app.command("status", epilog=EXIT_CODES_HELP)
@handle_errors
def rollout_status(
    service: ServiceArg,
    wait_: Annotated[
        bool, typer.Option("--wait", "-w", help="Wait until the rollout ends, printing its events.")
    ] = False,
    timeout: TimeoutOption = 1800,
    output: OutputOption = None,
) -> None:
    """The active and pending versions, the pending one's share of traffic, and the state.

    Exit 0, also when no rollout is running. With --wait, follows a running rollout to its
    end: exit 0 when the new version took all traffic, 1 when it was rolled back, 5 on timeout.

    Examples:
      [bold]rayplane services rollout status hello[/bold]
      [bold]rayplane services rollout status hello --wait --timeout 900[/bold]
    """
    with client() as api:
        s = resolve_ref(api, SERVICES, service)
        if wait_ and rollout_running(s):
            feed = EventFeed(api, s["id"], SERVICES)
            feed.skip_existing()
            s = follow_to(api, s, "RUNNING", timeout, feed, lambda r: not rollout_running(r), kind=SERVICES)
            _check_rolled_back(s)
    render_one(s, rollout_fields, fmt(output))


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def rollback(
    service: ServiceArg, wait_: WaitOption = False, timeout: TimeoutOption = 900, output: OutputOption = None
) -> None:
    """Drop the version being rolled out: all traffic back on the active version.

    Without a pending version there is nothing to roll back: it says so (exit 0).

    Example: [bold]rayplane services rollback hello --wait[/bold]
    """
    with client() as api:
        s = resolve_ref(api, SERVICES, service)
        where = f"service {service!r}" + (f" ({s['id']})" if s["id"] != service else "")
        if not rollout_running(s):
            notice(f"{where} has no rollout to roll back; version {s.get('active_version')} serves all traffic")
            show_service(s, output)
            return
        feed = EventFeed(api, s["id"], SERVICES)
        if wait_:
            feed.skip_existing()
        if s["state"] == "ROLLING_BACK":
            notice(f"{where} is already rolling back version {s.get('pending_version')}")
            if wait_:
                s = follow_to(api, s, "RUNNING", timeout, feed, lambda r: not rollout_running(r), kind=SERVICES)
            show_service(s, output)
            return
        accepted = api.service_action(s["id"], "rollback")
        s = accepted.resource
        with request_goes_on(s["name"], "RUNNING", "rollback", SERVICES) if wait_ else contextlib.nullcontext():
            notice(f"Rollback requested for {s['name']} ({s['id']})")
            if wait_:
                s = follow_to(api, accepted, "RUNNING", timeout, feed, verb="rollback", kind=SERVICES)
    show_service(s, output)


# ---- lifecycle: shared with clusters ---------------------------------------------------
def _action(service: str, action: str, wait_: bool, timeout: float, output: Any, yes: bool = True) -> None:
    request_action(SERVICES, service, action, wait_, timeout, lambda s: show_service(s, output), yes)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def stop(
    service: ServiceArg, wait_: WaitOption = False, timeout: TimeoutOption = 900, output: OutputOption = None
) -> None:
    """Stop every version's nodes; the spec is kept and no compute is billed.

    Example: [bold]rayplane services stop hello --wait[/bold]
    """
    _action(service, "stop", wait_, timeout, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def start(
    service: ServiceArg, wait_: WaitOption = False, timeout: TimeoutOption = 1800, output: OutputOption = None
) -> None:
    """Start a stopped service again.

    Example: [bold]rayplane services start hello --wait[/bold]
    """
    _action(service, "start", wait_, timeout, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def retry(
    service: ServiceArg, wait_: WaitOption = False, timeout: TimeoutOption = 1800, output: OutputOption = None
) -> None:
    """Provision a FAILED service again.

    Example: [bold]rayplane services retry hello --wait[/bold]
    """
    _action(service, "retry", wait_, timeout, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def delete(
    service: ServiceArg,
    yes: YesOption = False,
    wait_: WaitOption = False,
    timeout: TimeoutOption = 900,
    output: OutputOption = None,
) -> None:
    """Delete a service and every version's nodes. Its record and events stay readable as DELETED.

    Example: [bold]rayplane services delete hello --yes --wait[/bold]
    """
    _action(service, "delete", wait_, timeout, output, yes=yes)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def events(
    service: ServiceArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C to stop).")] = False,
    output: OutputOption = None,
) -> None:
    """Show a service's timeline: state changes, deploys, traffic moves, rollbacks (oldest first).

    With --follow and -o json, prints one JSON object per line.

    Example: [bold]rayplane services events hello --follow[/bold]
    """
    show_events(SERVICES, service, follow, output)
