"""A service rollout on the local provider against a second Ray cluster brought up by hand.

Rayplane: ``PATCH /v1/services/{id}`` with a new ``image`` and a new ``user_config`` greeting
(a new version on a new cluster; ``blue_green``, health timeout 60 s) on a whole control
plane (``rayplane dev`` with its default settings), timed until the stable endpoint answers
the new greeting on 20 consecutive requests (polled every 0.1 s; the time is that of the
first of them, or later) and the GET says ``active_version`` new, ``pending_version`` null.
A ``wrk`` load runs on the endpoint meanwhile. Baseline, in the same run, under the same
load: ``ray start --head --block`` with the service head's resources, then the same Serve
config (``working_dir`` uploaded as the service does) by ``PUT /api/serve/applications/``,
timed until the new head's Serve port answers the new greeting. Rounds alternate (ABBA…).

    python benchmarks/service_rollout.py [--rounds 3]
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
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rayplane.procs import stop_process_group  # noqa: E402
from rayplane.providers.local.serve import ServeClient, ServeError  # noqa: E402
from rayplane.providers.local.serve_config import ServeConfig  # noqa: E402
from tests.e2e.stack import Stack, free_port, wait_for  # noqa: E402
from tests.e2e.test_services_local import serve  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402
from tests.support.wrk import Wrk  # noqa: E402

RAY = Path(sys.executable).parent / "ray"
MARK_START = "<!-- service-rollout:start -->"
MARK_END = "<!-- service-rollout:end -->"
STREAK = 20
# The e2e stack's test overrides, dropped: the control plane runs with its default settings.
TEST_SETTINGS = "LOCAL_CPUS LOCAL_MEMORY_GIB SWEEP_INTERVAL_SECONDS RECONCILE_STEADY_SECONDS SWEEP_HOLD_SECONDS"
TEST_SETTINGS += " SCALE_DOWN_IDLE_SECONDS LOG_LEVEL"
RESOURCE_FLAGS = ("--num-cpus=", "--num-gpus=", "--memory=", "--object-store-memory=", "--resources=")
Row = dict[str, Any]


def greeting(url: str) -> str | None:
    try:
        return str(httpx.get(url + "/echo/x", timeout=2).json()["greeting"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def errors(counts: dict[str, float]) -> int:
    return int(sum(v for k, v in counts.items() if k not in ("requests", "p99_ms")))


def bare_round(resources: list[str], new: str) -> Row:
    """Seconds from launching a bare head until its Serve port answers ``new``."""
    port, dash, client, serve_port = free_port(), free_port(), free_port(), free_port()
    node_ports = [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]
    head_dir = Path(tempfile.mkdtemp(prefix="bs", dir="/tmp"))
    env = {**os.environ, "AUTOSCALER_METRIC_PORT": str(free_port()), "DASHBOARD_METRIC_PORT": str(free_port())}
    env["RAY_AUTH_MODE"] = "disabled"  # Ray's default, whatever this shell has
    argv = [str(RAY), "start", "--head", "--block", f"--port={port}", f"--dashboard-port={dash}"]
    argv += ["--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--ray-client-server-port={client}"]
    argv += [f"--temp-dir={head_dir}", *node_ports, *resources, "--disable-usage-stats"]
    heads: list[subprocess.Popen[bytes]] = []

    def launch() -> None:
        out = subprocess.DEVNULL
        heads.append(subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True, env=env))

    def taken(ray: ServeClient) -> bool:
        if heads[-1].poll() is not None:  # Ray gave up starting the node: start it again, as a user would
            launch()
        return _deployed(ray, config)

    config = serve(new, on_worker=False)
    config |= {"proxy_location": "HeadOnly", "http_options": {"host": "127.0.0.1", "port": serve_port}}
    started = time.perf_counter()
    launch()
    try:
        with ServeClient(f"http://127.0.0.1:{dash}", timeout=60) as ray:
            wait_for(lambda: taken(ray), 400, "the bare head to take the config", interval=0.1)
        up = time.perf_counter() - started
        url = f"http://127.0.0.1:{serve_port}"
        wait_for(lambda: greeting(url) == new, 300, "the bare Serve to answer", interval=0.1)
        return {"seconds": time.perf_counter() - started, "rolling": up, "head_starts": len(heads)}
    finally:
        for head in heads:
            stop_process_group(head, timeout=30)
        shutil.rmtree(head_dir, ignore_errors=True)


def _deployed(ray: ServeClient, config: dict[str, Any]) -> bool:
    """Upload each ``working_dir`` (as ``LocalServiceRunner._uploaded`` does) and PUT the config;
    False while the dashboard is not up or not ready (what a user would retry)."""
    try:
        apps = []
        for app in config["applications"]:
            wd = ray.upload_directory(Path(app["runtime_env"]["working_dir"]))
            apps.append({**app, "runtime_env": {**app["runtime_env"], "working_dir": wd}})
        ray.deploy(ServeConfig.from_spec({**config, "applications": apps}))
        return True
    except ServeError as exc:
        if not exc.retriable:
            raise
        return False


class Service:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        body = {
            "name": "bench",
            "head": {"vm_size": "Standard_D2s_v5"},
            "serve": serve("v1", on_worker=False),
            "rollout": {"strategy": "blue_green", "health_timeout_seconds": 60},
        }
        r = stack.request("POST", "/v1/services", json=body)
        assert r.status_code == 202, r.text
        self.id = r.json()["id"]
        self.wait_operation(r.headers["Operation-Location"])
        self.version = 1
        self.endpoint = str(self.get()["endpoint_url"])

    def get(self) -> dict[str, Any]:
        return self.stack.cluster(self.id)

    def wait_operation(self, location: str) -> None:
        def done() -> dict[str, Any] | None:
            op: dict[str, Any] = self.stack.request("GET", location).json()
            return op if op["status"] != "Running" else None

        op = wait_for(done, 600, f"{location} to end", interval=0.2)
        assert op["status"] == "Succeeded", (op, self.events(datetime.min.replace(tzinfo=UTC)))

    def events(self, since: datetime) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.stack.request(
                "GET", f"/v1/services/{self.id}/events", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
            ).json()
            items += page["items"]
            if not (cursor := page.get("next_cursor")):
                return [e for e in items if datetime.fromisoformat(e["at"]) >= since]

    def head_resources(self) -> list[str]:
        """The resource flags of the serving version's head, as its ``ray start`` has them."""
        heads = [p for p in self.stack.ray_node_processes(f"{self.id}-v{self.version}") if "--head" in p.cmdline()]
        assert len(heads) == 1, heads
        return [a for a in heads[0].cmdline() if a.startswith(RESOURCE_FLAGS)]

    def roll_out(self, n: int, new: str) -> Row:
        """One rollout to a new version answering ``new``; the times are seconds after the PATCH."""
        etag = self.stack.request("GET", f"/v1/services/{self.id}").headers["ETag"]
        body = {"image": f"rayproject/ray:bench-{n}", "serve": serve(new, on_worker=False)}
        at = datetime.now(UTC)
        started = time.perf_counter()
        r = self.stack.request("PATCH", f"/v1/services/{self.id}", json=body, headers={"If-Match": etag})
        assert r.status_code == 202, r.text
        assert r.json()["version"] == self.version + 1, r.text
        self.version += 1
        row: Row = {"rolling": None, "switch": None, "done": None}
        streak_from, streak = 0.0, 0
        while time.perf_counter() - started < 600:
            now = time.perf_counter() - started
            if greeting(self.endpoint) == new:
                streak_from, streak = (streak_from, streak + 1) if streak else (now, 1)
                row["switch"] = row["switch"] or now
            else:
                streak = 0
            if row["done"] is None:
                svc = self.get()
                assert svc["state"] not in ("FAILED", "ROLLING_BACK"), svc
                if svc["failure"]:
                    row["failure_seen"] = svc["failure"]  # reported, not fatal
                if row["rolling"] is None and svc["pending_version"] == self.version:
                    row["rolling"] = now
                if (svc["active_version"], svc["pending_version"]) == (self.version, None):
                    row["done"] = now
            if row["done"] is not None and streak >= STREAK:
                row["seconds"] = max(row["done"], streak_from)
                events = self.events(at)
                row["events"] = timeline(events, at)
                row["head_starts"] = 1 + sum(e["code"] == "HeadNotReady" for e in events)
                return row
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - started - now)))
        raise AssertionError(f"rollout {n + 1} not done in 600 s; events: " + "; ".join(timeline(self.events(at), at)))


