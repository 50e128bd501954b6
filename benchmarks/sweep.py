"""Due-sweep benchmark: ``store.claim_due`` against table size, with and without its index.

    python benchmarks/sweep.py [--sizes 10000,100000] [--due-fraction 0.01] [--repeats 15]

What it does:

1. Finds Postgres the way the tests do (``RAYPLANE_TEST_DATABASE_URL`` /
   ``RAYPLANE_DATABASE_URL``, else 127.0.0.1:5432, user postgres). For each data set it
   creates a scratch database, runs the migrations, and COPYs in 1 tenant, 1 cloud and N
   clusters spread over realistic states: most RUNNING and due 1-2 hours from now (so none
   falls due during the run), some busy (PROVISIONING, UPDATING...) also in the future,
   STOPPED / DELETED / FAILED with ``next_reconcile_at`` NULL, and exactly ``due`` rows due
   1-600 seconds ago. Then ``VACUUM ANALYZE``.
2. Data sets: every size N with ``due_fraction * N`` due rows; and, for every size smaller
   than the largest, the same size with the largest size's due count, so the indexed sweep
   is also compared at an equal number of due rows.
3. All data sets exist side by side; every round runs every (data set, variant, limit)
   once, in an order rotated each round, so load changes during the run hit all sizes
   alike. One sweep is ``claim_due(session, limit, hold_seconds=15)`` in its own unit of work,
   opened exactly like ``workers.db.unit_of_work`` (sync engine from ``make_sync_engine``,
   pool checkout with pre-ping, begin, claim, commit), timed end to end with
   ``time.perf_counter``. Variants:
   - ``indexed``: the query as written (the planner picks ``ix_clusters_due``);
   - ``naive``: the same call after ``SET LOCAL enable_indexscan = off`` and
     ``enable_bitmapscan = off`` (sequential scans only);
   - ``no-due-index``: the query as written on a second copy of the data set without
     ``ix_clusters_due`` (the planner's best plan without it: the fair baseline);
   each with ``limit=500`` and ``limit=2000``, all interleaved in the same rounds.
4. After every sweep, outside the timing: the claimed rows get their original (past)
   ``next_reconcile_at`` back, so every repeat claims the same rows, then ``VACUUM clusters``
   (autovacuum is off for the table, so no background vacuum lands inside a timing; pass
   ``--no-vacuum`` to let dead index entries pile up instead). Two warm-up rounds are not
   counted. A sweep that does not claim ``min(limit, due)`` rows fails the run.
5. ``EXPLAIN (ANALYZE, BUFFERS)`` of the exact statement ``claim_due`` sent (captured from the
   engine), inside a transaction that is rolled back: custom plan (as the first executions
   get it) and generic plan (``plan_cache_mode = force_generic_plan``; psycopg prepares a
   statement from its 5th execution on a connection, so a long-lived worker may run this).
6. Prints the figures and writes ``benchmarks/RESULTS-sweep.md`` (``--output``).

Scratch databases are dropped on every exit path, including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``python benchmarks/sweep.py`` puts benchmarks/ first, not the repo
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import Engine, event, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from benchmarks.sweep_data import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    DUE_INDEX,
    HOLD_SECONDS,
    LIMITS,
    NAIVE_SETTINGS,
    RESULTS,
    WARMUP_ROUNDS,
    BenchmarkError,
    DataSet,
    count_due,
    data_sets,
    seed,
)
from benchmarks.sweep_report import comparisons, loadavg, machine_facts, print_table, render, targets  # noqa: E402
from rayplane.clusters.store import claim_due  # noqa: E402
from rayplane.db.engine import make_sync_engine, sync_session_factory  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from tests.support.services import scratch_database  # noqa: E402


@dataclass
class Series:
    dataset: DataSet
    variant: str  # indexed | naive | no-due-index
    limit: int
    claimed: int
    samples_ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90(self) -> float:
        return percentile(self.samples_ms, 90)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p90 of 15 samples is the 14th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


class Capture:
    """Remembers the statement and parameters ``claim_due`` last sent through the engine."""

    def __init__(self, engine: Engine) -> None:
        self.statement: str | None = None
        self.parameters: dict[str, Any] = {}
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE CLUSTERS"):
            self.statement, self.parameters = statement, dict(parameters)


class Bench:
    def __init__(self, url: str, ds: DataSet, due_ids: list[str], due_at: list[datetime], *, vacuum: bool) -> None:
        self.url, self.ds, self.vacuum = url, ds, vacuum
        self.original = dict(zip(due_ids, due_at, strict=True))
        self.engine = make_sync_engine(url)
        self.sessions: sessionmaker[Session] = sync_session_factory(self.engine)
        self.capture = Capture(self.engine)
        self.admin = psycopg.connect(url, autocommit=True)

    def close(self) -> None:
        self.admin.close()
        self.engine.dispose()

    def sweep(self, limit: int, *, naive: bool) -> tuple[float, list[str]]:
        """One timed sweep: the worker's unit of work around ``claim_due``."""
        start = time.perf_counter()
        with self.sessions() as session, session.begin():
            if naive:
                session.execute(text(NAIVE_SETTINGS))
            ids = claim_due(session, limit=limit, hold_seconds=HOLD_SECONDS)
        elapsed = (time.perf_counter() - start) * 1000
        return elapsed, ids

    def restore(self, ids: list[str]) -> None:
        """Puts the claimed rows back to their original due time (outside the timing)."""
        missing = [i for i in ids if i not in self.original]
        if missing:
            raise BenchmarkError(f"claimed rows that were never due: {missing[:3]}")
        self.admin.execute(
            "UPDATE clusters AS c SET next_reconcile_at = v.at"
            " FROM unnest(%s::text[], %s::timestamptz[]) AS v(id, at) WHERE c.id = v.id",
            (ids, [self.original[i] for i in ids]),
        )
        if self.vacuum:
            self.admin.execute("VACUUM clusters")
        due = count_due(self.admin)
        if due != self.ds.due:
            raise BenchmarkError(f"{due} rows due after restore, wanted {self.ds.due}")

    def explain(self, limit: int, *, naive: bool = False, generic: bool = False) -> Plan:
        """EXPLAIN (ANALYZE, BUFFERS) of the statement ``claim_due`` sends; rolled back."""
        with self.sessions() as session:
            session.begin()
            claim_due(session, limit=limit, hold_seconds=HOLD_SECONDS)
            session.rollback()
        statement, params = self.capture.statement, self.capture.parameters
        if statement is None:
            raise BenchmarkError("claim_due's statement was not captured")
        with psycopg.connect(self.url) as conn:
            if naive:
                conn.execute(NAIVE_SETTINGS)
            if generic:
                # PREPARE + EXECUTE with the plan cache forced to the generic plan, as a
                # long-lived connection may end up using once psycopg prepares the statement.
                names: list[str] = []

                def positional(match: re.Match[str]) -> str:
                    names.append(match.group(1))
                    return f"${len(names)}"

                body = re.sub(r"%\((\w+)\)s", positional, statement)
                conn.execute("DEALLOCATE ALL")
                conn.execute(sql.SQL("PREPARE bench_sweep AS {}").format(sql.SQL(body)))
                conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                args = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
                query = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE bench_sweep ({})").format(args)
                row = conn.execute(query).fetchone()
            else:
                row = conn.execute(
                    sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}").format(sql.SQL(statement)),
                    params,
                ).fetchone()
            conn.rollback()
            conn.execute("DEALLOCATE ALL")
        assert row is not None
        return Plan.from_json(row[0][0])

    def drop_due_index(self) -> None:
        self.admin.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(DUE_INDEX)))
        self.admin.execute("VACUUM ANALYZE clusters")


