"""Cluster metrics store benchmark: its size per cluster and per cluster-day, the upkeep's
cost, and how fast a chart's query answers.

    python benchmarks/metrics_store.py [--clusters 20] [--hours 50]

What it does:

1. Finds Postgres the way the tests do, creates a scratch database, runs the migrations and
   seeds ``--clusters`` RUNNING clusters (``steady_state.seed``).
2. Simulates ``--hours`` of scrapes at the production interval (15 s) without waiting: at
   each simulated scrape time it writes every cluster's row through the worker's own
   ``store.add`` (the figures of a head, two CPU workers and one GPU worker, made by the real
   ``series.combine`` from node figures that wander), and at each simulated minute it runs
   the real ``Scraper.upkeep`` (rollups and pruning) with that minute as ``now``.
3. Measures the table's size (heap, TOAST and indexes) and the rows per tier at the end, the
   upkeep's wall time per run, and the API's series query (``MetricsRepository.series``) for
   a one-hour chart at 30 s and a seven-day chart at one hour.
4. Prints the figures and rewrites the metrics block of ``benchmarks/RESULTS.md``.

Long-run growth per cluster-day is tier 2's 96 rows a day at its measured row size; tiers 0
and 1 are bounded (3 hours and 2 days), so a run of more than 2 days shows them full.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

import rayplane.all_models  # noqa: E402, F401 - every mapper must be known before the first flush
from benchmarks.api_read_report import loadavg  # noqa: E402
from benchmarks.steady_state import seed  # noqa: E402
from rayplane.db.engine import async_session_factory, make_async_engine, make_sync_engine, sync_session_factory  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from rayplane.metrics import store  # noqa: E402
from rayplane.metrics.repository import MetricsRepository  # noqa: E402
from rayplane.metrics.scrape import Scraper  # noqa: E402
from rayplane.metrics.series import Figure, NodeFigures, combine  # noqa: E402
from rayplane.metrics.tiers import tiers  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
BLOCK_START = "<!-- metrics-store:start (written by benchmarks/metrics_store.py; edits inside are overwritten) -->"
BLOCK_END = "<!-- metrics-store:end -->"
SCRAPE = 15
TIERS = tiers(SCRAPE, 30)
GROUPS = {"head": (1, 1), "cpu": (2, 2), "gpu": (1, 1)}


def figures(rng: random.Random) -> tuple[dict[str, float], dict[str, float]]:
    nodes = []
    for group, count in (("head", 1), ("cpu", 2), ("gpu", 1)):
        for _ in range(count):
            f = {
                Figure.CPU_PERCENT: rng.uniform(0, 100),
                Figure.MEMORY_USED: rng.uniform(2e9, 30e9),
                Figure.MEMORY_TOTAL: 32e9,
                Figure.OBJECT_STORE_USED: rng.uniform(0, 8e9),
                Figure.TASKS_RUNNING: float(rng.randint(0, 8)),
                Figure.TASKS_PENDING: float(rng.randint(0, 20)),
                Figure.ACTORS_ALIVE: float(rng.randint(0, 4)),
            }
            f[Figure.MEMORY_PERCENT] = 100 * f[Figure.MEMORY_USED] / f[Figure.MEMORY_TOTAL]
            if group == "gpu":
                f[Figure.GPU_PERCENT] = rng.uniform(0, 100)
                f[Figure.GPU_MEMORY_USED] = rng.uniform(0, 24e9)
            nodes.append(NodeFigures(group, f))
    return combine(nodes, groups=GROUPS, jobs={"running": 1}, before=None, seconds=SCRAPE)


def sizes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT pg_total_relation_size('metric_points')").fetchone()
        live = conn.execute("SELECT coalesce(sum(pg_column_size(metric_points.*)), 0) FROM metric_points").fetchone()
        rows: dict[int, int] = dict(conn.execute("SELECT tier, count(*) FROM metric_points GROUP BY tier").fetchall())
        avg: dict[int, int] = dict(
            conn.execute(
                "SELECT tier, avg(pg_column_size(metric_points.*))::int FROM metric_points GROUP BY tier"
            ).fetchall()
        )
    out = {"total_bytes": int(total[0]) if total else 0, "live_bytes": int(live[0]) if live else 0}
    for tier in (0, 1, 2):
        out[f"rows_{tier}"] = int(rows.get(tier, 0))
        out[f"row_bytes_{tier}"] = int(avg.get(tier, 0))
    return out


async def query_ms(url: str, cluster_id: str, end: datetime, repeats: int = 9) -> tuple[float, float]:
    engine = make_async_engine(url, pool_size=2)
    sessions = async_session_factory(engine)
    timings: dict[str, list[float]] = {"hour": [], "week": []}
    names = [f.value for f in Figure]
    try:
        for _ in range(repeats):
            for label, span, step, tier in (("hour", 1, 30, 0), ("week", 24 * 7, 3600, 2)):
                async with sessions() as session:
                    started = time.perf_counter()
                    rows = await MetricsRepository(session).series(
                        cluster_id, tier, end - timedelta(hours=span), end, timedelta(seconds=step), names
                    )
                    timings[label].append((time.perf_counter() - started) * 1000)
                    assert rows, f"no rows for the {label} chart"
    finally:
        await engine.dispose()
    return statistics.median(timings["hour"]), statistics.median(timings["week"])


def run(url: str, clusters: int, hours: int) -> dict[str, float]:
    seed(url, clusters)
    with psycopg.connect(url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM clusters ORDER BY id").fetchall()]
    sessions = sync_session_factory(make_sync_engine(url))
    scraper = Scraper(sessions, {}, TIERS)
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    steps = hours * 3600 // SCRAPE
    upkeep_ms: list[float] = []
    write_ms: list[float] = []
    for n in range(steps):
        at = start + timedelta(seconds=SCRAPE * n)
        began = time.perf_counter()
        with sessions() as session, session.begin():
            for cid in ids:
                values, counters = figures(rng)
                store.add(session, cid, at, values, counters)
        write_ms.append((time.perf_counter() - began) * 1000 / len(ids))
        if n % (60 // SCRAPE) == 0:
            began = time.perf_counter()
            scraper.upkeep(at)
            upkeep_ms.append((time.perf_counter() - began) * 1000)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE metric_points")
    end = start + timedelta(seconds=SCRAPE * steps)
    hour_ms, week_ms = asyncio.run(query_ms(url, ids[0], end))
    found = sizes(url)
    return {
        **found,
        "clusters": clusters,
        "hours": hours,
        "write_ms_per_cluster": statistics.median(write_ms),
        "upkeep_ms": statistics.median(upkeep_ms),
        "upkeep_ms_max": max(upkeep_ms),
        "query_hour_ms": hour_ms,
        "query_week_ms": week_ms,
    }


def block(r: dict[str, float], command: str, load: str) -> str:
    n = r["clusters"]
    per_cluster = r["total_bytes"] / n
    day_bytes = 96 * r["row_bytes_2"]
    lines = [
        BLOCK_START,
        f"### Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`",
        "",
        f"- Load average before/after: {load}",
        f"- {n} clusters (head, 2 CPU workers, 1 GPU worker: {int(r['row_bytes_0'])} bytes a scrape row),"
        f" {int(r['hours'])} simulated hours of 15-second scrapes, upkeep every simulated minute.",
        "",
        "| figure | value |",
        "| :--- | ---: |",
        f"| rows per cluster: tier 0 (3 h) / tier 1 (2 days) / tier 2 | {r['rows_0'] / n:.0f} / {r['rows_1'] / n:.0f}"
        f" / {r['rows_2'] / n:.0f} |",
        f"| row size, tier 0 / 1 / 2 (bytes) | {r['row_bytes_0']} / {r['row_bytes_1']} / {r['row_bytes_2']} |",
        f"| rows' bytes per cluster at the end (steady state: every tier full) |"
        f" {r['live_bytes'] / n / 2**20:.2f} MiB |",
        f"| table + indexes per cluster at the end (with the space pruning freed for reuse) |"
        f" {per_cluster / 2**20:.2f} MiB |",
        f"| long-run growth per cluster-day (tier 2: 96 rows) | {day_bytes / 1024:.1f} KiB |",
        f"| worker write per cluster and scrape (median) | {r['write_ms_per_cluster']:.2f} ms |",
        f"| upkeep run, all clusters (median / max) | {r['upkeep_ms']:.1f} / {r['upkeep_ms_max']:.1f} ms |",
        f"| chart query: 1 hour at 30 s, every figure (median) | {r['query_hour_ms']:.1f} ms |",
        f"| chart query: 7 days at 1 h, every figure (median) | {r['query_week_ms']:.1f} ms |",
        "",
        BLOCK_END,
        "",
    ]
    return "\n".join(lines)


def write_results(path: Path, text: str) -> None:
    old = path.read_text()
    start, end = old.find(BLOCK_START), old.find(BLOCK_END)
    if start != -1 and end > start:
        new = old[:start] + text + old[end + len(BLOCK_END) + 1 :]
    else:
        new = old.rstrip("\n") + "\n\n## Cluster metrics store (`benchmarks/metrics_store.py`)\n\n" + text
    path.write_text(new)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--hours", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = f"python benchmarks/metrics_store.py --clusters {args.clusters} --hours {args.hours}"
    before = loadavg()
    with servers() as (admin_url, _redis), scratch_database(admin_url, prefix="rayplane_bench_metrics") as url:
        upgrade(url)
        result = run(url, args.clusters, args.hours)
    text = block(result, command, f"{before} / {loadavg()}")
    print(text)
    write_results(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
