"""Rendering for the CLI: short rich tables by default, or JSON/YAML that scripts can parse.

Data goes to stdout; progress, notices and errors go to stderr, so ``-o json`` output
always parses even while a command waits and reports progress.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

Format = Literal["table", "json", "yaml"]
FORMATS: tuple[Format, ...] = ("table", "json", "yaml")

STATE_STYLES = {
    "RUNNING": "green",
    "SUCCEEDED": "green",
    "Succeeded": "green",
    "FAILED": "bold red",
    "Failed": "bold red",
    "DEGRADED": "yellow",
    "STOPPED": "dim",
    "DELETED": "dim",
    "STOPPING": "cyan",
    "DELETING": "cyan",
    "PENDING": "cyan",
    "PROVISIONING": "cyan",
    "STARTING": "cyan",
    "UPDATING": "cyan",
    # services, and their Serve applications as Serve reports them
    "DEPLOYING": "cyan",
    "ROLLING_OUT": "cyan",
    "ROLLING_BACK": "yellow",
    "DEPLOY_FAILED": "bold red",
    "UNHEALTHY": "yellow",
    "NOT_STARTED": "dim",
}


def _console(stream: Any) -> Console:
    interactive = hasattr(stream, "isatty") and stream.isatty()
    # Piped output is not wrapped at 80 columns: one record stays on one line.
    width = None if interactive else int(os.environ.get("COLUMNS", "200"))
    return Console(file=stream, width=width, soft_wrap=not interactive, highlight=False)


def out() -> Console:
    """A console on stdout (looked up per call, so tests that swap sys.stdout work)."""
    return _console(sys.stdout)


def err() -> Console:
    """A console on stderr."""
    return _console(sys.stderr)


@dataclass(frozen=True)
class Column:
    """One table column: a header and how to get the cell from a record."""

    header: str
    get: Callable[[Any], object]
    max_width: int | None = None
    style_of: Callable[[str], str | None] | None = None


def styled_state(value: str) -> str | None:
    return STATE_STYLES.get(value)


def dump(data: Any, fmt: Format) -> str:
    """``data`` as JSON or YAML text (the table format is not a serialisation)."""
    if fmt == "json":
        return json.dumps(data, indent=2, default=str)
    return yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True).rstrip("\n")


def emit(data: Any, fmt: Format) -> None:
    """Write JSON or YAML to stdout as plain text (no rich markup or wrapping)."""
    sys.stdout.write(dump(data, fmt) + "\n")
    sys.stdout.flush()


def table(rows: Iterable[Any], columns: Sequence[Column]) -> Table:
    """A borderless table, one row per record, in the style of ``kubectl get``.

    Only columns with a ``max_width`` (free text such as an entrypoint) shrink to fit the
    terminal; ids, names and states are never cut.
    """
    grid = [[cell(col.get(row)) for col in columns] for row in rows]
    t = Table(box=None, pad_edge=False, header_style="bold", show_edge=False, padding=(0, 2, 0, 0))
    for i, col in enumerate(columns):
        widest = max([len(col.header), *(len(r[i]) for r in grid)])
        fixed = None if col.max_width else widest
        t.add_column(col.header, max_width=col.max_width, min_width=fixed, overflow="ellipsis", no_wrap=True)
    for values in grid:
        cells: list[Text | str] = []
        for col, value in zip(columns, values, strict=True):
            style = col.style_of(value) if col.style_of else None
            cells.append(Text(value, style=style) if style else value)
        t.add_row(*cells)
    return t


def render_list(items: Sequence[Any], columns: Sequence[Column], fmt: Format, empty: str = "No items.") -> None:
    """A list as a table, or as a JSON/YAML array."""
    if fmt != "table":
        emit(list(items), fmt)
        return
    if not items:
        err().print(empty)
        return
    print_table(table(items, columns))


def print_table(renderable: Table) -> None:
    """Print to stdout; when piped, without the padding rich leaves at line ends."""
    console = out()
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()


def details(fields: Sequence[tuple[str, object]]) -> Table:
    """A two-column ``key  value`` view of one record."""
    t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for key, value in fields:
        if isinstance(value, Text | Table):
            t.add_row(key, value)
        else:
            text = cell(value)
            style = styled_state(text)
            t.add_row(key, Text(text, style=style) if style else text)
    return t


def render_one(record: Any, fields: Callable[[Any], Sequence[tuple[str, object]]], fmt: Format) -> None:
    """One record as a key/value view, or as a JSON/YAML object."""
    if fmt != "table":
        emit(record, fmt)
        return
    print_table(details(fields(record)))


def cell(value: object) -> str:
    """A table cell: ``-`` for nothing, ``k=v`` for mappings, comma-joined lists."""
    if value is None or value == "" or value == {} or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d`` (``1m30s`` below ten minutes)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 600:
        m, s = divmod(seconds, 60)
        return f"{m}m{s:02d}s" if s else f"{m}m"
    if seconds < 3600 * 2:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago an ISO timestamp was, as :func:`duration` prints it."""
    at = parse_time(value)
    if at is None:
        return "-"
    return duration(((now or datetime.now(UTC)) - at).total_seconds())


def clock(value: str | None) -> str:
    """``HH:MM:SS`` in local time, for event timelines."""
    at = parse_time(value)
    return at.astimezone().strftime("%H:%M:%S") if at else "--:--:--"


def print_error(message: str, field_errors: Sequence[tuple[str, str]] = ()) -> None:
    """``error: …`` on one line, then one indented line per field error, on stderr."""
    console = err()
    console.print(Text.assemble(("error:", "bold red"), " ", message.replace("\n", " ")), soft_wrap=True)
    for name, msg in field_errors:
        line = f"  {name}: {msg}" if name else f"  {msg}"
        console.print(Text(line.replace("\n", " ")), soft_wrap=True)


def notice(message: str, style: str = "") -> None:
    """A progress or status line on stderr."""
    err().print(Text(message, style=style), soft_wrap=True)


def _plain(data: Any) -> Any:
    """Mappings and sequences as plain dicts/lists, so ``yaml.safe_dump`` accepts them."""
    if isinstance(data, Mapping):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data