@dataclass(frozen=True)
class Plan:
    lines: list[str]
    execution_ms: float
    planning_ms: float
    indexes: frozenset[str]
    seq_scans: int
    jit_ms: float | None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Plan:
        lines: list[str] = []
        indexes: set[str] = set()
        seq_scans = 0

        def walk(node: dict[str, Any], depth: int) -> None:
            nonlocal seq_scans
            name = node["Node Type"]
            if node.get("Index Name"):
                indexes.add(node["Index Name"])
                name += f" using {node['Index Name']}"
            if node.get("Relation Name"):
                name += f" on {node['Relation Name']}"
                seq_scans += node["Node Type"] == "Seq Scan"
            parts = [f"rows={node.get('Actual Rows', 0)}", f"loops={node.get('Actual Loops', 0)}"]
            if node.get("Rows Removed by Filter"):
                parts.append(f"removed by filter={node['Rows Removed by Filter']}")
            buffers = [
                f"{label}={node[key]}"
                for key, label in (
                    ("Shared Hit Blocks", "hit"),
                    ("Shared Read Blocks", "read"),
                    ("Shared Dirtied Blocks", "dirtied"),
                    ("Shared Written Blocks", "written"),
                )
                if node.get(key)
            ]
            if buffers:
                parts.append("buffers " + " ".join(buffers))
            parts.append(f"time={node.get('Actual Total Time', 0):.3f} ms")
            lines.append(f"{'  ' * depth}{'-> ' if depth else ''}{name} ({', '.join(parts)})")
            for child in node.get("Plans", []):
                walk(child, depth + 1)

        walk(doc["Plan"], 0)
        jit = doc.get("JIT", {}).get("Timing", {}).get("Total")
        return cls(lines, doc["Execution Time"], doc["Planning Time"], frozenset(indexes), seq_scans, jit)


# ---- all data sets, interleaved ------------------------------------------------------


@dataclass
class DataSetResult:
    dataset: DataSet
    series: list[Series]
    plans: dict[str, Plan]  # "indexed limit=500 custom plan" -> plan
    seed_seconds: float
    table_mb: float


