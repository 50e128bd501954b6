"""Log shipping cost and lag: one local node's shipper process against Azurite.

1. Starts Azurite's blob service (``ops.azurite``) and a synthetic node: a ``sleep`` process
   as the node's leader and a Ray-shaped session directory with ``--files`` log files.
2. Starts the real shipper (``rayplane.providers.local.logship.start``), as the local
   provider does, and lets it ship what is there.
3. Idle phase (``--seconds``): nothing is written; the shipper's CPU time is measured.
4. Busy phase (``--seconds``): a writer process (the stand-in for a busy job) appends
   ``--lines`` lines a second (about 100 bytes each) spread over four files, and every 0.5 s a
   timestamped line to a fifth; this process polls the store and records, for each
   timestamped line, how long after it was written the store held it (the lag). The
   shipper's and the writer's CPU times are measured.
5. Kills the leader, waits for the shipper's final pass, checks every byte is stored, prints
   the figures and rewrites the log-shipping block of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ops.azurite import Azurite  # noqa: E402
from rayplane.logstore import LogKey, open_store  # noqa: E402
from rayplane.providers.local import logship  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
BLOCK_START = "<!-- figures:start (written by benchmarks/log_shipping.py; edits inside this block are overwritten) -->"
BLOCK_END = "<!-- figures:end -->"
CONTAINER = "bench-logs"
WRITER = r"""
import sys, time
logs, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
files = [open(f"{logs}/worker-bench-{i}.out", "a", buffering=1) for i in range(4)]
lag = open(f"{logs}/job-driver-bench.log", "a", buffering=1)
start = time.monotonic(); n = 0; next_mark = start
while time.monotonic() - start < seconds:
    now = time.monotonic()
    due = int((now - start) * rate)
    while n < due:
        text = f"{time.time():.6f} INFO worker.py:123 -- task {n} finished; result stored in the object store ok"
        files[n % 4].write(text + "\n")
        n += 1
    if now >= next_mark:
        lag.write(f"LAG {time.time():.6f}\n"); next_mark += 0.5
    time.sleep(0.01)
"""


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def measure(args: argparse.Namespace, work: Path) -> dict[str, float]:
    azurite = Azurite(work / "azurite", work / "azurite.log")
    url = azurite.start()
    leader = subprocess.Popen(["sleep", "3600"], start_new_session=True)
    try:
        node_dir = work / "node"
        session = node_dir / "session_2026-01-01_00-00-00_000000_1"
        logs = session / "logs"
        logs.mkdir(parents=True)
        for i in range(args.files):
            (logs / f"python-core-worker-{i:04x}_1.log").write_text("started\n" * 20)
        (node_dir / "session_latest").symlink_to(session)
        created = psutil.Process(leader.pid).create_time()
        shipping = logship.Shipping(url, CONTAINER, interval=1.0)
        logship.start(shipping, node_dir, tenant="ten_b", cluster="cls_b", node="head", leader=(leader.pid, created))
        (shipper,) = logship.running(node_dir)
        store = open_store(url, CONTAINER)
        first = LogKey("ten_b", "cls_b", "head", "python-core-worker-0000_1.log")
        deadline = time.monotonic() + 60
        while store.size(first) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # the first passes (creating every blob) are over

        c0, t0 = cpu(shipper), time.monotonic()
        time.sleep(args.seconds)
        idle = (cpu(shipper) - c0) / (time.monotonic() - t0)

        lag_key = LogKey("ten_b", "cls_b", "head", "job-driver-bench.log")
        (logs / lag_key.path).touch()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(logs), str(args.lines), str(args.seconds)])
        w = psutil.Process(writer.pid)
        c0, t0 = cpu(shipper), time.monotonic()
        seen, lags = 0, []
        w_cpu = 0.0
        while writer.poll() is None or seen < (logs / lag_key.path).stat().st_size:
            with (logs / lag_key.path).open("rb") as fh:
                local = fh.read()
            with_time = {}
            offset = 0
            for line in local.splitlines(keepends=True):
                offset += len(line)
                with_time[offset] = float(line.split()[1])
            size = store.size(lag_key)
            now = time.time()
            for end, written in with_time.items():
                if seen < end <= size:
                    lags.append(now - written)
            seen = max(seen, size)
            with_cpu = w.cpu_times() if writer.poll() is None else None
            if with_cpu is not None:
                w_cpu = with_cpu.user + with_cpu.system
            if time.monotonic() - t0 > args.seconds + 30:
                break
            time.sleep(0.05)
        busy_wall = time.monotonic() - t0
        busy = (cpu(shipper) - c0) / busy_wall
        leader.kill()
        leader.wait()
        logship.wait(node_dir, logship.LINGER_SECONDS + 10)
        stored = sum(f.size for f in store.files("ten_b", "cls_b"))
        local_total = sum(p.stat().st_size for p in logs.rglob("*") if p.is_file())
        lags.sort()
        return {
            "idle_cpu": idle,
            "busy_cpu": busy,
            "writer_cpu": w_cpu / args.seconds,
            "lag_p50": statistics.median(lags),
            "lag_p95": lags[int(0.95 * (len(lags) - 1))],
            "lag_max": lags[-1],
            "lag_n": len(lags),
            "complete": float(stored == local_total),
            "bytes": float(local_total),
        }
    finally:
        if leader.poll() is None:
            leader.kill()
        azurite.stop()


def block(args: argparse.Namespace, r: dict[str, float], started: str) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            BLOCK_START,
            f"### Latest run: {started}",
            "",
            f"Command: `python benchmarks/log_shipping.py --files {args.files} --lines {args.lines} "
            f"--seconds {args.seconds:g}`",
            "",
            f"- Machine: nproc {os.cpu_count()}; load average after {load} (other work shows here)",
            f"- One shipper (1 s interval) of a node with {args.files + 5} log files, Azurite 3.37 on loopback",
            f"- Idle node: shipper CPU {100 * r['idle_cpu']:.2f} % of one core",
            f"- Busy node ({args.lines} lines/s, about {args.lines * 100 // 1024} KiB/s, over 5 files): shipper CPU "
            f"{100 * r['busy_cpu']:.1f} % of one core; the writer itself {100 * r['writer_cpu']:.1f} %",
            f"- Lag from a line written to it stored ({int(r['lag_n'])} lines): median {r['lag_p50']:.2f} s, "
            f"p95 {r['lag_p95']:.2f} s, max {r['lag_max']:.2f} s",
            f"- After the node was killed: every byte stored ({int(r['bytes']):,} bytes): "
            f"{'yes' if r['complete'] else 'NO'}",
            BLOCK_END,
        ]
    )


def write_results(path: Path, text: str) -> None:
    body = path.read_text()
    start, end = body.find(BLOCK_START), body.find(BLOCK_END)
    if start != -1 and end > start:
        body = body[:start] + text + body[end + len(BLOCK_END) :]
    else:
        body = body.rstrip("\n") + "\n\n## Log shipping (`benchmarks/log_shipping.py`)\n\n" + text + "\n"
    path.write_text(body)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--files", type=int, default=60, help="idle log files of the node (default 60)")
    p.add_argument("--lines", type=int, default=2000, help="lines a second in the busy phase (default 2000)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each phase (default 30)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="rp-logbench-") as tmp:
        result = measure(args, Path(tmp))
    text = block(args, result, started)
    print(text)
    if not args.no_write:
        write_results(RESULTS, text)
    return 0 if result["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
