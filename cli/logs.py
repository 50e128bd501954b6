"""``rayplane logs``: a cluster's Ray logs (raylet, GCS, workers, drivers, Serve) from the
log store, while it runs and after it is deleted."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from cli.client import RayplaneClient
from cli.context import (
    EXIT_CODES_HELP,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    OutputOption,
    client,
    fail,
    fmt,
    handle_errors,
    resolve_ref,
)
from cli.kinds import CLUSTERS, SERVICES
from cli.output import Column, age, render_list

app = typer.Typer()
FILE_COLUMNS = [
    Column("NODE", lambda f: f["node"]),
    Column("COMPONENT", lambda f: f["component"]),
    Column("FILE", lambda f: f["path"], max_width=70),
    Column("SIZE", lambda f: f["size"]),
    Column("MODIFIED", lambda f: age(f.get("modified"))),
]
_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> timedelta:
    """``90s``, ``10m``, ``2h``, ``7d``; exit 2 on anything else."""
    m = _SINCE.match(value.strip())
    if not m:
        fail(f"--since {value!r}: give a number and a unit s, m, h or d (e.g. 10m)", EXIT_USAGE)
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def files_of(
    api: RayplaneClient, base: str, params: dict[str, Any], node: str | None, component: str | None, since: str | None
) -> Any:
    files = api.log_files(base, {**params, "node": node, "component": component})
    if since:
        cutoff = datetime.now(UTC) - parse_since(since)
        files = [f for f in files if f.get("modified") and datetime.fromisoformat(f["modified"]) >= cutoff]
    return files


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command(epilog=EXIT_CODES_HELP, rich_help_panel="Clusters, services and jobs")
@handle_errors
def logs(
    cluster: Annotated[str, typer.Argument(help="Cluster name or id (a deleted one's id works too).")],
    service: Annotated[bool, typer.Option("--service", "-s", help="CLUSTER names a service.")] = False,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="With --service: this version (default: the serving one).")
    ] = None,
    node: Annotated[str | None, typer.Option("--node", "-n", help="Only this node (head, <group>-<n>).")] = None,
    component: Annotated[
        str | None, typer.Option("--component", "-C", help="Only this component: raylet, gcs_server, worker, …")
    ] = None,
    file: Annotated[str | None, typer.Option("--file", help="Only this file (its path on the node).")] = None,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Stream one file until the cluster ends.")] = False,
    since: Annotated[str | None, typer.Option("--since", help="Only files written within, e.g. 10m, 2h.")] = None,
    tail: Annotated[int | None, typer.Option("--tail", min=1, help="Only the last N lines of each file.")] = None,
    list_: Annotated[bool, typer.Option("--list", "-l", help="List the files instead of printing them.")] = False,
    job: Annotated[str | None, typer.Option("--job", help="With --grep: the job (job_…) whose log to search.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="With --job: print the job log's lines with this.")] = None,
    output: OutputOption = None,
) -> None:
    """Print, follow or list a cluster's stored Ray logs.

    With no filter it lists the files; with --node, --component or --file it prints each one.

    Logs stay readable after the cluster is deleted, for the retention period.

    Example: [bold]rayplane logs demo --component raylet --tail 20[/bold]

    Example: [bold]rayplane logs demo --node head --file raylet.out --follow[/bold]

    Example: [bold]rayplane logs demo --job job_01jd… --grep ERROR[/bold]

    Example: [bold]rayplane logs web --service --version 2 --component serve[/bold]
    """
    if (grep is None) != (job is None):
        fail("--grep and --job go together", EXIT_USAGE)
    if version is not None and not service:
        fail("--version goes with --service (a cluster has no versions)", EXIT_USAGE)
    if service and grep is not None:
        fail("--grep searches a job's log; a service runs no jobs", EXIT_USAGE)
    if since is not None:
        parse_since(since)
    with client() as api:
        found = resolve_ref(api, SERVICES, cluster) if service else resolve_ref(api, CLUSTERS, cluster)
        cluster_id = str(found["id"])
        base = f"/v1/{'services' if service else 'clusters'}/{cluster_id}"
        params: dict[str, Any] = {"version": version} if version is not None else {}
        if grep is not None:
            found = api.request("GET", f"/v1/clusters/{cluster_id}/jobs/{job}/logs:search", params={"q": grep}).json()
            for hit in found["hits"]:
                _write(f"{hit['line']}: {hit['text']}\n")
            return
        files = files_of(api, base, params, node, component, since)
        if file is not None:
            files = [f for f in files if f["path"] == file]
        if list_ or not (node or component or file or follow_):
            render_list(files, FILE_COLUMNS, fmt(output), empty="No stored logs match.")
            return
        if not files:
            fail("no stored log file matches (see `rayplane logs CLUSTER --list`)", EXIT_NOT_FOUND)
        if follow_:
            if len(files) != 1:
                names = ", ".join(f"{f['node']}/{f['path']}" for f in files[:8])
                fail(f"--follow takes one file; {len(files)} match ({names}…): add --node and --file", EXIT_USAGE)
            f = files[0]
            path = f"{base}/logs/{f['node']}/{f['path']}"
            for chunk in api.stream_text(path, {**params, "follow": "true", "tail": tail or 10}):
                _write(chunk)
            return
        for f in files:
            if len(files) > 1:
                _write(f"==> {f['node']}/{f['path']} <==\n")
            query = {**params, "tail": tail} if tail else params
            text = api.request("GET", f"{base}/logs/{f['node']}/{f['path']}", params=query).text
            _write(text if not text or text.endswith("\n") else text + "\n")