def run_rounds(items: list[tuple[Bench, str, int]], repeats: int) -> list[Series]:
    """Every (data set, variant, limit) once per round, order rotated each round.

    All data sets live side by side and are interleaved, so a change in machine load during
    the run lands on every data set alike and the ratios between sizes stay fair.
    """
    series = [Series(b.ds, name, limit, min(limit, b.ds.due)) for b, name, limit in items]
    order = list(range(len(items)))
    for round_no in range(WARMUP_ROUNDS + repeats):
        shift = round_no % len(order)
        for k in order[shift:] + order[:shift]:
            bench, name, limit = items[k]
            elapsed, ids = bench.sweep(limit, naive=name == "naive")
            bench.restore(ids)
            if len(ids) != series[k].claimed:
                raise BenchmarkError(
                    f"{bench.ds.label}: {name} limit={limit} claimed {len(ids)} rows, wanted {series[k].claimed}"
                )
            if round_no >= WARMUP_ROUNDS:
                series[k].samples_ms.append(elapsed)
    return series


def measure(admin_url: str, sets: list[DataSet], repeats: int, *, vacuum: bool) -> list[DataSetResult]:
    """Each data set is seeded twice, alike: once as migrated and once without the due index;
    the three variants then run interleaved in the same rounds."""
    with ExitStack() as stack:
        pairs: list[tuple[Bench, Bench]] = []
        results: list[DataSetResult] = []
        for ds in sets:
            made: list[Bench] = []
            for _ in range(2):
                url = stack.enter_context(scratch_database(admin_url, prefix="rayplane_bench_sweep"))
                upgrade(url)
                started = time.perf_counter()
                due_ids, due_at = seed(url, ds)
                seed_seconds = time.perf_counter() - started
                bench = Bench(url, ds, due_ids, due_at, vacuum=vacuum)
                stack.callback(bench.close)
                made.append(bench)
            indexed, bare = made
            bare.drop_due_index()
            row = indexed.admin.execute("SELECT pg_total_relation_size('clusters')").fetchone()
            assert row is not None
            table_mb = int(row[0]) / 2**20
            print(f"{ds.label}: seeded in {seed_seconds:.1f} s; clusters with indexes: {table_mb:.1f} MiB", flush=True)
            pairs.append((indexed, bare))
            results.append(DataSetResult(ds, [], {}, seed_seconds, table_mb))
        for (indexed, bare), res in zip(pairs, results, strict=True):
            for limit in LIMITS:
                res.plans[f"indexed limit={limit} custom plan"] = indexed.explain(limit)
                res.plans[f"indexed limit={limit} generic plan"] = indexed.explain(limit, generic=True)
                res.plans[f"no-due-index limit={limit}"] = bare.explain(limit)
                res.plans[f"naive limit={limit}"] = indexed.explain(limit, naive=True)
        print("timing indexed, no-due-index and naive sweeps, interleaved ...", flush=True)
        items = [
            (bench, variant, limit)
            for indexed, bare in pairs
            for limit in LIMITS
            for bench, variant in ((indexed, "indexed"), (bare, "no-due-index"), (indexed, "naive"))
        ]
        series = run_rounds(items, repeats)
        for res in results:
            res.series = [s for s in series if s.dataset == res.dataset]
    return results


# ---- report -----------------------------------------------------------------------------


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated table sizes")
    parser.add_argument("--due-fraction", type=float, default=0.01, help="share of rows due at each size")
    parser.add_argument("--repeats", type=int, default=15, help="counted sweeps per variant")
    parser.add_argument("--no-vacuum", action="store_true", help="do not VACUUM between repeats")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the figures")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes: comma-separated integers")
    if not args.sizes or min(args.sizes) < 10:
        parser.error("--sizes: at least one size of 10 rows or more")
    if not 0 < args.due_fraction <= 0.5:
        parser.error("--due-fraction: between 0 and 0.5")
    if args.repeats < 1:
        parser.error("--repeats: at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    admin_url = (
        os.environ.get("RAYPLANE_TEST_DATABASE_URL") or os.environ.get("RAYPLANE_DATABASE_URL") or DEFAULT_ADMIN_URL
    ).replace("postgresql+psycopg://", "postgresql://")
    with sigterm_as_exit():
        facts = machine_facts(admin_url)
        results = measure(admin_url, data_sets(args.sizes, args.due_fraction), args.repeats, vacuum=not args.no_vacuum)
        for res in results:
            print(f"{res.dataset.label}:")
            print_table(res)
    facts["load average (1, 5, 15 min) at start / end"] = f"{facts.pop('load average')} / {loadavg()}"
    report = render(facts, results, args.due_fraction, args.repeats, not args.no_vacuum)
    args.output.write_text(report)
    print("\n" + "\n".join(comparisons(results, args.due_fraction)))
    print("\n".join(targets(results)))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