def timeline(events: list[dict[str, Any]], at: datetime) -> list[str]:
    """Each event as ``+<seconds after at> <code or new state>``, with the reason of an error."""
    out = []
    for e in events:
        text = f"+{(datetime.fromisoformat(e['at']) - at).total_seconds():.1f} {e['code'] or e['to_state']}"
        out.append(text + (f" ({e['reason'][:110]})" if e["kind"] == "error" else ""))
    return out


def write_results(rows: list[Row], command: str, load: str, failure: str | None) -> str:
    def median(kind: str, key: str = "seconds") -> float:
        values = [r[key] for r in rows if r["kind"] == kind and r["seconds"] == r["seconds"]]  # not NaN
        return statistics.median(values) if values else float("nan")

    rp = [r for r in rows if r["kind"] == "rayplane"]
    policy = statistics.median(r["seconds"] - r["switch"] for r in rp) if rp else float("nan")

    def cell(r: Row, key: str) -> str:
        return f"{r[key]:.2f}" if r.get(key) is not None else "-"

    lines = [
        MARK_START,
        f"### Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`",
        "",
        f"- Machine: nproc {os.cpu_count()}, {platform.system()} {platform.release()}, load average before {load}",
        "- Service: one Standard_D2s_v5 head (scaled down to the 2-CPU local cloud), applications `echo` and "
        "`counter` (`tests/support/serve_apps`), rollout `blue_green`, health timeout 60 s",
        "- Rayplane: PATCH a new image and greeting until the endpoint answers the new greeting 20 times in a row "
        "(polled every 0.1 s) and GET says active = new, pending = null",
        "- Bare: `ray start --head --block` (the service head's resources), upload of the `working_dir` and "
        "`PUT /api/serve/applications/` until its Serve port answers the new greeting",
        "- Load: `wrk -t1 -c4` on the endpoint's `/echo/x` during every round of both kinds",
        "- Up, PUT: Rayplane, the first GET with pending = new (the pass that started the new cluster and "
        "PUT its config); bare, the PUT accepted",
        "",
        "| round | kind | seconds | up, PUT | new greeting | new to done | head starts | wrk reqs | errors | p99 ms |",
        "| ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {r['round']} | {r['kind']} | {r['seconds']:.2f} | {cell(r, 'rolling')} | {cell(r, 'switch')} | "
            + (f"{r['seconds'] - r['switch']:.2f}" if r.get("switch") is not None else "-")
            + f" | {r['head_starts']} | {r['requests']:.0f} | {r['errors']} | {r['p99_ms']:.1f} |"
            for r in rows
        ],
        "",
        f"Median: Rayplane **{median('rayplane'):.2f} s**, bare **{median('bare'):.2f} s**; "
        f"ratio **{median('rayplane') / median('bare'):.2f}**. Failed requests during the rollouts: "
        f"**{sum(r['errors'] for r in rp)}**; median p99 during them **{median('rayplane', 'p99_ms'):.1f} ms** "
        f"(during the bare rounds {median('bare', 'p99_ms'):.1f} ms). "
        f"Median from the first new answer to done: {policy:.2f} s."
        if rp
        else f"No rollout finished. Bare median {median('bare'):.2f} s.",
        "",
        f"Stopped early: {failure}"
        if failure
        else "Events of the last rollout (s after the PATCH): " + ", ".join(rp[-1]["events"] if rp else []),
        MARK_END,
    ]
    block = "\n".join(lines)
    results = ROOT / "benchmarks" / "RESULTS.md"
    text = results.read_text()
    if MARK_START in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Service rollout (`benchmarks/service_rollout.py`)\n\n" + block + "\n"
    results.write_text(text)
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows: list[Row] = []
    with servers() as (admin_db, redis_url), scratch_database(admin_db) as db, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), db, redis_url, None)
        for name in TEST_SETTINGS.split():
            stack.env.pop("RAYPLANE_" + name)
        try:
            stack.start()  # its Ray root is the default one, derived from the data dir
            svc = Service(stack)
            resources = svc.head_resources()
            failure = run_rounds(args.rounds, svc, resources, Path(tmp), rows)
        finally:
            try:
                if stack.headers:  # started
                    stack.delete_all(timeout=240)
            except AssertionError as exc:  # a FAILED service: its nodes are stopped below all the same
                print(f"delete: {str(exc)[:300]}", file=sys.stderr)
            finally:
                stack.stop()
                _kill_leftovers(stack.ray_root)
    print(write_results(rows, "python benchmarks/service_rollout.py " + " ".join(sys.argv[1:]), load, failure))


