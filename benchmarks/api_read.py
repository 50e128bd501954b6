"""Read-path benchmark: the real ``GET /v1/api-keys/{id}`` against a bare FastAPI baseline.

    python benchmarks/api_read.py [--duration 15] [--connections 32] [--repeats 3]

What it does:

1. Finds Postgres and Redis the way the tests do (``RAYPLANE_DATABASE_URL`` /
   ``RAYPLANE_REDIS_URL``, else 127.0.0.1:5432 / :6379, else the embedded servers),
   creates a scratch database and runs the migrations on it.
2. Creates a tenant, an owner API key (the credential) and a second key (the row that is
   read) through the real services.
3. Starts two uvicorn servers, one worker process each, with identical environment:
   (a) the real app, ``uvicorn --factory api.app:app_from_env``;
   (b) ``benchmarks/bare_app.py``: one endpoint, one ``SELECT``, same engine and pool.
4. Waits until both answer (polling with a deadline), warms each up, then drives them
   with ``wrk --latency`` in alternating order (ABBA...) for ``--repeats`` rounds. Any
   non-2xx answer or socket error fails the run.
5. Prints the figures and rewrites the figures block of ``benchmarks/RESULTS.md``.

Servers are stopped (SIGTERM, deadline, SIGKILL of the process group) and the scratch
database dropped on every exit path, including Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import re
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``python benchmarks/api_read.py`` puts benchmarks/ first, not the repo
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from rayplane.db.engine import async_session_factory, make_async_engine  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from rayplane.identity.principal import Principal, Role  # noqa: E402
from rayplane.identity.service import create_api_key  # noqa: E402
from rayplane.procs import die_with_parent, stop_process_group  # noqa: E402
from rayplane.tenants.service import create_tenant  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

RESULTS = REPO / "benchmarks" / "RESULTS.md"
BLOCK_START = "<!-- figures:start (written by benchmarks/api_read.py; edits inside this block are overwritten) -->"
BLOCK_END = "<!-- figures:end -->"
TARGET_RATIO = 0.5
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class BenchmarkError(RuntimeError):
    """A run that cannot produce trustworthy figures (server died, non-2xx, socket errors)."""


# ---- data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    owner_key: str  # the credential (whole key)
    read_key_id: str  # the row both servers read


async def _seed(database_url: str, hashing_key: bytes) -> Seed:
    engine = make_async_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with async_session_factory(engine)() as session:
            tenant = await create_tenant(session, name="bench-" + secrets.token_hex(5), display_name="Benchmark")
            system = Principal(tenant_id=tenant.id, role=Role.OWNER, actor_type="system", actor_id="system:benchmark")
            _, owner_raw = await create_api_key(session, system, hashing_key, name="benchmark owner", role=Role.OWNER)
            target, _ = await create_api_key(
                session, system, hashing_key, name="benchmark read target", role=Role.VIEWER
            )
            await session.commit()
            return Seed(owner_key=owner_raw, read_key_id=target.id)
    finally:
        await engine.dispose()


# ---- servers --------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(settings: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any ``RAYPLANE_*`` (so both servers see only ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAYPLANE_")}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def uvicorn_argv(factory: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


@contextmanager
def running_server(label: str, factory: str, env: dict[str, str], log_dir: Path) -> Iterator[Server]:
    port = _free_port()
    log_path = log_dir / f"{label}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            uvicorn_argv(factory, port),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the group in order
            preexec_fn=die_with_parent,  # no threads exist yet in this process
        )
    server = Server(label, proc, f"http://127.0.0.1:{port}", log_path)
    try:
        yield server
    finally:
        stop_process_group(proc, timeout=STOP_TIMEOUT)


def wait_ready(server: Server, path: str, headers: dict[str, str], timeout: float = READY_TIMEOUT) -> None:
    """Poll ``path`` until it answers 200; fail fast if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise BenchmarkError(
                    f"{server.label} server exited with status {server.proc.returncode}:\n{server.log_tail()}"
                )
            try:
                response = client.get(path)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.05)
    raise BenchmarkError(f"{server.label} server not ready within {timeout:.0f}s ({last}):\n{server.log_tail()}")


# ---- wrk ------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_ms_per_request: float | None = None  # the server's own CPU time, from the kernel


