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
   each with ``limit=500`` and ``limit=2000``. After those rounds,
   ``ix_clusters_due`` is dropped and the indexed variants run again as ``no-due-index``
   (the planner free to use the primary key, just not the due index).
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
import json
import math
import os
import platform
import random
import re
import shlex
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
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

from rayplane.clusters.store import claim_due  # noqa: E402
from rayplane.db.engine import make_sync_engine, sync_session_factory  # noqa: E402
from rayplane.db.ids import new_id  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from tests.support.services import scratch_database  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS-sweep.md"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DUE_INDEX = "ix_clusters_due"
HOLD_SECONDS = 15
LIMITS = (500, 2000)
WARMUP_ROUNDS = 2
TARGET_MS = 100.0
TARGET_SIZE = 100_000
TARGET_FRACTION = 0.01


# The naive variant: sequential scans only (one round trip, transaction-local).
NAIVE_SETTINGS = "SELECT set_config('enable_indexscan', 'off', true), set_config('enable_bitmapscan', 'off', true)"


class BenchmarkError(RuntimeError):
    """A run that cannot produce trustworthy figures (wrong claim count, due set drifted)."""


# ---- data sets --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    size: int
    due: int
    equal_due: bool  # the extra data set that matches the largest size's due count

    @property
    def label(self) -> str:
        return f"{self.size:,} rows, {self.due:,} due ({100 * self.due / self.size:g}%)"


def data_sets(sizes: Sequence[int], fraction: float) -> list[DataSet]:
    largest = max(sizes)
    big_due = round(fraction * largest)
    out: list[DataSet] = []
    for size in sorted(set(sizes)):
        out.append(DataSet(size, round(fraction * size), equal_due=False))
        if size < largest and big_due != round(fraction * size) and big_due <= size // 2:
            out.append(DataSet(size, big_due, equal_due=True))
    return out


COLUMNS = (
    "id",
    "tenant_id",
    "cloud_id",
    "name",
    "spec",
    "labels",
    "generation",
    "desired_state",
    "state",
    "state_reason",
    "state_code",
    "observed",
    "observed_generation",
    "provider_state",
    "dashboard_url",
    "attempts",
    "retry_requested",
    "next_reconcile_at",
    "lease_owner",
    "lease_expires_at",
    "last_activity_at",
    "deleted_at",
    "created_at",
    "updated_at",
    "version",
)

# Rows that are not due: (weight, state, desired_state, scheduled in the future?)
NOT_DUE_MIX = (
    (75, "RUNNING", "running", True),
    (5, "PROVISIONING", "running", True),
    (2, "UPDATING", "running", True),
    (10, "STOPPED", "stopped", False),
    (6, "DELETED", "deleted", False),
    (2, "FAILED", "running", False),
)
# Rows that are due: a steady check that is overdue, or a busy cluster waiting for its next look.
DUE_MIX = (
    (80, "RUNNING", "running"),
    (8, "PROVISIONING", "running"),
    (4, "UPDATING", "running"),
    (4, "STOPPING", "stopped"),
    (4, "DELETING", "deleted"),
)


def _spec(i: int) -> str:
    return json.dumps(
        {
            "ray_version": "2.49.0",
            "image": None,
            "head": {"vm_size": "Standard_D4s_v5"},
            "worker_groups": [
                {
                    "name": "cpu",
                    "vm_size": "Standard_D8s_v5",
                    "min_nodes": i % 3,
                    "max_nodes": 4 + i % 5,
                    "spot": bool(i % 2),
                    "fallback_to_on_demand": False,
                }
            ],
            "idle_timeout_minutes": 60 if i % 4 else None,
        }
    )


def _observed(i: int, live: bool) -> str:
    if not live:
        return "{}"
    return json.dumps(
        {
            "head": {"ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", "ready": True},
            "groups": {"cpu": {"nodes": 1 + i % 4, "ready": 1 + i % 4}},
        }
    )


