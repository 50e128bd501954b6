"""Metering aggregation benchmark: 1,000,000 usage intervals across 10,000 subscriptions.

    python benchmarks/metering.py [--tenants 10000] [--rounds 5] [--baseline-rounds 3]

What it does:

1. Finds Postgres the way the tests do (``RAYPLANE_TEST_DATABASE_URL`` / ``RAYPLANE_DATABASE_URL``,
   else 127.0.0.1:5432), creates a scratch database and runs the migrations.
2. Generates the data in SQL: ``--tenants`` tenants, each with one Subscribed Marketplace
   subscription and one cluster of 4 worker groups; each group's 25 intervals tile a 24-hour
   window (57.6 minutes each, groups offset by 7 minutes so boundaries do not line up with
   hours; the last one still open), 1-8 nodes of one of D4s_v5, D8s_v5, D16s_v5 or
   NC24ads_A100_v4. 100 intervals per tenant: 1,000,000 for 10,000 tenants. ``VACUUM ANALYZE``.
3. Rounds, in this order each round (one uncounted warm-up round first):
   - ``sql``: the aggregation step of a metering run with nothing recorded yet (a first run, or
     one after a long outage): ``Metering.aggregate`` exactly as the hourly task calls it (sync
     engine as in ``workers.db``; ``--parallelism`` tenant partitions, each one
     ``INSERT … SELECT`` in its own transaction on its own connection; then the watermark),
     timed end to end.
   - ``hourly``: the next hourly run (one hour later) over the same intervals, the records of
     ``sql`` present: it starts at the watermark, so it reads and inserts only the newest hour.
     Then, untimed, ``TRUNCATE metering_records, metering_watermark``.
   - ``count``: ``SELECT count(*)`` of the same intervals joined to their subscriptions with
     the same window filter: the floor of merely reading the rows once.
   - ``naive`` (``--baseline-rounds`` rounds): the same result computed in Python: fetch the
     joined rows, split each interval into hours in a loop, sum in a dict, COPY the records in.
4. Checks that ``sql`` and ``naive`` produce the same records (count and summed quantity per
   dimension), prints the figures and rewrites the metering block of ``benchmarks/RESULTS.md``.

Target: ``sql`` under 10 s for 1,000,000 intervals across 10,000 subscriptions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``python benchmarks/metering.py`` puts benchmarks/ first, not the repo
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from rayplane.billing.dimensions import DEFAULT_DIMENSIONS, plan_dimensions  # noqa: E402
from rayplane.billing.metering import Metering, RunResult  # noqa: E402
from rayplane.db.engine import make_sync_engine, sync_session_factory  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from rayplane.logs import configure_logging  # noqa: E402
from rayplane.settings import Settings  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
MARK_START = "<!-- metering:start (written by benchmarks/metering.py; edits inside this block are overwritten) -->"
MARK_END = "<!-- metering:end -->"
TARGET_SECONDS = 10.0
GROUPS = 4
PER_GROUP = 25
SIZES = [("Standard_D4s_v5", 4, 0), ("Standard_D8s_v5", 8, 0), ("Standard_D16s_v5", 16, 0)]
SIZES.append(("Standard_NC24ads_A100_v4", 24, 1))
SIX = Decimal("0.000001")


def generate(conn: psycopg.Connection, tenants: int, w0: datetime) -> int:
    sizes_sql = ", ".join(f"('{n}', {v}, {g}, {i})" for i, (n, v, g) in enumerate(SIZES))
    step = 24 * 3600 / PER_GROUP
    conn.execute("SELECT setseed(0.42)")
    conn.execute(
        """
        INSERT INTO tenants (id, name, display_name, status, created_at, updated_at, version)
        SELECT 'ten_b' || lpad(i::text, 21, '0'), 'bench-' || i, 'bench ' || i, 'active', now(), now(), 1
        FROM generate_series(1, %(n)s) i
        """,
        {"n": tenants},
    )
    conn.execute(
        """
        INSERT INTO marketplace_subscriptions (id, tenant_id, offer_id, plan_id, status, created_at, updated_at)
        SELECT md5('sub' || i)::uuid::text, 'ten_b' || lpad(i::text, 21, '0'), 'rayplane',
               (ARRAY['starter', 'team', 'enterprise'])[1 + i %% 3], 'Subscribed', %(old)s, %(old)s
        FROM generate_series(1, %(n)s) i
        """,
        {"n": tenants, "old": w0 - timedelta(days=30)},
    )
    conn.execute(
        """
        INSERT INTO clusters (id, tenant_id, name, spec, labels, generation, desired_state, state, observed,
                              observed_generation, provider_state, attempts, retry_requested, version)
        SELECT 'cls_b' || lpad(i::text, 21, '0'), 'ten_b' || lpad(i::text, 21, '0'), 'bench', '{}', '{}', 1,
               'running', 'RUNNING', '{}', 1, '{}', 0, false, 1
        FROM generate_series(1, %(n)s) i
        """,
        {"n": tenants},
    )
    conn.execute(
        f"""
        INSERT INTO usage_intervals (id, tenant_id, cluster_id, group_name, vm_size, spot, node_count, vcpus, gpus,
                                     started_at, ended_at)
        SELECT 'use_b' || lpad(((i - 1) * {GROUPS * PER_GROUP} + g * {PER_GROUP} + k)::text, 21, '0'),
               'ten_b' || lpad(i::text, 21, '0'), 'cls_b' || lpad(i::text, 21, '0'), 'g' || g,
               s.name, false, 1 + floor(random() * 8)::int, s.vcpus, s.gpus,
               %(w0)s + make_interval(secs => k * {step} + (i * 7919 + g * 104729) %% 3456),
               CASE WHEN k < {PER_GROUP - 1}
                    THEN %(w0)s + make_interval(secs => (k + 1) * {step} + (i * 7919 + g * 104729) %% 3456) END
        FROM generate_series(1, %(n)s) i, generate_series(0, {GROUPS - 1}) g, generate_series(0, {PER_GROUP - 1}) k
        JOIN (VALUES {sizes_sql}) AS s(name, vcpus, gpus, n) ON true
        WHERE s.n = (i + g) %% {len(SIZES)}
        """,  # noqa: S608 - module constants only
        {"n": tenants, "w0": w0},
    )
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False
    row = conn.execute("SELECT count(*) FROM usage_intervals").fetchone()
    assert row is not None
    return int(row[0])


def window(now: datetime, lookback_hours: int = 48) -> tuple[datetime, datetime]:
    hour = now.replace(minute=0, second=0, microsecond=0)
    return hour - timedelta(hours=lookback_hours), hour


def sql_round(url: str, now: datetime, parallelism: int) -> tuple[float, int]:
    """``Metering.aggregate`` as the hourly task runs it: its own engine (as ``workers.db``),
    ``parallelism`` partitions on as many connections, each committed, then the watermark."""
    engine = make_sync_engine(url)
    settings = Settings(env="test", database_url=url, metering_delay_seconds=0, metering_parallelism=parallelism)
    result = RunResult()
    try:
        started = time.perf_counter()
        Metering(sync_session_factory(engine), settings).aggregate(now, result)
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    return elapsed, sum(result.created.values())


JOINED = """
    SELECT s.id, s.tenant_id, s.plan_id, u.node_count, u.vcpus, u.gpus, u.started_at, u.ended_at, s.created_at
    FROM usage_intervals u JOIN marketplace_subscriptions s ON s.tenant_id = u.tenant_id
    WHERE s.status IN ('Subscribed', 'Suspended') AND u.started_at < %(hi)s
      AND (u.ended_at IS NULL OR u.ended_at > greatest(%(lo)s, s.created_at))
