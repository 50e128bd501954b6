"""``rayplane metrics CLUSTER``: a cluster's (or service's) figures as a compact table, the
latest value of each with its range and a sparkline over the window; ``--watch`` redraws it
as new scrapes arrive."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from cli.client import RayplaneClient
from cli.context import CliError, OutputOption, client, fmt, handle_errors, resolve_ref
from cli.kinds import CLUSTERS, SERVICES, AnyKind
from cli.output import emit, out

app = typer.Typer()
PANEL = "Clusters, services and jobs"
SPARKS = "▁▂▃▄▅▆▇█"
WIDTH = 24
_SINCE = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> timedelta:
    match = _SINCE.fullmatch(text.strip())
    if not match:
        raise CliError(f"--since {text!r}: write a number and s, m, h or d (as 15m or 6h)", 2)
    return timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])


def human(name: str, value: float) -> str:
    """A figure as a person reads it: bytes in GiB, percents, rates and milliseconds."""
    if name.endswith("_bytes"):
        return f"{value / 2**30:.2f} GiB"
    if name.endswith("_percent"):
        return f"{value:.1f} %"
    if name.endswith("_per_second"):
        return f"{value:.1f}/s"
    if name.endswith("_ms"):
        return f"{value:.1f} ms"
    if name.endswith("_ratio"):
        return f"{100 * value:.2f} %"
    return f"{value:g}"


def spark(values: list[float]) -> str:
    """The last ``WIDTH`` values as block characters, scaled between their min and max."""
    tail = values[-WIDTH:]
    if not tail:
        return ""
    lo, hi = min(tail), max(tail)
    if hi == lo:
        return SPARKS[0] * len(tail)
    return "".join(SPARKS[round((v - lo) / (hi - lo) * (len(SPARKS) - 1))] for v in tail)


def render(answer: dict[str, Any], title: str) -> Table:
    grid = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for header, justify in (("FIGURE", "left"), ("GROUP", "left"), ("NOW", "right"), ("MIN", "right")):
        grid.add_column(header, justify=justify)  # type: ignore[arg-type]
    grid.add_column("MAX", justify="right")
    grid.add_column("TREND")
    for s in answer["series"]:
        values = [float(v) for _, v in s["points"]]
        if not values:
            continue
        name = s["name"]
        grid.add_row(
            name,
            s["group"] or "(all)",
            human(name, values[-1]),
            human(name, min(values)),
            human(name, max(values)),
            spark(values),
        )
    if not grid.rows:
        grid.add_row("no figures yet: the first scrape comes within 15 s of the cluster running", "", "", "", "", "")
    return grid


def fetch(api: RayplaneClient, path: str, names: str | None, since: timedelta) -> dict[str, Any]:
    now = datetime.now(UTC)
    params = {"from": (now - since).isoformat(), "to": now.isoformat(), "names": names}
    answer: dict[str, Any] = api.request("GET", path, params=params).json()
    return answer


@app.command(rich_help_panel=PANEL)
@handle_errors
def metrics(
    ref: Annotated[
        str, typer.Argument(metavar="CLUSTER", help="A cluster's (or with --service, a service's) name or id.")
    ],
    service: Annotated[bool, typer.Option("--service", help="CLUSTER names a service.")] = False,
    names: Annotated[
        str | None, typer.Option("--names", help="Comma-separated figures (default: all), as cpu_utilization_percent.")
    ] = None,
    since: Annotated[str, typer.Option("--since", help="How far back: 15m, 6h, 2d.")] = "15m",
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw every 5 s (Ctrl-C to stop).")] = False,
    output: OutputOption = None,
) -> None:
    """Nodes, CPU, memory, GPU, object store, tasks, actors and jobs, per group and for the
    whole cluster; for a service also requests per second, errors and latency.

    Example: [bold]rayplane metrics demo --since 1h[/bold]
    """
    window = parse_since(since)
    form = fmt(output)
    kind: AnyKind = SERVICES if service or ref.startswith("svc_") else CLUSTERS
    with client() as api:
        found = resolve_ref(api, kind, ref)
        path = f"/v1/{kind.group}/{found['id']}/metrics"
        title = f"{kind.noun} {found['name']} ({found['state']}), last {since}"
        answer = fetch(api, path, names, window)
        if form != "table":
            emit(answer, form)
            return
        if not watch:
            out().print(render(answer, title))
            return
        with Live(render(answer, title), console=out(), auto_refresh=False) as live:
            while True:
                time.sleep(5.0)
                live.update(render(fetch(api, path, names, window), title), refresh=True)