def seed(url: str, ds: DataSet) -> tuple[list[str], list[datetime]]:
    """Inserts the tenant, cloud and clusters; returns the due rows' ids and original times."""
    rng = random.Random(ds.size * 1_000_003 + ds.due)
    now = datetime.now(UTC)
    tenant_id, cloud_id = new_id("ten"), new_id("cld")
    due_index = set(rng.sample(range(ds.size), ds.due))
    not_due_states = [(state, desired, future) for w, state, desired, future in NOT_DUE_MIX for _ in range(w)]
    due_states = [(state, desired) for w, state, desired in DUE_MIX for _ in range(w)]
    due_ids: list[str] = []
    due_at: list[datetime] = []
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, display_name, status, version) VALUES (%s, %s, %s, 'active', 1)",
            (tenant_id, "bench-sweep", "Sweep benchmark"),
        )
        conn.execute(
            "INSERT INTO clouds (id, tenant_id, name, provider, status, is_default, config, ray_versions, version)"
            " VALUES (%s, %s, 'local', 'local', 'READY', true, %s, %s, 1)",
            (cloud_id, tenant_id, '{"capacity": {"cpus": 64}}', '["2.49.0"]'),
        )
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY clusters ({}) FROM STDIN").format(columns)) as copy:
            for i in range(ds.size):
                cid = new_id("cls")
                created = now - timedelta(days=30, seconds=ds.size - i)
                deleted_at: datetime | None = None
                if i in due_index:
                    state, desired = due_states[rng.randrange(len(due_states))]
                    past = now - timedelta(seconds=rng.uniform(1, 600))
                    due_ids.append(cid)
                    due_at.append(past)
                    at: datetime | None = past
                else:
                    state, desired, scheduled = not_due_states[rng.randrange(len(not_due_states))]
                    at = now + timedelta(seconds=3600 + rng.uniform(0, 3600)) if scheduled else None
                    if state == "DELETED":
                        deleted_at = now - timedelta(days=1, seconds=i)
                live = state in ("RUNNING", "UPDATING", "STOPPING")
                copy.write_row(
                    (
                        cid,
                        tenant_id,
                        cloud_id,
                        f"cluster-{i:07d}",
                        _spec(i),
                        '{"team": "bench"}',
                        1 + i % 3,
                        desired,
                        state,
                        None if state != "FAILED" else "gave up after 5 attempts: quota exceeded",
                        None if state != "FAILED" else "QuotaExceeded",
                        _observed(i, live),
                        1 + i % 3,
                        json.dumps({"resource_group": f"rg-{cid}"}) if state != "DELETED" else "{}",
                        f"https://{cid}.dashboards.example.net" if live else None,
                        0 if state != "FAILED" else 5,
                        False,
                        at,
                        None,
                        None,
                        now - timedelta(minutes=i % 120),
                        deleted_at,
                        created,
                        created,
                        1 + i % 7,
                    )
                )
        # The benchmark vacuums between repeats itself; no background vacuum inside a timing.
        conn.execute("ALTER TABLE clusters SET (autovacuum_enabled = false)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE clusters")
        found = _count_due(conn)
        if found != ds.due:
            raise BenchmarkError(f"seeded {found} due rows, wanted {ds.due}")
    return due_ids, due_at


def _count_due(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM clusters WHERE next_reconcile_at IS NOT NULL AND next_reconcile_at <= now()"
    ).fetchone()
    assert row is not None
    return int(row[0])


# ---- measuring --------------------------------------------------------------------------


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
        due = _count_due(self.admin)
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
    with ExitStack() as stack:
        benches: list[Bench] = []
        results: list[DataSetResult] = []
        for ds in sets:
            url = stack.enter_context(scratch_database(admin_url, prefix="rayplane_bench_sweep"))
            upgrade(url)
            started = time.perf_counter()
            due_ids, due_at = seed(url, ds)
            seed_seconds = time.perf_counter() - started
            bench = Bench(url, ds, due_ids, due_at, vacuum=vacuum)
            stack.callback(bench.close)
            row = bench.admin.execute("SELECT pg_total_relation_size('clusters')").fetchone()
            assert row is not None
            table_mb = int(row[0]) / 2**20
            print(f"{ds.label}: seeded in {seed_seconds:.1f} s; clusters with indexes: {table_mb:.1f} MiB", flush=True)
            benches.append(bench)
            results.append(DataSetResult(ds, [], {}, seed_seconds, table_mb))
        for bench, res in zip(benches, results, strict=True):
            for limit in LIMITS:
                res.plans[f"indexed limit={limit} custom plan"] = bench.explain(limit)
                res.plans[f"indexed limit={limit} generic plan"] = bench.explain(limit, generic=True)
                res.plans[f"naive limit={limit}"] = bench.explain(limit, naive=True)
        print("timing indexed and naive sweeps ...", flush=True)
        items = [(b, v, limit) for b in benches for limit in LIMITS for v in ("indexed", "naive")]
        series = run_rounds(items, repeats)
        for bench, res in zip(benches, results, strict=True):
            bench.drop_due_index()
            for limit in LIMITS:
                res.plans[f"no-due-index limit={limit}"] = bench.explain(limit)
        print("timing no-due-index sweeps ...", flush=True)
        series += run_rounds([(b, "no-due-index", limit) for b in benches for limit in LIMITS], repeats)
        for res in results:
            res.series = [s for s in series if s.dataset == res.dataset]
    return results


# ---- report -----------------------------------------------------------------------------


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
        "load average": _loadavg(),
    }


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _find(results: list[DataSetResult], size: int, due: int, variant: str, limit: int) -> Series | None:
    for res in results:
        if res.dataset.size == size and res.dataset.due == due:
            for s in res.series:
                if s.variant == variant and s.limit == limit:
                    return s
    return None


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
                if s.variant == "indexed":
                    verdict = "met" if s.p90 < TARGET_MS else "NOT met"
                    out.append(
                        f"- < {TARGET_MS:.0f} ms per sweep at {ds.size:,} rows, 1% due, limit={s.limit}"
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
        "- `no-due-index`: after `DROP INDEX ix_clusters_due` (the planner keeps the primary key).",
        "",
        "Data: 1 tenant, 1 cloud, N clusters: ~75% RUNNING and ~7% busy due 1-2 h ahead; ~18% STOPPED /"
        " DELETED / FAILED with `next_reconcile_at` NULL; exactly the due count due 1-600 s ago"
        " (RUNNING, PROVISIONING, UPDATING, STOPPING, DELETING). Then `VACUUM ANALYZE`.",
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
    facts["load average (1, 5, 15 min) at start / end"] = f"{facts.pop('load average')} / {_loadavg()}"
    report = render(facts, results, args.due_fraction, args.repeats, not args.no_vacuum)
    args.output.write_text(report)
    print("\n" + "\n".join(comparisons(results, args.due_fraction)))
    print("\n".join(targets(results)))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
