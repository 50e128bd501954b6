"""Create-to-RUNNING on the local provider against bare ``ray start`` of the same shape.

Rayplane: ``POST /v1/clusters`` (a 1-CPU head and one 1-CPU worker) on a whole control plane
(``rayplane dev``: API, a Celery worker and beat, on this machine's Postgres and Redis),
timed until ``GET /v1/clusters/{id}`` says RUNNING. Baseline, in the same run: ``ray start
--head --block`` plus ``ray start --address … --block`` with the same resources, timed until
the head's dashboard lists both nodes ALIVE. Rounds alternate (ABBA…) so machine noise hits
both; medians and the ratio go to ``benchmarks/RESULTS.md``.

    python benchmarks/create_to_running.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rayplane.procs import stop_process_group  # noqa: E402
from tests.e2e.stack import Stack, free_port, wait_for  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

RAY = Path(sys.executable).parent / "ray"
MARK_START = "<!-- create-to-running:start -->"
MARK_END = "<!-- create-to-running:end -->"


def two_alive(url: str) -> bool:
    try:
        r = httpx.get(url + "/api/v0/nodes", params={"detail": "1"}, timeout=2)
        nodes = r.json()["data"]["result"]["result"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return sum(1 for n in nodes if n.get("state") == "ALIVE") >= 2


def bare_round(tmp: Path) -> float:
    """Seconds from launching a bare head until it and one worker are ALIVE."""
    port, dash, client = free_port(), free_port(), free_port()
    common = ["--block", "--num-cpus=1", "--disable-usage-stats"]

    def node_ports() -> list[str]:
        # Ray's fixed default ports collide when other Ray nodes run on the machine.
        return [
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            "--min-worker-port=0",
            "--max-worker-port=0",
        ]

    head_dir = Path(tempfile.mkdtemp(prefix="bh", dir="/tmp"))
    started = time.perf_counter()
    head = subprocess.Popen(
        [
            str(RAY),
            "start",
            "--head",
            f"--port={port}",
            f"--dashboard-port={dash}",
            "--dashboard-host=127.0.0.1",
            f"--ray-client-server-port={client}",
            f"--temp-dir={head_dir}",
            '--resources={"grp_head": 1}',
            *node_ports(),
            *common,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "AUTOSCALER_METRIC_PORT": str(free_port())},
    )
    url = f"http://127.0.0.1:{dash}"
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: _answers(url), 120, "the bare head", interval=0.1)
        worker = subprocess.Popen(
            [str(RAY), "start", f"--address=127.0.0.1:{port}", '--resources={"grp_cpu": 1}', *node_ports(), *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: two_alive(url), 120, "two bare nodes", interval=0.1)
        return time.perf_counter() - started
    finally:
        for proc in (worker, head):
            if proc is not None:
                stop_process_group(proc, timeout=20)
        shutil.rmtree(head_dir, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/api/version", timeout=1)
        return True
    except httpx.HTTPError:
        return False


def rayplane_round(stack: Stack, n: int) -> float:
    body = {
        "name": f"bench-{n}",
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 1}],
    }
    started = time.perf_counter()
    r = stack.request("POST", "/v1/clusters", json=body)
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    wait_for(lambda: stack.cluster(cid)["state"] == "RUNNING", 300, "RUNNING", interval=0.1)
    elapsed = time.perf_counter() - started
    stack.request("DELETE", f"/v1/clusters/{cid}")
    stack.wait_state(cid, "DELETED", timeout=120)
    return elapsed


def write_results(rows: list[tuple[int, str, float]], command: str) -> str:
    bare = [s for _, k, s in rows if k == "bare"]
    rp = [s for _, k, s in rows if k == "rayplane"]
    ratio = statistics.median(rp) / statistics.median(bare)
    lines = [
        MARK_START,
        f"### Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`",
        "",
        f"- Machine: nproc {os.cpu_count()}, {platform.system()} {platform.release()}, load average before "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "- Shape: a 1-CPU head and one 1-CPU worker (Standard_D2s_v5 scaled down on a 2-CPU local cloud)",
        "- Rayplane: POST /v1/clusters until GET says RUNNING (polled every 0.1 s), whole control plane running",
        "- Bare: `ray start --head --block` then `ray start --address … --block` until the dashboard lists both ALIVE",
        "",
        "| round | kind | seconds |",
        "| ---: | :--- | ---: |",
        *[f"| {n} | {k} | {s:.2f} |" for n, k, s in rows],
        "",
        f"Median: Rayplane **{statistics.median(rp):.2f} s**, bare **{statistics.median(bare):.2f} s**; "
        f"ratio **{ratio:.2f}** (target at most 1.5: **{'met' if ratio <= 1.5 else 'not met'}**).",
        MARK_END,
    ]
    block = "\n".join(lines)
    results = ROOT / "benchmarks" / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmarks\n"
    if MARK_START in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Create to RUNNING (`benchmarks/create_to_running.py`)\n\n" + block + "\n"
    results.write_text(text)
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[int, str, float]] = []
    with servers() as (admin_db, redis_url), scratch_database(admin_db) as db, tempfile.TemporaryDirectory() as tmp:
        ray_root = Path(tempfile.mkdtemp(prefix="rpb", dir="/tmp"))
        redis_bench = redis_url.rsplit("/", 1)[0] + "/9" if redis_url.startswith("redis://") else redis_url
        stack = Stack(Path(tmp), db, redis_bench, ray_root)
        stack.env["RAYPLANE_LOG_LEVEL"] = "WARNING"
        stack.start()
        try:
            for n in range(args.rounds):
                order = ("bare", "rayplane") if n % 2 == 0 else ("rayplane", "bare")
                for kind in order:
                    seconds = bare_round(Path(tmp)) if kind == "bare" else rayplane_round(stack, n)
                    rows.append((n + 1, kind, seconds))
                    print(json.dumps({"round": n + 1, "kind": kind, "seconds": round(seconds, 2)}), flush=True)
        finally:
            stack.stop()
    print(write_results(rows, "python benchmarks/create_to_running.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
