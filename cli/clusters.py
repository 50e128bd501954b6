"""``rayplane clusters``: create, watch, resize, stop, start and delete Ray clusters.

Every command takes a cluster by name or by id (``cls_…``).
"""

from __future__ import annotations

import contextlib
import sys
import webbrowser
from typing import Annotated, Any

import typer

from cli.billing import show_estimate
from cli.client import ApiError, ApiUnreachable, Cluster
from cli.context import (
    EXIT_CODES_HELP,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    OutputOption,
    YesOption,
    client,
    fail,
    fmt,
    handle_errors,
    resolve_cluster,
)
from cli.kinds import CLUSTERS
from cli.lifecycle import request_action, show_events
from cli.output import notice, out, render_list, render_one
from cli.specs import SpecError, build_spec, load_spec_file
from cli.views import CLUSTER_COLUMNS, cluster_fields
from cli.watch import EventFeed, follow_to, request_goes_on

app = typer.Typer(
    name="clusters",
    help="Create, watch, resize, stop, start and delete Ray clusters.\n\nExample: [bold]rayplane clusters list[/bold]",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
    rich_markup_mode="rich",
)

ClusterArg = Annotated[str, typer.Argument(help="Cluster name or id (cls_…).", show_default=False)]
WaitOption = Annotated[bool, typer.Option("--wait", "-w", help="Show progress and wait until it is done.")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait (then exit 5).")]
STATES = (
    *("PENDING", "PROVISIONING", "RUNNING", "UPDATING", "DEGRADED"),
    *("STOPPING", "STOPPED", "STARTING", "FAILED", "DELETING", "DELETED"),
)


def show_cluster(c: Cluster, output: Any) -> None:
    """The cluster as a detail view (naming its cloud), or as JSON/YAML."""
    form = fmt(output)
    cloud = c.get("cloud_id")
    if form == "table" and cloud:
        with contextlib.suppress(ApiError, ApiUnreachable), client() as api:
            cloud = next((f"{x['name']} ({x['id']})" for x in api.list_clouds() if x["id"] == cloud), cloud)
    render_one(c, lambda r: cluster_fields(r, cloud), form)


# ---- commands ----------------------------------------------------------------------------
@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def create(
    file: Annotated[
        str | None,
        typer.Option("--file", "-f", help="Spec file (YAML/JSON; '-' for stdin).", metavar="FILE", show_default=False),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Cluster name.", show_default=False)] = None,
    head: Annotated[str | None, typer.Option(help="Head node VM size.", show_default=False)] = None,
    workers: Annotated[
        list[str] | None,
        typer.Option(help="Worker group (repeatable).", metavar="NAME=SIZE:MIN-MAX[:spot]", show_default=False),
    ] = None,
    cloud: Annotated[str | None, typer.Option(help="Cloud name or id.", show_default=False)] = None,
    ray_version: Annotated[str | None, typer.Option(help="Ray version.", show_default=False)] = None,
    image: Annotated[str | None, typer.Option(help="Container image.", show_default=False)] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="Label (repeatable).", metavar="KEY=VALUE", show_default=False)
    ] = None,
    idle_timeout: Annotated[
        int | None, typer.Option(help="Stop after this many idle minutes.", show_default=False)
    ] = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Show the cluster's hourly cost range and create nothing.")
    ] = False,
    wait_: WaitOption = False,
    timeout: TimeoutOption = 1800,
    output: OutputOption = None,
) -> None:
    """Create a Ray cluster from flags or a spec file (or, with --estimate, price it).

    Examples:
      [bold]rayplane clusters create --name demo --head Standard_D4s_v5 \\
        --workers cpu=Standard_D8s_v5:0-4:spot --wait[/bold]
      [bold]rayplane clusters create -f cluster.yaml --label team=ml[/bold]
      [bold]rayplane clusters create -f cluster.yaml --estimate[/bold]

    A spec file has the fields of POST /v1/clusters: name, cloud, ray_version, head.vm_size,
    head.gcs_fault_tolerance, worker_groups[] (name, vm_size, min_nodes, max_nodes, spot,
    fallback_to_on_demand), labels, idle_timeout_minutes. With --wait, exits 0 when RUNNING,
    1 if it FAILED, 5 on timeout.
    """
    try:
        base = load_spec_file(file) if file else None
        spec = build_spec(
            base,
            name=name,
            head=head,
            workers=workers,
            cloud=cloud,
            ray_version=ray_version,
            image=image,
            labels=label,
            idle_timeout=idle_timeout,
            require_name=not estimate,
        )
    except SpecError as exc:
        fail(str(exc), EXIT_USAGE)
    if estimate:
        with client() as api:
            show_estimate(spec.get("name") or "unnamed", api.estimate_cluster(spec), output)
        return
    with client() as api:
        accepted = api.create_cluster(spec)
        c = accepted.resource
        with request_goes_on(c["name"], "RUNNING", "create") if wait_ else contextlib.nullcontext():
            notice(f"Creating cluster {c['name']} ({c['id']})")
            if wait_:
                c = follow_to(api, accepted, "RUNNING", timeout, verb="create", kind=CLUSTERS)
        if not wait_ and fmt(output) == "table":
            notice(f"Watch it with: rayplane clusters events {c['name']} --follow", "dim")
    show_cluster(c, output)


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
    """List clusters (all pages). Deleted ones show only with --state DELETED.

    Examples:
      [bold]rayplane clusters list[/bold]
      [bold]rayplane clusters list --state RUNNING --label team=ml -o json[/bold]
    """
    states = [s.upper() for s in state or []]
    with client() as api:
        items = list(api.iter_clusters(states=states or None, cloud=cloud, labels=label))
    render_list(items, CLUSTER_COLUMNS, fmt(output), empty="No clusters. Create one: rayplane clusters create --help")


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def get(cluster: ClusterArg, output: OutputOption = None) -> None:
    """Show one cluster: state, worker groups, dashboard.

    Example: [bold]rayplane clusters get demo -o yaml[/bold]
    """
    with client() as api:
        show_cluster(resolve_cluster(api, cluster), output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def scale(
    cluster: ClusterArg,
    group: Annotated[str, typer.Argument(help="Worker group name.", show_default=False)],
    min_nodes: Annotated[int | None, typer.Option("--min", min=0, help="New minimum.", show_default=False)] = None,
    max_nodes: Annotated[int | None, typer.Option("--max", min=0, help="New maximum.", show_default=False)] = None,
    wait_: WaitOption = False,
    timeout: TimeoutOption = 900,
    output: OutputOption = None,
) -> None:
    """Change a worker group's minimum and/or maximum node count.

    Reads the cluster with its ETag and updates it with If-Match, so a concurrent change
    is never overwritten (on a conflict it re-reads and tries once more).

    Example: [bold]rayplane clusters scale demo cpu --min 2 --max 8 --wait[/bold]
    """
    if min_nodes is None and max_nodes is None:
        fail("give --min and/or --max", EXIT_USAGE)
    with client() as api:
        cid = resolve_cluster(api, cluster)["id"]
        feed = EventFeed(api, cid)
        if wait_:
            feed.skip_existing()
        for attempt in (1, 2):
            current = api.get_cluster(cid)
            groups = [dict(g) for g in current.body["spec"].get("worker_groups") or []]
            match = [g for g in groups if g["name"] == group]
            if not match:
                known = ", ".join(g["name"] for g in groups) or "none"
                fail(f"cluster {current.body['name']} has no worker group {group!r} (groups: {known})", EXIT_NOT_FOUND)
            if min_nodes is not None:
                match[0]["min_nodes"] = min_nodes
            if max_nodes is not None:
                match[0]["max_nodes"] = max_nodes
            try:
                accepted = api.update_cluster(cid, {"worker_groups": groups}, if_match=current.etag)
                break
            except ApiError as exc:
                if exc.status != 412 or attempt == 2:
                    raise
                notice("the cluster changed meanwhile; retrying with the new version", "yellow")
        g = match[0]
        notice(f"Scaling {current.body['name']}/{group} to {g['min_nodes']}-{g['max_nodes']} nodes")
        c = accepted.resource
        if wait_:
            target_gen = c["generation"]
            c = follow_to(
                api, accepted, "RUNNING", timeout, feed, lambda x: _applied(x, target_gen), "scale", kind=CLUSTERS
            )
    show_cluster(c, output)


def _applied(c: Cluster, generation: int) -> bool:
    return c["state"] == "RUNNING" and c["observed_generation"] >= generation


def _action(cluster: str, action: str, wait_: bool, timeout: float, output: Any, yes: bool = True) -> None:
    """Request ``action`` on the cluster the user named, or say why there is nothing to do."""
    request_action(CLUSTERS, cluster, action, wait_, timeout, lambda c: show_cluster(c, output), yes)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def stop(
    cluster: ClusterArg, wait_: WaitOption = False, timeout: TimeoutOption = 900, output: OutputOption = None
) -> None:
    """Stop every node; the spec is kept and no compute is billed.

    Example: [bold]rayplane clusters stop demo --wait[/bold]
    """
    _action(cluster, "stop", wait_, timeout, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def start(
    cluster: ClusterArg, wait_: WaitOption = False, timeout: TimeoutOption = 1800, output: OutputOption = None
) -> None:
    """Start a stopped cluster again.

    Example: [bold]rayplane clusters start demo --wait[/bold]
    """
    _action(cluster, "start", wait_, timeout, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def retry(
    cluster: ClusterArg, wait_: WaitOption = False, timeout: TimeoutOption = 1800, output: OutputOption = None
) -> None:
    """Provision a FAILED cluster again.

    Example: [bold]rayplane clusters retry demo --wait[/bold]
    """
    _action(cluster, "retry", wait_, timeout, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def delete(
    cluster: ClusterArg,
    yes: YesOption = False,
    wait_: WaitOption = False,
    timeout: TimeoutOption = 900,
    output: OutputOption = None,
) -> None:
    """Delete a cluster. Its record, events and jobs stay readable as DELETED.

    Example: [bold]rayplane clusters delete demo --yes --wait[/bold]
    """
    _action(cluster, "delete", wait_, timeout, output, yes=yes)


@app.command("wait", epilog=EXIT_CODES_HELP)
@handle_errors
def wait_(
    cluster: ClusterArg,
    state: Annotated[str, typer.Option("--state", help="State to wait for.")] = "RUNNING",
    timeout: TimeoutOption = 1800,
    output: OutputOption = None,
) -> None:
    """Wait until a cluster reaches a state (exit 1 if it FAILED, 5 on timeout).

    Example: [bold]rayplane clusters wait demo --state STOPPED --timeout 600[/bold]
    """
    goal = state.upper()
    if goal not in STATES:
        fail(f"unknown state {state!r}; one of {', '.join(STATES)}", EXIT_USAGE)
    with client() as api:
        c = resolve_cluster(api, cluster)
        feed = EventFeed(api, c["id"])
        feed.skip_existing()
        c = follow_to(api, c, goal, timeout, feed, kind=CLUSTERS)
    show_cluster(c, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def events(
    cluster: ClusterArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C to stop).")] = False,
    output: OutputOption = None,
) -> None:
    """Show a cluster's timeline: state changes, scaling, node loss, errors (oldest first).

    With --follow and -o json, prints one JSON object per line.

    Example: [bold]rayplane clusters events demo --follow[/bold]
    """
    show_events(CLUSTERS, cluster, follow, output)


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def dashboard(
    cluster: ClusterArg,
    open_: Annotated[bool, typer.Option("--open", help="Open it in a web browser.")] = False,
    token_only: Annotated[
        bool, typer.Option("--token", help="Print only the cluster's Ray token (for RAY_AUTH_TOKEN).")
    ] = False,
) -> None:
    """Print the URL of the cluster's Ray dashboard and its Ray token (or open it).

    Every cluster runs with Ray's token authentication: the dashboard asks for the token,
    and Ray's tools read it from RAY_AUTH_TOKEN. Needs the member role.

    Example: [bold]RAY_AUTH_TOKEN=$(rayplane clusters dashboard demo --token) ray job list --address URL[/bold]
    """
    with client() as api:
        c = resolve_cluster(api, cluster)
        url = c.get("dashboard_url")
        if not url:
            fail(f"cluster {c['name']} has no dashboard while {c['state']}", EXIT_CONFLICT)
        token = api.ray_token(c["id"])
    if token_only:
        sys.stdout.write(token + "\n")
        return
    out().print(url, soft_wrap=True)
    out().print(f"Ray token: {token}", soft_wrap=True)
    if open_ and not webbrowser.open(url):
        notice("could not open a browser; open the URL above", "yellow")
