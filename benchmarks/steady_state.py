"""Steady-state reconcile benchmark: the worker CPU a RUNNING fleet costs when nothing changes.

    python benchmarks/steady_state.py [--sizes 1000,3000,10000] [--passes 3] [--limit 500]

What it does, for each fleet size N (all fleets exist side by side; each round runs one
pass of every fleet, in an order rotated per round, so load changes hit all sizes alike):

1. Finds Postgres the way the tests do, creates a scratch database, runs the migrations,
   and COPYs in 10 tenants (one ``local`` cloud each) and N RUNNING clusters (a head and
   one worker group of 2 nodes, a provider state, due now).
2. Runs the real worker path in this process: ``store.claim_due`` (the sweep, ``limit``
   rows per unit of work, as ``workers.tasks.clusters.sweep``) and, for every claimed id,
   ``Reconciler.reconcile`` (the real three-phase pass on the real sync engine). The
   provider is ``InstantProvider`` below: ``observe`` reports exactly the nodes asked for
   and ``ensure`` returns the state it was given, at once; its own cost is measured
   separately (``provider`` column) and is not part of the control plane's figure.
   Celery is left out: the worker's cost of a pass, not the broker's.
3. One untimed warm-up pass (it opens the usage intervals the observation implies), then
   ``--passes`` timed passes. Before each, every cluster is made due and the database
   vacuumed and analysed, as autovacuum would (untimed); a pass ends
   when the sweep claims nothing. ``reconcile_steady_seconds`` is set to an hour for the
   run so a cluster reconciled early in a pass is not due again before it ends; the per
   minute figure scales a pass by the production default (60 / 5 s = 12 passes a minute).
4. Measures process CPU (``time.process_time``) and the CPU of the Postgres backends
   serving this process (``/proc/<pid>/task/*/schedstat`` of each connection's
   ``pg_backend_pid()``), and checks that every pass reconciled each cluster exactly once
   with action ``ensure``, wrote no event and left every cluster RUNNING.
5. Prints the figures and rewrites the steady-state block of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import event  # noqa: E402

import rayplane.all_models  # noqa: E402, F401 - every mapper must be known before the first flush
from benchmarks.api_read_report import cpu_seconds, loadavg  # noqa: E402
from benchmarks.sweep_data import COLUMNS  # noqa: E402
from rayplane.clusters import store  # noqa: E402
from rayplane.clusters.reconcile import Reconciler  # noqa: E402
from rayplane.db.engine import make_sync_engine, sync_session_factory  # noqa: E402
from rayplane.db.ids import new_id  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from rayplane.providers.base import ClusterTarget, Observation, Provider, Step  # noqa: E402
from rayplane.settings import Settings  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
BLOCK_START = "<!-- steady-state:start (written by benchmarks/steady_state.py; edits inside are overwritten) -->"
BLOCK_END = "<!-- steady-state:end -->"
TENANTS = 10
DEFAULT_STEADY_SECONDS = Settings.model_fields["reconcile_steady_seconds"].default


class InstantProvider(Provider):
    """A provider whose cloud is always exactly as asked: no I/O, returns at once."""

    kind = "local"

    def __init__(self) -> None:
        self.calls = 0
        self.cpu = 0.0  # process CPU spent inside this provider's methods

    def ensure(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        started = time.process_time()
        self.calls += 1
        step = Step(state)
        self.cpu += time.process_time() - started
        return step

    def observe(self, target: ClusterTarget, state: dict[str, Any]) -> Observation:
        started = time.process_time()
        observation = Observation(head_alive=True, dashboard_url=None, nodes={g.name: g.count for g in target.groups})
        self.cpu += time.process_time() - started
        return observation

    def stop(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        return Step(state)

    def teardown(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        return Step({})

    def jobs_endpoint(self, state: dict[str, Any]) -> str | None:
        return None


SPEC = {
    "ray_version": "2.49.0",
    "image": None,
    "head": {"vm_size": "Standard_D4s_v5"},
    "worker_groups": [
        {
            "name": "cpu",
            "vm_size": "Standard_D8s_v5",
            "min_nodes": 2,
            "max_nodes": 2,
            "spot": False,
            "fallback_to_on_demand": False,
        }
    ],
    "idle_timeout_minutes": None,
}


def seed(url: str, size: int) -> None:
    now = datetime.now(UTC)
    spec = json.dumps(SPEC)
    observed = json.dumps({"targets": {"cpu": 2}})
    with psycopg.connect(url) as conn:
        clouds = []
        for t in range(TENANTS):
            tenant_id, cloud_id = new_id("ten"), new_id("cld")
            conn.execute(
                "INSERT INTO tenants (id, name, display_name, status, version) VALUES (%s, %s, %s, 'active', 1)",
                (tenant_id, f"steady-{t}", "Steady-state benchmark"),
            )
            conn.execute(
                "INSERT INTO clouds (id, tenant_id, name, provider, status, is_default, config, ray_versions, version)"
                " VALUES (%s, %s, 'local', 'local', 'READY', true, %s, %s, 1)",
                (cloud_id, tenant_id, '{"capacity": {"cpus": 64}}', '["2.49.0"]'),
            )
            clouds.append((tenant_id, cloud_id))
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY clusters ({}) FROM STDIN").format(columns)) as copy:
            for i in range(size):
                tenant_id, cloud_id = clouds[i % TENANTS]
                cid = new_id("cls")
                created = now - timedelta(days=1, seconds=size - i)
                provider_state = json.dumps({"nodes": {"head": 1, "cpu": 2}})
                copy.write_row(
                    (cid, tenant_id, cloud_id, f"cluster-{i:06d}", spec, "{}", 1, "running", "RUNNING", None, None,
                     observed, 1, provider_state, None, 0, False, now, None, None, now, None, created, created, 1)
                )  # fmt: skip
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


@dataclass(frozen=True)
class Pass:
    clusters: int
    wall_s: float
    process_cpu_s: float
    postgres_cpu_s: float | None
    provider_cpu_s: float
    claims: int

    def per_cluster_us(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds * 1e6 / self.clusters

    @property
    def control_plane_cpu_s(self) -> float:
        return self.process_cpu_s - self.provider_cpu_s


class Fleet:
    """One scratch database with N clusters, and the worker's engine, reconciler and sweep."""

    def __init__(self, url: str, size: int, limit: int) -> None:
        self.url, self.size, self.limit = url, size, limit
        self.engine = make_sync_engine(url)
        self.backends: set[int] = set()

        @event.listens_for(self.engine, "connect")
        def _backend_pid(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                self.backends.add(int(cur.fetchone()[0]))

        self.sessions = sync_session_factory(self.engine)
        settings = Settings(env="test", database_url=url, reconcile_steady_seconds=3600.0, sweep_hold_seconds=3600)
        self.provider = InstantProvider()
        self.reconciler = Reconciler(self.sessions, {"local": self.provider}, settings, f"bench:{os.getpid()}")
        self.hold = settings.sweep_hold_seconds

    def close(self) -> None:
        self.engine.dispose()

    def _postgres_cpu(self) -> float | None:
        values = [cpu_seconds(pid) for pid in self.backends]
        return None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)

    def _facts(self) -> tuple[int, int, int]:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM clusters WHERE state = 'RUNNING'), (SELECT count(*) FROM cluster_events),"
                " (SELECT count(*) FROM usage_intervals)"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def make_due(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("UPDATE clusters SET next_reconcile_at = now() - interval '1 second'")
            # What autovacuum would have done by now. Without it (a test server may run with
            # autovacuum off) usage_intervals keeps the statistics of its empty seed, the
            # planner scans it whole for every cluster, and the cost per cluster grows with
            # the fleet: that measures stale statistics, not the reconciler.
            conn.execute("VACUUM ANALYZE")

    def run_pass(self, check: bool) -> Pass:
        before = self._facts() if check else None
        self.make_due()
        provider_cpu = self.provider.cpu
        pg_before, cpu_before, wall_before = self._postgres_cpu(), time.process_time(), time.perf_counter()
        seen: dict[str, str] = {}
        claims = 0
        while True:
            with self.sessions() as session, session.begin():
                due = store.claim_due(session, limit=self.limit, hold_seconds=self.hold)
            if not due:
                break
            claims += 1
            for cluster_id in due:
                if cluster_id in seen:
                    raise RuntimeError(f"{cluster_id} reconciled twice in one pass")
                seen[cluster_id] = self.reconciler.reconcile(cluster_id)
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        pg_after = self._postgres_cpu()
        pg = None if pg_before is None or pg_after is None or len(self.backends) == 0 else pg_after - pg_before
        if len(seen) != self.size or set(seen.values()) != {"ensure"}:
            raise RuntimeError(f"pass reconciled {len(seen)} of {self.size}; outcomes {set(seen.values())}")
        if before is not None:
            after = self._facts()
            if after != before:
                raise RuntimeError(f"a steady pass changed something: (running, events, intervals) {before} -> {after}")
        return Pass(self.size, wall, cpu, pg, self.provider.cpu - provider_cpu, claims)


# ---- report -------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(results: dict[int, list[Pass]]) -> list[str]:
    per_minute = 60.0 / DEFAULT_STEADY_SECONDS
    lines = [
        "| clusters | pass | wall s | worker CPU µs / cluster / pass | Postgres CPU µs / cluster / pass | "
        "provider fake µs / cluster | worker CPU ms / cluster / minute | worker + Postgres ms / cluster / minute |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, passes in results.items():
        for n, p in enumerate(passes, 1):
            worker = p.per_cluster_us(p.control_plane_cpu_s)
            pg = p.per_cluster_us(p.postgres_cpu_s)
            total = None if worker is None or pg is None else worker + pg
            lines.append(
                f"| {size:,} | {n} | {p.wall_s:.1f} | {_fmt(worker)} | {_fmt(pg)} | "
                f"{_fmt(p.per_cluster_us(p.provider_cpu_s), 1)} | {_fmt(worker and worker * per_minute / 1000, 1)} | "
                f"{_fmt(total and total * per_minute / 1000, 1)} |"
            )
    return lines


def medians(results: dict[int, list[Pass]]) -> dict[int, tuple[float | None, float | None]]:
    return {
        size: (
            _median([p.per_cluster_us(p.control_plane_cpu_s) for p in passes]),
            _median([p.per_cluster_us(p.postgres_cpu_s) for p in passes]),
        )
        for size, passes in results.items()
    }


def summary(results: dict[int, list[Pass]]) -> str:
    med = medians(results)
    small, large = min(med), max(med)
    (w_small, pg_small), (w_large, pg_large) = med[small], med[large]
    per_minute = 60.0 / DEFAULT_STEADY_SECONDS
    parts = [
        "Medians per cluster per pass: "
        + "; ".join(f"{size:,}: worker {_fmt(w)} µs, Postgres {_fmt(pg)} µs" for size, (w, pg) in med.items())
        + "."
    ]
    if w_small and w_large:
        parts.append(
            f"Growth from {small:,} to {large:,} clusters: worker CPU per cluster x{w_large / w_small:.2f}"
            + (f", Postgres CPU per cluster x{pg_large / pg_small:.2f}" if pg_small and pg_large else "")
            + f". At the default `reconcile_steady_seconds` ({DEFAULT_STEADY_SECONDS:g} s, {per_minute:g} passes a "
            f"minute) a RUNNING cluster costs {w_large * per_minute / 1000:.1f} ms of worker CPU per minute at "
            f"{large:,} clusters, so one worker core keeps up with about "
            f"{60_000 / (w_large * per_minute / 1000):,.0f} steady clusters (Postgres CPU on top)."
        )
    return " ".join(parts)


def write_results(path: Path, block: str) -> None:
    text = path.read_text()
    start, end = text.find(BLOCK_START), text.find(BLOCK_END)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(BLOCK_END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n## Steady-state reconcile (`benchmarks/steady_state.py`)\n\n" + block
    path.write_text(text)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", default="1000,3000,10000", help="fleet sizes (default 1000,3000,10000)")
    p.add_argument("--passes", type=int, default=3, help="timed passes per size (default 3)")
    p.add_argument("--limit", type=int, default=500, help="rows per sweep claim (the worker's default 500)")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--no-write", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()
    results: dict[int, list[Pass]] = {size: [] for size in sizes}
    with servers() as (admin_url, _redis), ExitStack() as stack:
        fleets = []
        for size in sizes:
            url = stack.enter_context(scratch_database(admin_url, prefix="rayplane_steady"))
            upgrade(url)
            seed(url, size)
            fleet = Fleet(url, size, args.limit)
            stack.callback(fleet.close)
            fleet.run_pass(check=False)  # warm-up: opens the usage intervals, warms the caches
            fleets.append(fleet)
            print(f"{size:>6} clusters seeded and warmed up", flush=True)
        # All fleets side by side, one pass of each per round in a rotated order, so a change
        # in machine load during the run lands on every size alike.
        for n in range(1, args.passes + 1):
            shift = (n - 1) % len(fleets)
            for fleet in fleets[shift:] + fleets[:shift]:
                result = fleet.run_pass(check=True)
                results[fleet.size].append(result)
                print(
                    f"{fleet.size:>6} clusters pass {n}: {result.wall_s:6.1f} s wall, worker "
                    f"{_fmt(result.per_cluster_us(result.control_plane_cpu_s))} µs/cluster, Postgres "
                    f"{_fmt(result.per_cluster_us(result.postgres_cpu_s))} µs/cluster",
                    flush=True,
                )
    lines = table(results)
    print("\n".join(lines))
    print(summary(results))
    if not args.no_write:
        command = "python benchmarks/steady_state.py " + " ".join(argv if argv is not None else sys.argv[1:])
        block = "\n".join(
            [
                BLOCK_START,
                f"### Latest run: {started}",
                "",
                f"Command: `{command.strip()}`",
                "",
                f"- Machine: nproc {os.cpu_count()}; load average before {load_before}, after {loadavg()}",
                f"- {TENANTS} tenants, one local cloud each; every cluster RUNNING with a head and 2 workers; "
                f"sweep `claim_due(limit={args.limit})` then `Reconciler.reconcile` per claimed id, in one process; "
                "provider: `InstantProvider` (in the script), its CPU reported apart and subtracted",
                "- Every timed pass reconciled each cluster once (`ensure`), wrote no event, opened or closed "
                "no usage interval and left every cluster RUNNING (checked)",
                "",
                *lines,
                "",
                summary(results),
                BLOCK_END,
                "",
            ]
        )
        write_results(args.results, block)
        print(f"figures written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