def run_rounds(rounds: int, svc: Service, resources: list[str], tmp: Path, rows: list[Row]) -> str | None:
    """ABBA rounds under ``wrk``; a bare head that never comes up is noted (NaN), a rollout that
    does not finish ends them (its events returned)."""
    for n in range(rounds):
        for kind in ("bare", "rayplane") if n % 2 == 0 else ("rayplane", "bare"):
            new = f"v{len(rows) + 2}"
            wrk = Wrk(svc.endpoint + "/echo/x", tmp / "load.lua")
            try:
                try:
                    row = bare_round(resources, new) if kind == "bare" else svc.roll_out(n, new)
                except AssertionError as exc:
                    print(exc, file=sys.stderr)
                    if kind == "rayplane":
                        return str(exc)
                    row = {"seconds": float("nan"), "head_starts": "gave up"}  # the rounds go on
                counts, _ = wrk.stop()
            finally:
                wrk.kill()
            row |= {"round": n + 1, "kind": kind, "requests": counts["requests"], "errors": errors(counts)}
            row["p99_ms"] = counts["p99_ms"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return None


def _kill_leftovers(ray_root: Path) -> None:
    """Any process of the control plane's Ray root still alive (a failed delete) is killed."""
    for p in psutil.process_iter(["cmdline"]):
        if str(ray_root) in " ".join(p.info["cmdline"] or []):
            print(f"killing a leftover Ray process {p.pid}", file=sys.stderr)
            p.kill()
    shutil.rmtree(ray_root, ignore_errors=True)


if __name__ == "__main__":
    main()