"""


def count_round(conn: psycopg.Connection, now: datetime) -> tuple[float, int]:
    lo, hi = window(now)
    started = time.perf_counter()
    row = conn.execute(f"SELECT count(*) FROM ({JOINED}) j", {"lo": lo, "hi": hi}).fetchone()  # noqa: S608
    elapsed = time.perf_counter() - started
    conn.rollback()
    assert row is not None
    return elapsed, int(row[0])


def naive_round(conn: psycopg.Connection, now: datetime) -> tuple[float, int]:
    """The same records computed in Python from the joined rows, written with COPY."""
    lo, hi = window(now)
    expired_before = now - timedelta(hours=24)
    plans = {k: set(v) for k, v in plan_dimensions().items()}
    started = time.perf_counter()
    sums: dict[tuple[str, str, str, datetime], list[float]] = defaultdict(lambda: [0.0, 0.0])
    hour = timedelta(hours=1)
    with conn.cursor(name="intervals") as cur:
        cur.itersize = 50_000
        cur.execute(JOINED, {"lo": lo, "hi": hi})
        for sub, tenant, plan, nodes, vcpus, gpus, start, end, created in cur:
            begin = max(start, created, lo)
            stop = min(end or hi, hi)
            h = begin.replace(minute=0, second=0, microsecond=0)
            while h < stop:
                seconds = (min(stop, h + hour) - max(begin, h)).total_seconds()
                acc = sums[(sub, tenant, plan, h)]
                acc[0] += nodes * vcpus * seconds
                acc[1] += nodes * gpus * seconds
                h += hour
    count = 0
    with conn.cursor().copy(
        "COPY metering_records (tenant_id, subscription_id, plan_id, dimension, hour, quantity, status, attempts)"
        " FROM STDIN"
    ) as copy:
        for (sub, tenant, plan, h), (vcpu_s, gpu_s) in sums.items():
            for dimension, seconds in (("vcpu_hours", vcpu_s), ("gpu_hours", gpu_s)):
                quantity = (Decimal(seconds) / 3600).quantize(SIX, ROUND_HALF_EVEN)
                if quantity <= 0 or dimension not in plans.get(plan, set(DEFAULT_DIMENSIONS)):
                    continue
                count += 1
                status = "expired" if h < expired_before else "pending"
                copy.write_row((tenant, sub, plan, dimension, h, quantity, status, 0))
    conn.commit()
    return time.perf_counter() - started, count


def totals(conn: psycopg.Connection) -> dict[str, tuple[int, Decimal]]:
    rows = conn.execute("SELECT dimension, count(*), sum(quantity) FROM metering_records GROUP BY dimension").fetchall()
    conn.rollback()
    return {str(d): (int(n), Decimal(q)) for d, n, q in rows}


def truncate(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE metering_records, metering_watermark")
    conn.commit()


def timed(label: str, fn: Callable[[], tuple[float, int]], results: list[tuple[int, str, float, int]], n: int) -> None:
    seconds, rows = fn()
    results.append((n, label, seconds, rows))
    print(json.dumps({"round": n, "kind": label, "seconds": round(seconds, 3), "rows": rows}), flush=True)


def write_results(block: str) -> None:
    text_ = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    if MARK_START in text_:
        head, rest = text_.split(MARK_START, 1)
        text_ = head + block + rest.split(MARK_END, 1)[1]
    else:
        text_ = text_.rstrip() + "\n\n## Metering aggregation (`benchmarks/metering.py`)\n\n" + block + "\n"
    RESULTS.write_text(text_)


def report(args: argparse.Namespace, intervals: int, load_s: float, rows: list[tuple[int, str, float, int]]) -> str:
    def med(kind: str) -> float:
        return statistics.median(s for _, k, s, _ in rows if k == kind)

    sql, hourly, count, naive = med("sql"), med("hourly"), med("count"), med("naive")
    records = next(r for _, k, _, r in rows if k == "sql")
    new_hourly = next(r for _, k, _, r in rows if k == "hourly")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with psycopg.connect(args.admin_url) as c:
        version_row = c.execute("SHOW server_version").fetchone()
    version = version_row[0] if version_row else "?"
    lines = [
        MARK_START,
        f"### Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{' '.join(['python benchmarks/metering.py', *sys.argv[1:]])}`",
        "",
        f"- Machine: nproc {os.cpu_count()}, {platform.system()} {platform.release()}; load average after {load}",
        f"- Python {platform.python_version()}, PostgreSQL {version} (server defaults: shared_buffers 128 MB; "
        f"the aggregation sets work_mem 256 MB and jit off for its own transactions); "
        f"RAYPLANE_METERING_PARALLELISM={args.parallelism}",
        f"- Data: {args.tenants:,} tenants with one Subscribed subscription each, {intervals:,} usage intervals "
        f"(4 groups x 25 per tenant tiling 24 h, one open per group, 1-8 nodes, 1 in 4 groups a GPU size); "
        f"generated in {load_s:.1f} s",
        f"- `sql` (cold: nothing recorded yet) inserts {records:,} records, one per subscription, dimension and "
        f"hour, and commits; `hourly` is the next hourly run (now + 1 h) over the same intervals with those "
        f"records present: it starts at the watermark and inserts the newest hour's {new_hourly:,}; the table "
        "is truncated between rounds, untimed",
        "",
        "| round | kind | seconds | rows |",
        "| ---: | :--- | ---: | ---: |",
        *[f"| {n} | {k} | {s:.2f} | {r:,} |" for n, k, s, r in rows],
        "",
        f"Medians: **sql {sql:.2f} s** (target under {TARGET_SECONDS:.0f} s: "
        f"**{'met' if sql < TARGET_SECONDS else 'not met'}**), hourly {hourly:.2f} s; baselines in the same run: "
        f"count(*) of the same joined rows {count:.2f} s (sql / count = {sql / count:.1f}), naive Python "
        f"aggregation {naive:.2f} s (naive / sql = {naive / sql:.2f}). `sql` and `naive` produced the same "
        "records (count and summed quantity per dimension).",
        MARK_END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=Settings().metering_parallelism)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    # The cold run raises an alert per hour it finds too old (20 lines and a count): not figures.
    configure_logging("CRITICAL", "json", stream=io.StringIO())
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    w0 = now.replace(minute=0) - timedelta(hours=24)  # the window [w0, w0 + 24h) is closed at `now`
    rows: list[tuple[int, str, float, int]] = []
    with servers() as (admin_db, _), scratch_database(admin_db, prefix="rayplane_bench") as url:
        args.admin_url = admin_db
        upgrade(url)
        with psycopg.connect(url) as conn:
            started = time.perf_counter()
            intervals = generate(conn, args.tenants, w0)
            load_s = time.perf_counter() - started
            print(json.dumps({"intervals": intervals, "generated_s": round(load_s, 1)}), flush=True)
            sql_round(url, now, args.parallelism)  # warm-up, not counted
            expected = totals(conn)
            truncate(conn)
            for n in range(1, args.rounds + 1):
                timed("sql", lambda: sql_round(url, now, args.parallelism), rows, n)
                # The next hourly run: every hour but the newest is recorded already.
                timed("hourly", lambda: sql_round(url, now + timedelta(hours=1), args.parallelism), rows, n)
                truncate(conn)
                timed("count", lambda: count_round(conn, now), rows, n)
                if n <= args.baseline_rounds:
                    timed("naive", lambda: naive_round(conn, now), rows, n)
                    got = totals(conn)
                    truncate(conn)
                    for dim, (count, qty) in expected.items():
                        assert got[dim][0] == count, (dim, got[dim], expected[dim])
                        assert abs(got[dim][1] - qty) < Decimal("0.01"), (dim, got[dim], expected[dim])
    block = report(args, intervals, load_s, rows)
    print(block)
    if not args.no_write:
        write_results(block)


if __name__ == "__main__":
    main()
