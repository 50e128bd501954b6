"""Azure clusters created at once against the emulator: 200 with 2 worker processes against
1,000 with 4, in the same run.

Each configuration (``--runs``, ``CLUSTERSxPROCESSES``) gets a whole control plane of its own
(``rayplane dev`` with ``RAYPLANE_DEMO_AZURE=1``: API, one Celery worker with PROCESSES
processes, beat, the Azure emulator with no added latency) on this machine's Postgres and
Redis, and a database of its own. Phase A: CLUSTERS clusters (a D2s_v5 head and one worker
each; the worker on a D4s_v5, see ``SHAPE``) are created at once on a cold cloud (no AKS
cluster, no pools yet), timed until every one is RUNNING. Phase B: ``--extra`` more clusters
of the same shape, on pools that already exist and fit. For each phase: wall time to all
RUNNING, ARM requests and writes (the emulator's counters), and CPU seconds of the worker
processes, per cluster. The baseline for the write count is the minimum the cold phase cannot
avoid (one AKS cluster and two pools); the baseline for the 1,000-cluster figures is the
200-cluster run beside them.

    python benchmarks/azure_fleet.py [--runs 200x2,1000x4] [--extra 20]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import signal
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rayplane.providers.azure.manifests import AKS_MAX_POOL_NODES  # noqa: E402
from tests.e2e.stack import Stack, wait_for  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

MARK_START = "<!-- azure-fleet:start -->"
MARK_END = "<!-- azure-fleet:end -->"
SHAPE = {
    "cloud": "azure-demo",
    "head": {"vm_size": "Standard_D2s_v5"},
    # The worker on another size than the head: each Ray pod takes a node of its own, and AKS
    # caps a node pool at 1,000 nodes, so 1,000 clusters need two pools of 1,000 (one shared
    # pool per size and priority holds at most 500 head-and-worker clusters).
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 1}],
}


@dataclass
class Phase:
    processes: int
    name: str
    clusters: int
    seconds: float
    arm_requests: int
    arm_writes: int
    worker_cpu: float


def worker_cpu(stack: Stack) -> float:
    """User+system CPU seconds of the Celery worker and its pool processes so far."""
    worker = stack.worker_process()
    assert worker is not None
    total = 0.0
    for p in [worker, *worker.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def running(api: httpx.Client, ids: set[str]) -> int:
    seen, cursor = 0, None
    while True:
        params: dict[str, Any] = {"state": "RUNNING", "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/clusters", params=params).json()
        seen += sum(1 for c in page["items"] if c["id"] in ids)
        cursor = page.get("next_cursor")
        if not cursor:
            return seen


def phase(
    stack: Stack, api: httpx.Client, arm: httpx.Client, name: str, count: int, offset: int, processes: int
) -> Phase:
    """One shared client for the driver: a new one per request would spend more CPU on TLS
    and connection set-up than the control plane spends on the request."""
    before = arm.get("/_emulator/arm/requests").json()
    cpu0 = worker_cpu(stack)
    started = time.monotonic()

    def create(i: int) -> str:
        r = api.post("/v1/clusters", json={**SHAPE, "name": f"c{offset + i:04d}"})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        ids = set(pool.map(create, range(count)))
    wait_for(lambda: running(api, ids) == count, 1800, f"{count} clusters RUNNING", interval=1.0)
    seconds = time.monotonic() - started
    cpu = worker_cpu(stack) - cpu0
    after = arm.get("/_emulator/arm/requests").json()
    return Phase(
        processes, name, count, seconds, after["total"] - before["total"], after["writes"] - before["writes"], cpu
    )


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"nproc {os.cpu_count()}, Python {platform.python_version()}, load average at the end {load}"


def write_results(phases: list[Phase], command: str) -> str:
    lines = [
        MARK_START,
        f"### Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`; {machine()}.",
        "",
        "| worker processes | phase | clusters | wall s to all RUNNING | clusters RUNNING / s "
        "| ARM requests / cluster | ARM writes (total) | worker CPU s / cluster |",
        "| ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in phases:
        lines.append(
            f"| {p.processes} | {p.name} | {p.clusters} | {p.seconds:.1f} | {p.clusters / p.seconds:.1f} "
            f"| {p.arm_requests / p.clusters:.2f} | {p.arm_writes} | {p.worker_cpu / p.clusters:.3f} |"
        )
    lines.append("")
    colds = [p for p in phases if p.name.startswith("A")]
    warms = [p for p in phases if p.name.startswith("B")]
    colds_without_b = [
        c
        for c in phases
        if c.name.startswith("A") and not any(w.processes == c.processes and w.name.startswith("B") for w in phases)
    ]
    lines.append(
        "No ARM write for clusters whose pools exist: "
        + ", ".join(f"{w.arm_writes} writes with {w.processes} processes" for w in warms)
        + f" ({'met' if all(w.arm_writes == 0 for w in warms) else 'not met'}). Cold-phase writes against the "
        "unavoidable minimum of 3 (the AKS cluster and the two shared pools): "
        + ", ".join(f"{c.arm_writes / 3:.1f}x for {c.clusters}" for c in colds)
        + "."
    )
    for c in colds_without_b:
        lines.append(
            f"No phase B with {c.processes} processes: {c.clusters} clusters fill both shared pools to AKS's "
            f"{AKS_MAX_POOL_NODES:,}-node limit per pool, so more of this shape would wait for nodes."
        )
    if len(colds) >= 2:
        base, big = colds[0], colds[-1]
        lines.append(
            f"{big.clusters} against {base.clusters} clusters (cold): worker CPU per cluster "
            f"x{(big.worker_cpu / big.clusters) / (base.worker_cpu / base.clusters):.2f}, ARM requests per cluster "
            f"x{(big.arm_requests / big.clusters) / max(base.arm_requests / base.clusters, 1e-9):.2f}, "
            f"clusters RUNNING per second x{(big.clusters / big.seconds) / (base.clusters / base.seconds):.2f}."
        )
    lines.append(MARK_END)
    block = "\n".join(lines)
    results = ROOT / "benchmarks" / "RESULTS.md"
    text = results.read_text()
    if MARK_START in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Azure: a fleet created at once (`benchmarks/azure_fleet.py`)\n\n" + block + "\n"
    results.write_text(text)
    return block


def run(clusters: int, processes: int, extra: int) -> list[Phase]:
    """One configuration on a control plane, database and data directory of its own."""
    with (
        servers() as (admin_db, redis_url),
        scratch_database(admin_db) as db,
        tempfile.TemporaryDirectory(prefix="rpb-") as tmp,
    ):
        stack = Stack(Path(tmp), db, redis_url.rsplit("/", 1)[0] + "/11", Path(tempfile.mkdtemp(prefix="rp")))
        stack.env.update(
            {
                "RAYPLANE_DEMO_AZURE": "1",
                "RAYPLANE_LOCAL_CLOUDS": "false",
                "RAYPLANE_RATE_LIMIT_PER_MINUTE": "0",
                "RAYPLANE_DEFAULT_QUOTA_CLUSTERS": "100000",
                "RAYPLANE_DEFAULT_QUOTA_VCPUS": "10000000",
                "RAYPLANE_LOG_LEVEL": "WARNING",
                "RAYPLANE_WORKER_CONCURRENCY": str(processes),
                # No real Ray per pod: the fleet measures the control plane, not Ray.
                "AZURE_EMULATOR_RAY_BACKEND": "simulated",
                # The production cadence, not the e2e tests' faster one: RUNNING clusters are
                # looked at every 5 s, so 1,000 of them cost 200 passes a second.
                "RAYPLANE_RECONCILE_STEADY_SECONDS": "5",
            }
        )
        stack.start()
        try:
            data = Path(tmp) / "data" / "azure-emulator"
            ctx = ssl.create_default_context(cafile=str(data / "ca.pem"))
            arm = httpx.Client(base_url=(data / "origin").read_text().strip(), verify=ctx, timeout=30)
            wait_for(
                lambda: any(
                    c["name"] == "azure-demo" and c["status"] == "READY"
                    for c in stack.request("GET", "/v1/clouds").json()["items"]
                ),
                60,
                "the azure-demo cloud",
            )
            arm.put("/_emulator/arm/config", json={"latency_ms": 0})
            limits = httpx.Limits(max_connections=32)
            with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60, limits=limits) as api:
                phases = [phase(stack, api, arm, "A: cold cloud", clusters, 0, processes)]
                print(f"{processes} processes: {phases[-1]}", flush=True)
                # Each pod takes a node and AKS caps a pool at 1,000 nodes: past that, more
                # clusters of this shape wait for nodes (they are told so, and fail at the
                # provisioning timeout); phase B is measured only where the pools can hold it.
                if clusters + extra <= AKS_MAX_POOL_NODES:
                    phases.append(phase(stack, api, arm, "B: pools exist", extra, clusters, processes))
                    print(f"{processes} processes: {phases[-1]}", flush=True)
                return phases
        finally:
            stack.stop()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the stacks' ``finally`` stop them, as Ctrl-C does


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupted)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="200x2,1000x4", help="CLUSTERSxPROCESSES, comma-separated")
    parser.add_argument("--extra", type=int, default=20)
    args = parser.parse_args()
    phases: list[Phase] = []
    for item in args.runs.split(","):
        clusters, processes = (int(x) for x in item.lower().split("x"))
        phases += run(clusters, processes, args.extra)
        print(f"done: {item}", flush=True)
    print(write_results(phases, f"python benchmarks/azure_fleet.py --runs {args.runs} --extra {args.extra}"))


if __name__ == "__main__":
    main()
