"""The due-sweep benchmark's report (``benchmarks/sweep.py``): machine facts, comparisons,
targets and the markdown written to RESULTS-sweep.md.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from benchmarks.sweep_data import DUE_INDEX, LIMITS, TARGET_FRACTION, TARGET_MS, TARGET_SIZE, WARMUP_ROUNDS

if TYPE_CHECKING:
    from benchmarks.sweep import DataSetResult, Series


def machine_facts(admin_url: str) -> dict[str, str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        version = conn.execute("SELECT version()").fetchone()
        settings = conn.execute(
            "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings"
            " WHERE name IN ('shared_buffers', 'work_mem', 'random_page_cost', 'jit', 'synchronous_commit', 'fsync')"
        ).fetchone()
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "command": "python " + shlex.join(sys.argv),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "postgres": version[0] if version else "unknown",
        "postgres settings": settings[0] if settings else "unknown",
        "python": platform.python_version(),
        "sqlalchemy / psycopg": f"{metadata.version('sqlalchemy')} / {metadata.version('psycopg')}",
        "database": "same host as the benchmark, TCP 127.0.0.1",
        "load average": loadavg(),
    }


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _find(results: list[DataSetResult], size: int, due: int, variant: str, limit: int) -> Series | None:
    for res in results:
        if res.dataset.size == size and res.dataset.due == due:
            for s in res.series:
                if s.variant == variant and s.limit == limit:
                    return s
    return None


def index_gain(results: list[DataSetResult]) -> list[str]:
    """The headline: the due index against the best plan without it (same rounds)."""
    out: list[str] = []
    for res in results:
        for limit in LIMITS:
            ds = res.dataset
            idx = _find(results, ds.size, ds.due, "indexed", limit)
            base = _find(results, ds.size, ds.due, "no-due-index", limit)
            if idx and base:
                faster = base.median / idx.median
                verdict = (
                    f"the index is **{faster:.2f}x** faster"
                    if faster >= 1
                    else (f"the index is **slower** ({1 / faster:.2f}x the time)")
                )
                out.append(
                    f"- {ds.label}, limit={limit}: indexed {idx.median:.2f} ms (p90 {idx.p90:.2f}) against"
                    f" no-due-index {base.median:.2f} ms (p90 {base.p90:.2f}): {verdict}"
                )
    return out


def comparisons(results: list[DataSetResult], fraction: float) -> list[str]:
    sizes = sorted({r.dataset.size for r in results})
    largest = sizes[-1]
    big_due = round(fraction * largest)
    out: list[str] = []
    for small in sizes[:-1]:
        for limit in LIMITS:
            big = _find(results, largest, big_due, "indexed", limit)
            same_fraction = _find(results, small, round(fraction * small), "indexed", limit)
            equal = _find(results, small, big_due, "indexed", limit)
            if big and same_fraction:
                out.append(
                    f"- indexed, limit={limit}, same fraction ({fraction:g}): {largest:,} rows / {small:,} rows ="
                    f" {big.median:.2f} / {same_fraction.median:.2f} ms = **{big.median / same_fraction.median:.2f}x**"
                    f" (claims {big.claimed} vs {same_fraction.claimed} rows; the due count grows with the table)"
                )
            if big and equal:
                out.append(
                    f"- indexed, limit={limit}, equal due count ({big_due:,}): {largest:,} rows / {small:,} rows ="
                    f" {big.median:.2f} / {equal.median:.2f} ms = **{big.median / equal.median:.2f}x**"
                    f" (both claim {big.claimed} rows)"
                )
            naive_big = _find(results, largest, big_due, "naive", limit)
            naive_equal = _find(results, small, big_due, "naive", limit)
            if naive_big and naive_equal:
                out.append(
                    f"- naive (seq scan), limit={limit}, equal due count ({big_due:,}): {largest:,} / {small:,} rows ="
                    f" {naive_big.median:.2f} / {naive_equal.median:.2f} ms ="
                    f" **{naive_big.median / naive_equal.median:.2f}x**"
                )
    return out


def targets(results: list[DataSetResult]) -> list[str]:
    out: list[str] = []
    for res in results:
        ds = res.dataset
        if ds.size == TARGET_SIZE and ds.due == round(TARGET_FRACTION * TARGET_SIZE):
            for s in res.series:
                if s.variant in ("indexed", "no-due-index"):
                    verdict = "met" if s.p90 < TARGET_MS else "NOT met"
                    out.append(
                        f"- {s.variant}: < {TARGET_MS:.0f} ms per sweep at {ds.size:,} rows, 1% due, limit={s.limit}"
                        f" ({s.claimed} claimed): median {s.median:.2f} ms, p90 {s.p90:.2f} ms: **{verdict}**"
                    )
    if not out:
        out.append(f"- the {TARGET_SIZE:,}-row / 1% data set was not part of this run; no verdict")
    return out


def render(facts: dict[str, str], results: list[DataSetResult], fraction: float, repeats: int, vacuum: bool) -> str:
    lines = [
        "# Due-sweep benchmark (`benchmarks/sweep.py`)",
        "",
        "Written by `benchmarks/sweep.py`; rerun it rather than editing the figures by hand.",
        "",
        "## Machine",
        "",
        *[f"- {k}: `{v}`" for k, v in facts.items()],
        "",
        "## Method",
        "",
        "One sweep = `claim_due(session, limit, hold_seconds=15)` in its own unit of work, opened like"
        " `workers.db.unit_of_work` (pool checkout with pre-ping, begin, claim, commit), timed end to end"
        " with `time.perf_counter` from a client on the same host.",
        f"{repeats} counted repeats per row after {WARMUP_ROUNDS} warm-up rounds; all data sets live side by side"
        " and every (data set, variant, limit) runs once per round, order rotated each round; before each"
        " repeat the claimed rows get their original past `next_reconcile_at` back"
        + (" and `VACUUM clusters` runs" if vacuum else " (no VACUUM between repeats)")
        + ", outside the timing. p90 is nearest-rank.",
        "",
        "- `indexed`: the query as written in `rayplane/clusters/store.py`.",
        "- `naive`: the same call after `SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off`"
        " (sequential scans, also for the primary-key lookups of the outer UPDATE).",
        "- `no-due-index`: the query as written on a second copy of the same data without `ix_clusters_due`"
        " (the planner's best plan without it, the primary key included): the fair baseline, timed in the same"
        " rounds as the others.",
        "",
        "Data: 1 tenant, 1 cloud, N clusters: ~75% RUNNING and ~7% busy due 1-2 h ahead; ~18% STOPPED /"
        " DELETED / FAILED with `next_reconcile_at` NULL; exactly the due count due 1-600 s ago"
        " (RUNNING, PROVISIONING, UPDATING, STOPPING, DELETING). Then `VACUUM ANALYZE`.",
        "",
        "## What the due index buys (against the best plan without it)",
        "",
        *index_gain(results),
        "",
        "## Figures (ms per sweep)",
        "",
        "| table rows | due rows | variant | limit | claimed | median | p90 | min | max |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for s in sorted(res.series, key=lambda s: (("indexed", "naive", "no-due-index").index(s.variant), s.limit)):
            lines.append(
                f"| {res.dataset.size:,} | {res.dataset.due:,} | {s.variant} | {s.limit} | {s.claimed} |"
                f" {s.median:.2f} | {s.p90:.2f} | {min(s.samples_ms):.2f} | {max(s.samples_ms):.2f} |"
            )
    lines += ["", "## Growth with the table", "", *comparisons(results, fraction), "", "## Targets", ""]
    lines += targets(results)
    lines += ["", "## EXPLAIN (ANALYZE, BUFFERS) of the statement `claim_due` sends", ""]
    for res in results:
        lines += [
            f"### {res.dataset.label}",
            "",
            f"clusters table with indexes: {res.table_mb:.1f} MiB; seeded in {res.seed_seconds:.1f} s.",
            "",
        ]
        for name, plan in res.plans.items():
            uses = "uses `ix_clusters_due`" if DUE_INDEX in plan.indexes else "does NOT use `ix_clusters_due`"
            lines += [
                f"{name}: {uses}; {plan.seq_scans} seq scan(s); execution {plan.execution_ms:.2f} ms,"
                f" planning {plan.planning_ms:.2f} ms"
                + (f", JIT {plan.jit_ms:.2f} ms" if plan.jit_ms is not None else ", no JIT"),
                "",
                "```",
                *plan.lines,
                "```",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def print_table(res: DataSetResult) -> None:
    for s in res.series:
        print(
            f"  {s.variant:>13} limit={s.limit:<5} claimed={s.claimed:<5}"
            f" median={s.median:8.2f} ms  p90={s.p90:8.2f} ms",
            flush=True,
        )
    for name, plan in res.plans.items():
        uses = "ix_clusters_due" if DUE_INDEX in plan.indexes else "NO due index"
        print(f"  plan {name}: {uses}, {plan.seq_scans} seq scan(s), {plan.execution_ms:.2f} ms", flush=True)


# ---- main -------------------------------------------------------------------------------
