"""Billing commands: ``rayplane usage``, ``overview``, ``budget``, and the cost estimate that
``clusters create --estimate`` shows.

Money is USD. A figure the API could not price is ``null`` there and "unknown" here, with the
VM sizes that lacked a price named beside it: nothing is shown as free that was not priced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from cli.client import ApiError, Report
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
from cli.output import Column, clock, emit, notice, out, print_table, render_list, render_one, table
from cli.views import one_line

budget_app = typer.Typer(
    name="budget",
    help="Your monthly spending limit: alerts, and optionally a hard stop.\n\n"
    "Example: [bold]rayplane budget set 500 --hard-stop[/bold]",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
    rich_markup_mode="rich",
)
#: ``usage`` and ``overview`` are top-level commands: an app without a name, merged into the root.
reports_app = typer.Typer()
PANEL = "Billing"
GROUPINGS = ("day", "cluster", "dimension")


def usd(value: object, digits: int = 2) -> str:
    """``$12.34``; ``unknown`` for a figure the API could not price."""
    if value is None:
        return "unknown"
    return f"${float(str(value)):,.{digits}f}"


def hours(value: object) -> str:
    return "-" if value is None else f"{float(str(value)):,.2f}"


def unpriced_note(sizes: Sequence[str], what: str = "the cost") -> None:
    if sizes:
        notice(f"No catalog price for {', '.join(sizes)}: not included in {what}.", "yellow")


# ---- estimate ----------------------------------------------------------------------------
def _nodes(line: Report) -> str:
    lo, hi = line.get("min_nodes"), line.get("max_nodes")
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _range(lo: object, hi: object, digits: int = 4) -> str:
    if lo is None or hi is None:
        return "unknown"
    return usd(lo, digits) if lo == hi else f"{usd(lo, digits)} - {usd(hi, digits)}"


ESTIMATE_COLUMNS = [
    Column("GROUP", lambda x: x.get("group")),
    Column("VM SIZE", lambda x: x.get("vm_size") + (" (spot)" if x.get("spot") else "")),
    Column("NODES", _nodes),
    Column("USD/NODE-HOUR", lambda x: usd(x.get("usd_per_node_hour"), 4)),
    Column("USD/HOUR", lambda x: _range(x.get("min_usd_per_hour"), x.get("max_usd_per_hour"))),
    Column("PRICE", lambda x: " ".join(str(x[k]) for k in ("price_region", "price_date") if x.get(k)) or "-"),
]


def _fee_columns(fees: Sequence[Report], per: str) -> list[Column]:
    """Columns of a fee table; PLAN only when several plans are shown (a tenant without one)."""
    plans = {f.get("plan_id") for f in fees}
    first = [Column("PLAN", lambda f: f.get("plan_id"))] if len(plans) > 1 else []
    return [
        *first,
        Column("DIMENSION", lambda f: f.get("dimension")),
        Column("USD/UNIT", lambda f: usd(f.get("usd_per_unit"), 4) + f" per {f.get('unit')}"),
        *(
            [
                Column("UNITS/HOUR", lambda f: _units(f.get("min_units_per_hour"), f.get("max_units_per_hour"))),
                Column("USD/HOUR", lambda f: _range(f.get("min_usd_per_hour"), f.get("max_usd_per_hour"))),
            ]
            if per == "hour"
            else [
                Column("QUANTITY", lambda f: hours(f.get("quantity"))),
                Column("FEE", lambda f: usd(f.get("usd"), 4)),
            ]
        ),
    ]


def _units(lo: object, hi: object) -> str:
    low, high = (f"{float(str(v)):g}" for v in (lo or 0, hi or 0))
    return low if low == high else f"{low}-{high}"


def show_fees(report: Report, per: str) -> None:
    """The Rayplane fee table of an estimate (``per="hour"``) or a usage report (``per="window"``)."""
    fees = report.get("fees") or []
    if not fees:
        return
    plan = report.get("plan_id")
    title = f"Rayplane fee, plan {plan}" if plan else "Rayplane fee by plan (this tenant has no Marketplace plan)"
    out().print(f"\n{title}, billed by the Azure Marketplace:", style="bold", soft_wrap=True)
    print_table(table(fees, _fee_columns(fees, per)))
    if per == "hour" and report.get("fee_min_usd_per_hour") is not None:
        total = _range(report.get("fee_min_usd_per_hour"), report.get("fee_max_usd_per_hour"))
        out().print(f"Fee total: {total} per hour", soft_wrap=True)
    elif per == "window" and report.get("fee_usd") is not None:
        out().print(f"Fee total: {usd(report.get('fee_usd'), 4)}", soft_wrap=True)


def show_estimate(name: str, estimate: Report, output: Any) -> None:
    """The estimate of cluster ``name`` as a table with its total, or as the API's JSON/YAML."""
    form = fmt(output)
    if form != "table":
        emit(estimate, form)
        return
    print_table(table(estimate.get("lines") or [], ESTIMATE_COLUMNS))
    if estimate.get("complete"):
        total = _range(estimate.get("min_usd_per_hour"), estimate.get("max_usd_per_hour"))
        out().print(f"Total: {total} per hour", soft_wrap=True)
    elif any(line.get("usd_per_node_hour") is not None for line in estimate.get("lines") or []):
        low, high = estimate.get("priced_min_usd_per_hour"), estimate.get("priced_max_usd_per_hour")
        out().print(f"Total: unknown (the priced part is {_range(low, high)} per hour)", soft_wrap=True)
    else:
        out().print("Total: unknown (no size of this spec has a catalog price)", soft_wrap=True)
        unpriced_note(estimate.get("unpriced_vm_sizes") or [], "the total")
    show_fees(estimate, "hour")
    if estimate.get("note"):
        notice(str(estimate["note"]), "dim")
    notice(f"Nothing was created; the same command without --estimate creates {name}.", "dim")