def parse_wrk(output: str) -> WrkResult:
    """Figures from ``wrk --latency`` output; ``BenchmarkError`` unless every answer was 2xx."""
    if match := _NON_2XX.search(output):
        raise BenchmarkError(f"{match.group(1)} responses were not 2xx:\n{output}")
    if (match := _SOCKET.search(output)) and any(int(n) for n in match.groups()):
        raise BenchmarkError(f"socket errors ({match.group(0)}):\n{output}")
    rps, total = _RPS.search(output), _TOTAL.search(output)
    percentiles = {m.group(1): float(m.group(2)) * _UNIT_MS[m.group(3)] for m in _PERCENTILE.finditer(output)}
    if rps is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise BenchmarkError(f"could not parse wrk output:\n{output}")
    requests = int(total.group(1))
    if requests == 0:
        raise BenchmarkError(f"wrk completed no request:\n{output}")
    return WrkResult(float(rps.group(1)), percentiles["50"], percentiles["99"], requests)


def wrk_argv(url: str, *, threads: int, connections: int, duration: int, header: str | None) -> list[str]:
    # A generous timeout: a slow answer is still measured; only one that never comes is an error.
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency"]
    if header:
        argv += ["-H", header]
    return [*argv, url]


def cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by every thread of ``pid`` (Linux schedstat, nanosecond resolution)."""
    try:
        tasks = Path(f"/proc/{pid}/task")
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks.iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def run_wrk(argv: list[str], server: Server, duration: int) -> WrkResult:
    before = cpu_seconds(server.proc.pid)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"wrk did not finish: {shlex.join(argv)}") from exc
    if done.returncode != 0:
        raise BenchmarkError(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    if server.proc.poll() is not None:
        raise BenchmarkError(f"{server.label} server died during the run:\n{server.log_tail()}")
    after = cpu_seconds(server.proc.pid)
    result = parse_wrk(done.stdout)
    if before is None or after is None:
        return result
    return dataclasses.replace(result, cpu_ms_per_request=(after - before) * 1000 / result.requests)


# ---- report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    number: int
    order: str
    real: WrkResult
    bare: WrkResult

    @property
    def ratio(self) -> float:
        return self.real.rps / self.bare.rps


def _version(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _postgres_version(admin_url: str) -> str:
    try:
        with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except psycopg.Error:
        return "unknown"


def machine_facts(admin_url: str) -> dict[str, str]:
    packages = ("fastapi", "starlette", "pydantic", "uvicorn", "uvloop", "httptools", "sqlalchemy", "psycopg", "redis")
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgres": _postgres_version(admin_url),
        "wrk": _version(["wrk", "-v"]).split(" Copyright")[0],
        "packages": ", ".join(versions),
        "load_before": _loadavg(),
    }


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _median_cpu(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def figures_table(rounds: Sequence[Round]) -> list[str]:
    """Markdown rows: per round, then the median of each column (ratio = ratio of the medians)."""
    lines = [
        _row(["round", "order", "real req/s", "real p50 ms", "real p99 ms", "real CPU ms/req",
              "bare req/s", "bare p50 ms", "bare p99 ms", "bare CPU ms/req", "real/bare req/s"]),
        _row(["---:", ":---:", *["---:"] * 9]),
    ]  # fmt: skip
    for r in rounds:
        lines.append(
            _row([
                str(r.number), r.order,
                f"{r.real.rps:.0f}", f"{r.real.p50_ms:.2f}", f"{r.real.p99_ms:.2f}", _cpu(r.real.cpu_ms_per_request),
                f"{r.bare.rps:.0f}", f"{r.bare.p50_ms:.2f}", f"{r.bare.p99_ms:.2f}", _cpu(r.bare.cpu_ms_per_request),
                f"{r.ratio:.2f}",
            ])
        )  # fmt: skip
    med = statistics.median
    real_rps, bare_rps = med(r.real.rps for r in rounds), med(r.bare.rps for r in rounds)
    lines.append(
        _row([
            "**median**", "",
            f"**{real_rps:.0f}**", f"{med(r.real.p50_ms for r in rounds):.2f}",
            f"{med(r.real.p99_ms for r in rounds):.2f}", _cpu(_median_cpu(r.real.cpu_ms_per_request for r in rounds)),
            f"**{bare_rps:.0f}**", f"{med(r.bare.p50_ms for r in rounds):.2f}",
            f"{med(r.bare.p99_ms for r in rounds):.2f}", _cpu(_median_cpu(r.bare.cpu_ms_per_request for r in rounds)),
            f"**{real_rps / bare_rps:.2f}**",
        ])
    )  # fmt: skip
    return lines


def median_ratio(rounds: Sequence[Round]) -> float:
    return statistics.median(r.real.rps for r in rounds) / statistics.median(r.bare.rps for r in rounds)


def cpu_note(rounds: Sequence[Round]) -> str:
    real = _median_cpu(r.real.cpu_ms_per_request for r in rounds)
    bare = _median_cpu(r.bare.cpu_ms_per_request for r in rounds)
    if real is None or bare is None:
        return ""
    return (
        f"Server CPU per request (median): real {real:.2f} ms, bare {bare:.2f} ms, so bare/real = {bare / real:.2f}, "
        "the req/s ratio a CPU-bound server would reach; it is less disturbed by other load on the machine. "
    )


def figures_block(
    rounds: Sequence[Round], facts: dict[str, str], command: str, settings: dict[str, str], wrk_commands: Sequence[str]
) -> str:
    ratio = median_ratio(rounds)
    verdict = "met" if ratio >= TARGET_RATIO else "**not met**"
    hidden = {"RAYPLANE_DATABASE_URL": "<scratch db>", "RAYPLANE_REDIS_URL": "<redis>",
              "RAYPLANE_SECRET_KEY": "<random per run>", "RAYPLANE_DATA_DIR": "<tmp>"}  # fmt: skip
    shown = {k: hidden.get(k, v) for k, v in settings.items()}
    lines = [
        BLOCK_START,
        f"### Latest run: {facts['date']}",
        "",
        f"Command: `{command}`",
        "",
        f"- Machine: nproc {facts['nproc']} ({facts['cpu']}), {facts['os']}; load average before "
        f"{facts['load_before']}, after {facts['load_after']} (1/5/15 min; other work on the machine shows here)",
        f"- Python {facts['python']}, PostgreSQL {facts['postgres']}, {facts['wrk']}",
        f"- Packages: {facts['packages']}",
        "- Both servers: `python "
        + shlex.join(uvicorn_argv("<factory>", 0)[1:]).replace(" --port 0", " --port <free>")
        + "` (factories `api.app:app_from_env` and `benchmarks.bare_app:app_from_env`)",
        "- Shared server environment: " + ", ".join(f"`{k}={v}`" for k, v in sorted(shown.items())),
        "- Load: " + "; ".join(f"`{c}`" for c in wrk_commands) + " (order alternates per round: ABBA…)",
        "- Real: authenticated with an owner API key, reads another key of the same tenant. "
        "Bare: `SELECT id, name, prefix FROM api_keys WHERE id = :id`, no auth, no middleware.",
        "",
        *figures_table(rounds),
        "",
        f"Ratio real/bare of the median req/s: **{ratio:.2f}** (target ≥ {TARGET_RATIO:.2f}: {verdict}). "
        f"{cpu_note(rounds)}"
        f"Every response of every run was 2xx with no socket error "
        f"({sum(r.real.requests for r in rounds)} real and {sum(r.bare.requests for r in rounds)} bare requests).",
        BLOCK_END,
    ]
    return "\n".join(lines) + "\n"


RESULTS_HEADER = """\
# Benchmarks

