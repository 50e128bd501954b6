"""Read-path benchmark: the real ``GET /v1/api-keys/{id}`` against a bare FastAPI baseline.

    python benchmarks/api_read.py [--duration 15] [--connections 32] [--repeats 3]

Production defaults: the rate limiter is on (at a limit no run reaches, so it never
refuses but pays its Redis round trip), the log level is the default (INFO: one access
line per request), the principal cache has its default TTL. The load is spread over
``--keys`` API keys in ``--tenants`` tenants: each request presents one of the keys (a
wrk Lua script rotates them) and reads another key of the same tenant, so credential
verification and the limiter's buckets see many keys and tenants, not one hot entry.

What it does:

1. Finds Postgres and Redis the way the tests do (``RAYPLANE_DATABASE_URL`` /
   ``RAYPLANE_REDIS_URL``, else 127.0.0.1:5432 / :6379, else the embedded servers),
   creates a scratch database and runs the migrations on it.
2. Creates the tenants and their API keys through the real services; key ``i`` of a
   tenant reads key ``i + 1`` of the same tenant (the bare server reads the same rows).
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
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # ``python benchmarks/api_read.py`` puts benchmarks/ first, not the repo
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from benchmarks.api_read_report import (  # noqa: E402
    READY_TIMEOUT,
    RESULTS,
    STOP_TIMEOUT,
    TARGET_RATIO,
    BenchmarkError,
    Round,
    WrkResult,
    figures_block,
    figures_table,
    loadavg,
    machine_facts,
    median_ratio,
    run_wrk,
    uvicorn_argv,
    write_results,
    wrk_argv,
)
from rayplane.common.principal import Principal, Role  # noqa: E402
from rayplane.db.engine import async_session_factory, make_async_engine  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from rayplane.identity.service import create_api_key  # noqa: E402
from rayplane.procs import die_with_parent, stop_process_group  # noqa: E402
from rayplane.tenants.service import create_tenant  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

# ---- data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    pairs: list[tuple[str, str]]  # (whole key presented as the credential, id of the key it reads)


ROLES = (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER)


async def _seed(database_url: str, hashing_key: bytes, *, tenants: int, keys: int) -> Seed:
    engine = make_async_engine(database_url, pool_size=1, max_overflow=0)
    pairs: list[tuple[str, str]] = []
    try:
        async with async_session_factory(engine)() as session:
            for t in range(tenants):
                tenant = await create_tenant(session, name=f"bench-{t}-" + secrets.token_hex(4), display_name="Bench")
                system = Principal(tenant_id=tenant.id, role=Role.OWNER, actor_type="system", actor_id="system:bench")
                made = [
                    await create_api_key(session, system, hashing_key, name=f"bench {i}", role=ROLES[i % len(ROLES)])
                    for i in range(t, keys, tenants)  # keys spread evenly over the tenants
                ]
                pairs += [(raw, made[(i + 1) % len(made)][0].id) for i, (_, raw) in enumerate(made)]
            await session.commit()
    finally:
        await engine.dispose()
    return Seed(pairs)


def rotation_script(path: Path, requests: list[tuple[str, str]]) -> Path:
    """A wrk Lua script sending ``(path, Authorization)`` pairs in turn, each thread from its own offset."""
    rows = ",\n".join(f'  {{"{p}", "{a}"}}' for p, a in requests)
    path.write_text(
        f"local reqs = {{\n{rows}\n}}\n"
        "local counter = 1\n"
        "local i = 0\n"
        "setup = function(thread) thread:set('offset', counter * 7919) counter = counter + 1 end\n"
        "init = function(args) i = offset or 0 end\n"
        "request = function()\n"
        "  i = i % #reqs + 1\n"
        "  return wrk.format('GET', reqs[i][1], {['Authorization'] = reqs[i][2]})\n"
        "end\n"
    )
    return path


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


def same_answer(real: Server, bare: Server, key: str, key_id: str) -> None:
    """Both servers answer the same JSON document for the key ``key_id`` (the baseline does the
    same data work as the real endpoint), else ``BenchmarkError``."""
    with httpx.Client(timeout=5.0) as client:
        ours = client.get(f"{real.base_url}/v1/api-keys/{key_id}", headers={"Authorization": f"Bearer {key}"})
        theirs = client.get(f"{bare.base_url}/bare/{key_id}")
    if ours.status_code != 200 or theirs.status_code != 200 or ours.json() != theirs.json():
        raise BenchmarkError(
            f"the baseline does not answer what the real endpoint answers:\n  real {ours.status_code} {ours.text}"
            f"\n  bare {theirs.status_code} {theirs.text}"
        )


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
        default=1_000_000_000,
        help="RAYPLANE_RATE_LIMIT_PER_MINUTE (default 1e9: on, never refusing; 0 turns the limiter off)",
    )
    p.add_argument("--log-level", default=None, help="RAYPLANE_LOG_LEVEL (default: unset, the production default)")
    p.add_argument("--tenants", type=int, default=5, help="tenants the keys are spread over (default 5)")
    p.add_argument("--keys", type=int, default=200, help="API keys presented in turn (default 200)")
    p.add_argument("--results", type=Path, default=RESULTS, help="markdown file whose figures block is rewritten")
    p.add_argument("--no-write", action="store_true", help="print the figures only")
    args = p.parse_args(argv)
    for name in ("duration", "connections", "threads", "repeats", "tenants"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.keys < 2 * args.tenants:
        p.error("--keys must be at least twice --tenants (each key reads another of its tenant)")
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
        seed = asyncio.run(_seed(database_url, secret.encode(), tenants=args.tenants, keys=args.keys))
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
        }
        if args.log_level:
            settings["RAYPLANE_LOG_LEVEL"] = args.log_level
        env = server_env(settings)
        real = stack.enter_context(running_server("real", "api.app:app_from_env", env, work))
        bare = stack.enter_context(running_server("bare", "benchmarks.bare_app:app_from_env", env, work))

        scripts = {
            "real": rotation_script(work / "real.lua", [(f"/v1/api-keys/{i}", f"Bearer {k}") for k, i in seed.pairs]),
            "bare": rotation_script(work / "bare.lua", [(f"/bare/{i}", f"Bearer {k}") for k, i in seed.pairs]),
        }
        first_key, first_id = seed.pairs[0]
        wait_ready(real, "/readyz", {})
        wait_ready(real, f"/v1/api-keys/{first_id}", {"Authorization": f"Bearer {first_key}"})
        wait_ready(bare, f"/bare/{first_id}", {})
        same_answer(real, bare, first_key, first_id)
        print(f"servers ready: real {real.base_url}  bare {bare.base_url}", flush=True)

        def argv_for(server: Server, duration: int) -> list[str]:
            return wrk_argv(
                server.base_url,
                threads=args.threads,
                connections=args.connections,
                duration=duration,
                script=scripts[server.label],
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

        facts["load_after"] = loadavg()
        print()
        print("\n".join(figures_table(rounds)))
        ratio = median_ratio(rounds)
        print(f"\nreal/bare (median req/s) = {ratio:.2f}  target >= {TARGET_RATIO:.2f}: "
              f"{'met' if ratio >= TARGET_RATIO else 'NOT MET'}")  # fmt: skip
        if not args.no_write:
            wrk_commands = [
                shlex.join(argv_for(server, args.duration))
                .replace(server.base_url, "http://127.0.0.1:<port>")
                .replace(str(work), "<tmp>")
                for server in (real, bare)
            ]
            note = (
                f"Real: each request presents one of {len(seed.pairs)} API keys of {args.tenants} tenants in turn "
                "(all four roles) and reads another key of the same tenant."
            )
            block = figures_block(rounds, facts, _display_command(), settings, wrk_commands, note)
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