# ---- usage -------------------------------------------------------------------------------
def _usage_columns(group_by: str) -> list[Column]:
    if group_by == "dimension":
        return [
            Column("DIMENSION", lambda r: r.get("key")),
            Column("QUANTITY", lambda r: hours(r.get("quantity"))),
            Column("UNIT", lambda r: r.get("unit")),
        ]
    first = Column("DAY", lambda r: r.get("key"))
    if group_by == "cluster":
        first = Column("CLUSTER", lambda r: r.get("label") or r.get("key"))
    return [
        first,
        Column("VCPU-HOURS", lambda r: hours(r.get("vcpu_hours"))),
        Column("GPU-HOURS", lambda r: hours(r.get("gpu_hours"))),
        Column("NODE-HOURS", lambda r: hours(r.get("node_hours"))),
        Column("COST", lambda r: usd(r.get("cost_usd")) + (" +unpriced" if r.get("unpriced_vm_sizes") else "")),
    ]


@reports_app.command(rich_help_panel=PANEL, epilog=EXIT_CODES_HELP)
@handle_errors
def usage(
    frm: Annotated[
        str | None,
        typer.Option("--from", help="Start, ISO 8601 (default: this month's start, UTC).", metavar="TIME"),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now).", metavar="TIME")] = None,
    by: Annotated[str, typer.Option("--by", help="Group by day, cluster or dimension.", metavar="GROUPING")] = "day",
    output: OutputOption = None,
) -> None:
    """Show what ran and what it cost: vCPU-, GPU- and node-hours, at catalog prices.

    Examples:
      [bold]rayplane usage[/bold]
      [bold]rayplane usage --by cluster --from 2026-05-01[/bold]
    """
    if by not in GROUPINGS:
        fail(f"--by {by!r}: one of {', '.join(GROUPINGS)}", EXIT_USAGE)
    with client() as api:
        report = api.get_usage(frm=frm, to=to, group_by=by)
    form = fmt(output)
    if form != "table":
        emit(report, form)
        return
    notice(f"Usage from {report.get('from')} to {report.get('to')} (UTC), by {by}", "dim")
    render_list(report.get("items") or [], _usage_columns(by), form, empty="No usage in this period.")
    totals = report.get("totals") or {}
    out().print(
        f"Total: {hours(totals.get('vcpu_hours'))} vCPU-hours, {hours(totals.get('gpu_hours'))} GPU-hours,"
        f" {hours(totals.get('node_hours'))} node-hours; cost {usd(totals.get('cost_usd'))}",
        soft_wrap=True,
    )
    if totals.get("unpriced_vm_sizes"):
        unpriced_note(totals["unpriced_vm_sizes"], f"the cost ({hours(totals.get('unpriced_node_hours'))} node-hours)")
    show_fees(report, "window")


# ---- overview ----------------------------------------------------------------------------
def _spend_text(spend: Report) -> str:
    text = usd(spend.get("month_to_date_usd"))
    if spend.get("budget_usd") is not None:
        text += f" of {usd(spend['budget_usd'])}"
        if spend.get("percent_of_budget") is not None:
            text += f" ({float(spend['percent_of_budget']):.0f}%)"
    return text + f" in {spend.get('month')}"


def overview_fields(o: Report) -> list[tuple[str, object]]:
    spend = o.get("spend") or {}
    states = o.get("clusters_by_state") or {}
    alerts = [f"{a.get('threshold')}% at {a.get('at')}" for a in o.get("budget_alerts") or []]
    return [
        (
            "Clusters",
            f"{o.get('clusters_total', 0)}"
            + (f" ({', '.join(f'{k} {v}' for k, v in states.items())})" if states else ""),
        ),
        ("Nodes running", o.get("running_nodes")),
        ("Spend", _spend_text(spend)),
        (
            "Budget",
            "none set (rayplane budget set AMOUNT)"
            if spend.get("budget_usd") is None
            else ("hard stop" if spend.get("hard_stop") else "alerts only")
            + (", BLOCKED" if spend.get("blocked") else ""),
        ),
        ("Alerts", alerts),
    ]