## API read path (`benchmarks/api_read.py`)

`GET /v1/api-keys/{id}` on the real app against a bare FastAPI endpoint doing the same
single-row read on the same engine and pool. Target: real >= 0.5 x bare (requests/s).

"""


def write_results(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else RESULTS_HEADER
    start, end = text.find(BLOCK_START), text.find(BLOCK_END)
    if start != -1 and end > start:
        rest = text[end + len(BLOCK_END) :].lstrip("\n")
        text = text[:start] + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---- main -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default 15)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="rounds of real+bare (default 3)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of wrk warm-up per server (default 3)")
    p.add_argument("--pool-size", type=int, default=10, help="RAYPLANE_DB_POOL_SIZE for both (default 10)")
    p.add_argument("--max-overflow", type=int, default=10, help="RAYPLANE_DB_MAX_OVERFLOW for both (default 10)")
    p.add_argument(
        "--rate-limit-per-minute",
        type=int,
        default=0,
        help="RAYPLANE_RATE_LIMIT_PER_MINUTE; 0 (default) disables the limiter and its Redis round trip",
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="markdown file whose figures block is rewritten")
    p.add_argument("--no-write", action="store_true", help="print the figures only")
    args = p.parse_args(argv)
    for name in ("duration", "connections", "threads", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _display_command() -> str:
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO))
    except ValueError:
        shown = str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def benchmark(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        admin_url, redis_url = stack.enter_context(servers())
        print(f"postgres: {re.sub(r'//[^@/]*@', '//', admin_url)}  redis: {redis_url}", flush=True)
        facts = machine_facts(admin_url)
        database_url = stack.enter_context(scratch_database(admin_url, prefix="rayplane_bench"))
        upgrade(database_url)
        secret = secrets.token_urlsafe(32)
        seed = asyncio.run(_seed(database_url, secret.encode()))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rayplane-bench-")))

        settings = {
            "RAYPLANE_ENV": "test",
            "RAYPLANE_DATA_DIR": str(work / "data"),
            "RAYPLANE_DATABASE_URL": database_url,
            "RAYPLANE_REDIS_URL": redis_url,
            "RAYPLANE_SECRET_KEY": secret,
            "RAYPLANE_DB_POOL_SIZE": str(args.pool_size),
            "RAYPLANE_DB_MAX_OVERFLOW": str(args.max_overflow),
            "RAYPLANE_RATE_LIMIT_PER_MINUTE": str(args.rate_limit_per_minute),
            "RAYPLANE_LOG_LEVEL": "WARNING",
        }
        env = server_env(settings)
        real = stack.enter_context(running_server("real", "api.app:app_from_env", env, work))
        bare = stack.enter_context(running_server("bare", "benchmarks.bare_app:app_from_env", env, work))

        auth = {"Authorization": f"Bearer {seed.owner_key}"}
        real_path, bare_path = f"/v1/api-keys/{seed.read_key_id}", f"/bare/{seed.read_key_id}"
        wait_ready(real, "/readyz", {})
        wait_ready(real, real_path, auth)
        wait_ready(bare, bare_path, {})
        print(f"servers ready: real {real.base_url}  bare {bare.base_url}", flush=True)

        def argv_for(server: Server, duration: int) -> list[str]:
            is_real = server is real
            return wrk_argv(
                server.base_url + (real_path if is_real else bare_path),
                threads=args.threads,
                connections=args.connections,
                duration=duration,
                header=f"Authorization: Bearer {seed.owner_key}" if is_real else None,
            )

        if args.warmup > 0:
            for server in (real, bare):
                run_wrk(argv_for(server, args.warmup), server, args.warmup)
                print(f"warmed up {server.label} ({args.warmup}s)", flush=True)

        rounds: list[Round] = []
        for number in range(1, args.repeats + 1):
            order = (real, bare) if number % 2 else (bare, real)
            results: dict[str, WrkResult] = {}
            for server in order:
                results[server.label] = result = run_wrk(argv_for(server, args.duration), server, args.duration)
                print(
                    f"round {number} {server.label:4}: {result.rps:9.0f} req/s  "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms",
                    flush=True,
                )
            rounds.append(Round(number, "/".join(s.label for s in order), results["real"], results["bare"]))

        facts["load_after"] = _loadavg()
        print()
        print("\n".join(figures_table(rounds)))
        ratio = median_ratio(rounds)
        print(f"\nreal/bare (median req/s) = {ratio:.2f}  target >= {TARGET_RATIO:.2f}: "
              f"{'met' if ratio >= TARGET_RATIO else 'NOT MET'}")  # fmt: skip
        if not args.no_write:
            wrk_commands = [
                shlex.join(argv_for(real, args.duration))
                .replace(seed.owner_key, "<owner key>")
                .replace(real.base_url, "http://127.0.0.1:<port>")
                .replace(seed.read_key_id, "{id}"),
                shlex.join(argv_for(bare, args.duration))
                .replace(bare.base_url, "http://127.0.0.1:<port>")
                .replace(seed.read_key_id, "{id}"),
            ]
            block = figures_block(rounds, facts, _display_command(), settings, wrk_commands)
            write_results(args.results, block)
            print(f"figures written to {args.results}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Interruptible even when started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return benchmark(args)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; servers stopped and scratch database dropped", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code != 0:
            print(f"stopped ({exc.code}); servers stopped and scratch database dropped", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
