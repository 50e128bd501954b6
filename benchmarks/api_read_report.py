"""Measuring and reporting for ``benchmarks/api_read.py``: running wrk and reading its output,
the server CPU per request, machine facts, and the figures block of RESULTS.md.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from benchmarks.api_read import Server


def uvicorn_argv(factory: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "RESULTS.md"
BLOCK_START = "<!-- figures:start (written by benchmarks/api_read.py; edits inside this block are overwritten) -->"
BLOCK_END = "<!-- figures:end -->"
TARGET_RATIO = 0.7
BARE_NOTE = (
    "`SELECT` of the nine columns the real endpoint returns (`id, name, prefix, role, created_by, created_at, "
    "expires_at, revoked_at, last_used_at`) on the same rows, answered as the same JSON document (checked before "
    "measuring), no auth, no middleware, no logs."
)
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class BenchmarkError(RuntimeError):
    """A run that cannot produce trustworthy figures (server died, non-2xx, socket errors)."""


# ---- wrk ------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_ms_per_request: float | None = None  # the server's own CPU time, from the kernel


def parse_wrk(output: str) -> WrkResult:
    """Figures from ``wrk --latency`` output; ``BenchmarkError`` unless every answer was 2xx."""
    if match := _NON_2XX.search(output):
        raise BenchmarkError(f"{match.group(1)} responses were not 2xx:\n{output}")
    if (match := _SOCKET.search(output)) and any(int(n) for n in match.groups()):
        raise BenchmarkError(f"socket errors ({match.group(0)}):\n{output}")
    rps, total = _RPS.search(output), _TOTAL.search(output)
    percentiles = {m.group(1): float(m.group(2)) * _UNIT_MS[m.group(3)] for m in _PERCENTILE.finditer(output)}
    if rps is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise BenchmarkError(f"could not parse wrk output:\n{output}")
    requests = int(total.group(1))
    if requests == 0:
        raise BenchmarkError(f"wrk completed no request:\n{output}")
    return WrkResult(float(rps.group(1)), percentiles["50"], percentiles["99"], requests)


def wrk_argv(url: str, *, threads: int, connections: int, duration: int, script: Path | None = None) -> list[str]:
    # A generous timeout: a slow answer is still measured; only one that never comes is an error.
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    return [*argv, url]


def cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by every thread of ``pid`` (Linux schedstat, nanosecond resolution)."""
    try:
        tasks = Path(f"/proc/{pid}/task")
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks.iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def run_wrk(argv: list[str], server: Server, duration: int) -> WrkResult:
    before = cpu_seconds(server.proc.pid)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"wrk did not finish: {shlex.join(argv)}") from exc
    if done.returncode != 0:
        raise BenchmarkError(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    if server.proc.poll() is not None:
        raise BenchmarkError(f"{server.label} server died during the run:\n{server.log_tail()}")
    after = cpu_seconds(server.proc.pid)
    result = parse_wrk(done.stdout)
    if before is None or after is None:
        return result
    return dataclasses.replace(result, cpu_ms_per_request=(after - before) * 1000 / result.requests)


# ---- report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    number: int
    order: str
    real: WrkResult
    bare: WrkResult

    @property
    def ratio(self) -> float:
        return self.real.rps / self.bare.rps


def _version(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _postgres_version(admin_url: str) -> str:
    try:
        with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except psycopg.Error:
        return "unknown"


def machine_facts(admin_url: str) -> dict[str, str]:
    packages = ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg", "redis")
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgres": _postgres_version(admin_url),
        "wrk": _version(["wrk", "-v"]).split(" Copyright")[0],
        "packages": ", ".join(versions),
        "load_before": loadavg(),
    }


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _median_cpu(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def figures_table(rounds: Sequence[Round]) -> list[str]:
    """Markdown rows: per round, then the median of each column (ratio = ratio of the medians)."""
    lines = [
        _row(["round", "order", "real req/s", "real p50 ms", "real p99 ms", "real CPU ms/req",
              "bare req/s", "bare p50 ms", "bare p99 ms", "bare CPU ms/req", "real/bare req/s"]),
        _row(["---:", ":---:", *["---:"] * 9]),
    ]  # fmt: skip
    for r in rounds:
        lines.append(
            _row([
                str(r.number), r.order,
                f"{r.real.rps:.0f}", f"{r.real.p50_ms:.2f}", f"{r.real.p99_ms:.2f}", _cpu(r.real.cpu_ms_per_request),
                f"{r.bare.rps:.0f}", f"{r.bare.p50_ms:.2f}", f"{r.bare.p99_ms:.2f}", _cpu(r.bare.cpu_ms_per_request),
                f"{r.ratio:.2f}",
            ])
        )  # fmt: skip
    med = statistics.median
    real_rps, bare_rps = med(r.real.rps for r in rounds), med(r.bare.rps for r in rounds)
    lines.append(
        _row([
            "**median**", "",
            f"**{real_rps:.0f}**", f"{med(r.real.p50_ms for r in rounds):.2f}",
            f"{med(r.real.p99_ms for r in rounds):.2f}", _cpu(_median_cpu(r.real.cpu_ms_per_request for r in rounds)),
            f"**{bare_rps:.0f}**", f"{med(r.bare.p50_ms for r in rounds):.2f}",
            f"{med(r.bare.p99_ms for r in rounds):.2f}", _cpu(_median_cpu(r.bare.cpu_ms_per_request for r in rounds)),
            f"**{real_rps / bare_rps:.2f}**",
        ])
    )  # fmt: skip
    return lines


def median_ratio(rounds: Sequence[Round]) -> float:
    return statistics.median(r.real.rps for r in rounds) / statistics.median(r.bare.rps for r in rounds)


def cpu_note(rounds: Sequence[Round]) -> str:
    real = _median_cpu(r.real.cpu_ms_per_request for r in rounds)
    bare = _median_cpu(r.bare.cpu_ms_per_request for r in rounds)
    if real is None or bare is None:
        return ""
    return (
        f"Server CPU per request (median): real {real:.2f} ms, bare {bare:.2f} ms, so bare/real = {bare / real:.2f}, "
        "the req/s ratio a CPU-bound server would reach; it is less disturbed by other load on the machine. "
    )


def figures_block(
    rounds: Sequence[Round],
    facts: dict[str, str],
    command: str,
    settings: dict[str, str],
    wrk_commands: Sequence[str],
    load_note: str,
) -> str:
    ratio = median_ratio(rounds)
    verdict = "met" if ratio >= TARGET_RATIO else "**not met**"
    hidden = {"RAYPLANE_DATABASE_URL": "<scratch db>", "RAYPLANE_REDIS_URL": "<redis>",
              "RAYPLANE_SECRET_KEY": "<random per run>", "RAYPLANE_DATA_DIR": "<tmp>"}  # fmt: skip
    shown = {k: hidden.get(k, v) for k, v in settings.items()}
    lines = [
        BLOCK_START,
        f"### Latest run: {facts['date']}",
        "",
        f"Command: `{command}`",
        "",
        f"- Machine: nproc {facts['nproc']} ({facts['cpu']}), {facts['os']}; load average before "
        f"{facts['load_before']}, after {facts['load_after']} (1/5/15 min; other work on the machine shows here)",
        f"- Python {facts['python']}, PostgreSQL {facts['postgres']}, {facts['wrk']}",
        f"- Packages: {facts['packages']}",
        "- Both servers: `python "
        + shlex.join(uvicorn_argv("<factory>", 0)[1:]).replace(" --port 0", " --port <free>")
        + "` (factories `api.app:app_from_env` and `benchmarks.bare_app:app_from_env`)",
        "- Shared server environment: " + ", ".join(f"`{k}={v}`" for k, v in sorted(shown.items())),
        "- Load: " + "; ".join(f"`{c}`" for c in wrk_commands) + " (order alternates per round: ABBA…)",
        f"- {load_note} Bare: {BARE_NOTE}",
        "",
        *figures_table(rounds),
        "",
        f"Ratio real/bare of the median req/s: **{ratio:.2f}** (target ≥ {TARGET_RATIO:.2f}: {verdict}). "
        f"{cpu_note(rounds)}"
        f"Every response of every run was 2xx with no socket error "
        f"({sum(r.real.requests for r in rounds)} real and {sum(r.bare.requests for r in rounds)} bare requests).",
        BLOCK_END,
    ]
    return "\n".join(lines) + "\n"


RESULTS_HEADER = """\
# Benchmarks

## API read path (`benchmarks/api_read.py`)

`GET /v1/api-keys/{id}` on the real app against a bare FastAPI endpoint doing the same
single-row read on the same engine and pool. Target: real >= 0.7 x bare (requests/s).

"""


def write_results(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else RESULTS_HEADER
    start, end = text.find(BLOCK_START), text.find(BLOCK_END)
    if start != -1 and end > start:
        rest = text[end + len(BLOCK_END) :].lstrip("\n")
        text = text[:start] + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