OVERVIEW_EVENT_COLUMNS = [
    Column("TIME", lambda e: clock(e.get("at"))),
    Column("CLUSTER", lambda e: e.get("cluster_name")),
    Column("EVENT", lambda e: e.get("kind")),
    Column("STATE", lambda e: e.get("to_state")),
    Column("DETAIL", lambda e: one_line(e.get("reason") or ""), max_width=80),
]


@reports_app.command(rich_help_panel=PANEL, epilog=EXIT_CODES_HELP)
@handle_errors
def overview(output: OutputOption = None) -> None:
    """Your account at a glance: clusters by state, nodes, spend against the budget, recent events.

    Example: [bold]rayplane overview[/bold]
    """
    with client() as api:
        o = api.get_overview()
    form = fmt(output)
    render_one(o, overview_fields, form)
    if form == "table":
        events = o.get("recent_events") or []
        if events:
            out().print("\nRecent events (newest first)", style="bold")
            print_table(table(events[:10], OVERVIEW_EVENT_COLUMNS))
        unpriced_note((o.get("spend") or {}).get("unpriced_vm_sizes") or [], "the spend")


# ---- budget ------------------------------------------------------------------------------
def budget_fields(b: Report) -> list[tuple[str, object]]:
    spend = b.get("spend") or {}
    return [
        ("Amount", f"{usd(b.get('amount_usd'))} a month"),
        ("Hard stop", "yes: clusters stop when spend reaches the budget" if b.get("hard_stop") else "no (alerts only)"),
        ("Alert at", ", ".join(f"{t}%" for t in b.get("alert_thresholds") or [])),
        ("Spend", _spend_text(spend)),
        ("Blocked", b.get("blocked_reason") or "no"),
        ("Alerts", [f"{a.get('threshold')}% at {a.get('at')}" for a in b.get("alerts") or []]),
    ]


NO_BUDGET = "no budget is set; set one with: rayplane budget set AMOUNT [--hard-stop]"


@budget_app.command("get", epilog=EXIT_CODES_HELP)
@handle_errors
def budget_get(output: OutputOption = None) -> None:
    """Show the budget, the spend this month and the alerts raised.

    Example: [bold]rayplane budget get[/bold]
    """
    with client() as api:
        try:
            budget = api.get_budget().body
        except ApiError as exc:
            if exc.status == 404:
                fail(NO_BUDGET, EXIT_NOT_FOUND)
            raise
    render_one(budget, budget_fields, fmt(output))
    if fmt(output) == "table":
        unpriced_note((budget.get("spend") or {}).get("unpriced_vm_sizes") or [], "the spend")


@budget_app.command("set", epilog=EXIT_CODES_HELP)
@handle_errors
def budget_set(
    amount: Annotated[float, typer.Argument(help="Monthly limit in USD.", min=0.01, show_default=False)],
    hard_stop: Annotated[
        bool | None,
        typer.Option(
            "--hard-stop/--no-hard-stop", help="Stop every cluster when spend reaches it (default: as it was, else no)."
        ),
    ] = None,
    alert: Annotated[
        list[int] | None,
        typer.Option(
            help="Alert at this percent (repeatable; default: as it was, else 50, 80, 100).", metavar="PERCENT"
        ),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Set the monthly budget. What you leave out stays as it was.

    Reads the budget with its ETag and replaces it with If-Match, so a change made meanwhile
    is not overwritten. Raising the amount above the spend, or turning hard stop off, lifts a
    hard stop.

    Examples:
      [bold]rayplane budget set 500[/bold]
      [bold]rayplane budget set 1200 --hard-stop --alert 75 --alert 100[/bold]
    """
    with client() as api:
        current: Report = {}
        etag = None
        try:
            found = api.get_budget()
            current, etag = found.body, found.etag
        except ApiError as exc:
            if exc.status != 404:
                raise
        body: dict[str, Any] = {
            "amount_usd": round(amount, 2),
            "hard_stop": hard_stop if hard_stop is not None else bool(current.get("hard_stop")),
        }
        thresholds = alert or current.get("alert_thresholds")
        if thresholds:
            body["alert_thresholds"] = list(thresholds)
        budget = api.put_budget(body, if_match=etag)
    notice(
        f"Budget set to {usd(budget.get('amount_usd'))} a month"
        + (" with hard stop" if budget.get("hard_stop") else "")
    )
    render_one(budget, budget_fields, fmt(output))


@budget_app.command("delete", epilog=EXIT_CODES_HELP)
@handle_errors
def budget_delete(yes: YesOption = False) -> None:
    """Remove the budget: no more alerts, and no hard stop.

    Example: [bold]rayplane budget delete --yes[/bold]
    """
    with client() as api:
        try:
            etag = api.get_budget().etag
        except ApiError as exc:
            if exc.status == 404:
                fail(NO_BUDGET, EXIT_NOT_FOUND)
            raise
        confirm("Remove the budget (its alerts and hard stop)?", yes)
        api.delete_budget(if_match=etag)
    out().print("Budget removed.")
