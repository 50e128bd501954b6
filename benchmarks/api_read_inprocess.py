"""The read path without sockets: the CPU each app spends per ``GET``, with ablations and a profile.

    python benchmarks/api_read_inprocess.py [--requests 4000] [--rounds 6] [--concurrency 32]
                                            [--variants shipped,no-limiter,warning-logs] [--profile]

``benchmarks/api_read.py`` measures whole servers under ``wrk``; its figures include uvicorn's
HTTP parsing, the kernel's sockets and whatever else the machine is doing. This script calls
the same two ASGI apps in one process, so it can answer narrower questions with less noise:

- how much CPU one read costs in the real app and in the bare baseline (``process_time`` over
  ``--requests`` reads, ``--concurrency`` at a time on the same event loop uvicorn uses);
- what each part of the path costs, by turning it off **through settings only**, never by
  patching code: ``no-limiter`` (``RAYPLANE_RATE_LIMIT_PER_MINUTE=0``), ``warning-logs``
  (``RAYPLANE_LOG_LEVEL=WARNING``: no access line), ``no-auth-cache``
  (``RAYPLANE_AUTH_CACHE_SECONDS=0``: every request verifies its key in Postgres);
- where the time goes (``--profile``: cProfile of the shipped app, top functions by own time).

Each variant is its own app with its own state, built like ``uvicorn --factory`` builds it,
and the rounds alternate between variants so drift hits them alike. The data is the same as
``api_read.py``'s: ``--keys`` API keys in ``--tenants`` tenants, each request presenting one
key and reading another of the same tenant. Log lines go to a file, as a server's would.
Figures are printed, never written to RESULTS.md by this script (quote them with the command).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import uvloop  # noqa: E402

from benchmarks.api_read import _seed, server_env  # noqa: E402
from rayplane.db.migrate import upgrade  # noqa: E402
from tests.support.services import scratch_database, servers  # noqa: E402

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

VARIANTS: dict[str, dict[str, str]] = {
    "shipped": {},
    "no-limiter": {"RAYPLANE_RATE_LIMIT_PER_MINUTE": "0"},
    "warning-logs": {"RAYPLANE_LOG_LEVEL": "WARNING"},
    "no-auth-cache": {"RAYPLANE_AUTH_CACHE_SECONDS": "0"},
}


@dataclass(frozen=True)
class Call:
    path: str
    authorization: str | None


def _scope(call: Call) -> dict[str, Any]:
    headers = [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")]
    if call.authorization:
        headers.append((b"authorization", call.authorization.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": call.path,
        "raw_path": call.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _one(app: ASGIApp, call: Call) -> int:
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(call), receive, send)
    return status


async def _drive(app: ASGIApp, calls: Sequence[Call], requests: int, concurrency: int) -> float:
    """CPU seconds of this process per request, for ``requests`` reads ``concurrency`` at a time."""
    counter = iter(range(requests))
    failures: list[str] = []

    async def worker() -> None:
        for i in counter:
            call = calls[i % len(calls)]
            status = await _one(app, call)
            if status != 200:
                failures.append(f"{call.path}: {status}")

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    spent = time.process_time() - started
    if failures:
        raise RuntimeError(f"{len(failures)} reads were not 200, e.g. {failures[0]}")
    return spent / requests


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


async def _lifespan(app: Any, stack: AsyncExitStack) -> None:
    """Run the app's lifespan startup now and its shutdown when ``stack`` closes."""
    context = app.router.lifespan_context(app)
    await stack.enter_async_context(context)


def _build(factory: Callable[[], Any], env: dict[str, str], log_stream: TextIO) -> Any:
    from rayplane.settings import get_settings

    with _environment(env):
        get_settings.cache_clear()
        app = factory()
    get_settings.cache_clear()
    # The factory configured logging to stderr; a server's lines go to its log file.
    from rayplane.logs import configure_logging

    configure_logging(env.get("RAYPLANE_LOG_LEVEL", "INFO"), "json", stream=log_stream)
    return app


async def _run(args: argparse.Namespace, env: dict[str, str], pairs: list[tuple[str, str]], work: Path) -> None:
    from api.app import app_from_env
    from benchmarks.bare_app import app_from_env as bare_from_env

    real_calls = [Call(f"/v1/api-keys/{i}", f"Bearer {k}") for k, i in pairs]
    bare_calls = [Call(f"/bare/{i}", None) for _, i in pairs]
    log_stream = (work / "app.log").open("w")
    results: dict[str, list[float]] = {}
    async with AsyncExitStack() as stack:
        apps: dict[str, tuple[Any, list[Call]]] = {}
        bare = _build(bare_from_env, env, log_stream)
        await _lifespan(bare, stack)
        apps["bare"] = (bare, bare_calls)
        for name in args.variants:
            # Each variant's app logs under its own level; the stream is reconfigured per round.
            app = _build(app_from_env, {**env, **VARIANTS[name]}, log_stream)
            await _lifespan(app, stack)
            apps[name] = (app, real_calls)
        names = list(apps)
        for name in names:  # warm-up: pools filled, caches primed, code paths imported
            app, calls = apps[name]
            await _drive(app, calls, min(args.requests, 1000), args.concurrency)
        for number in range(args.rounds):
            order = names if number % 2 == 0 else names[::-1]
            for name in order:
                app, calls = apps[name]
                level = VARIANTS.get(name, {}).get("RAYPLANE_LOG_LEVEL", "INFO")
                from rayplane.logs import configure_logging

                configure_logging(level, "json", stream=log_stream)
                results.setdefault(name, []).append(await _drive(app, calls, args.requests, args.concurrency))
        if args.profile:
            from rayplane.logs import configure_logging

            for name in names:
                app, calls = apps[name]
                configure_logging(VARIANTS.get(name, {}).get("RAYPLANE_LOG_LEVEL", "INFO"), "json", stream=log_stream)
                profiler = cProfile.Profile()
                profiler.enable()
                await _drive(app, calls, args.requests, args.concurrency)
                profiler.disable()
                stats = pstats.Stats(profiler)
                print(f"\n== {name}: own time by package, µs per read (under cProfile, so inflated)")
                for group, seconds in _by_package(stats):
                    print(f"  {group:<28}{seconds / args.requests * 1e6:8.1f}")
                if args.profile_lines:
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(args.profile_sort).print_stats(args.profile_lines)
                    print(out.getvalue())
    log_stream.close()
    _report(args, results)


_GROUPS = (
    ("fastapi/", "fastapi"),
    ("starlette/", "starlette"),
    ("sqlalchemy/", "sqlalchemy"),
    ("psycopg", "psycopg"),
    ("structlog/", "structlog"),
    ("pydantic", "pydantic"),
    ("redis/", "redis"),
    ("prometheus_client/", "prometheus_client"),
    ("opentelemetry/", "opentelemetry"),
    ("/api/", "api (Rayplane's adapter)"),
    ("/rayplane/", "rayplane (the core)"),
    ("/benchmarks/", "benchmarks (the harness)"),
    ("asyncio/", "asyncio"),
)


def _by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own (not cumulative: coroutines' cumulative times are not meaningful) time per group."""
    totals: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        group = next((label for marker, label in _GROUPS if marker in filename), None)
        if group is None:
            group = "builtins and C" if filename == "~" else "other Python"
            if filename == "~" and ("hmac" in function or "json" in function or "uuid" in function):
                group = f"C: {function.strip('<>').split()[-1][:20]}"
        totals[group] = totals.get(group, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def _report(args: argparse.Namespace, results: dict[str, list[float]]) -> None:
    bare = statistics.median(results["bare"])
    print(f"\nCPU per read, median of {args.rounds} rounds of {args.requests} reads ({args.concurrency} at a time):")
    print(f"{'app':<16}{'ms/read':>10}{'min':>9}{'max':>9}{'bare/app':>10}")
    table = {}
    for name, values in results.items():
        median = statistics.median(values)
        table[name] = {"ms": round(median * 1000, 4), "bare_over_app": round(bare / median, 3)}
        print(
            f"{name:<16}{median * 1000:>10.4f}{min(values) * 1000:>9.4f}{max(values) * 1000:>9.4f}"
            f"{bare / median:>10.2f}"
        )
    print(json.dumps(table))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=4000, help="reads per app per round (default 4000)")
    p.add_argument("--rounds", type=int, default=6, help="alternating rounds (default 6)")
    p.add_argument("--concurrency", type=int, default=32, help="reads in flight at once (default 32)")
    p.add_argument("--tenants", type=int, default=5)
    p.add_argument("--keys", type=int, default=200)
    p.add_argument(
        "--variants",
        default="shipped",
        help=f"comma-separated, from {', '.join(VARIANTS)} (default: shipped)",
    )
    p.add_argument("--profile", action="store_true", help="also profile the first variant (cProfile)")
    p.add_argument("--profile-lines", type=int, default=35)
    p.add_argument("--profile-sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    args = p.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack:
        admin_url, redis_url = stack.enter_context(servers())
        database_url = stack.enter_context(scratch_database(admin_url, prefix="rayplane_bench"))
        upgrade(database_url)
        secret = secrets.token_urlsafe(32)
        seed = asyncio.run(_seed(database_url, secret.encode(), tenants=args.tenants, keys=args.keys))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rayplane-bench-")))
        env = server_env(
            {
                "RAYPLANE_ENV": "test",
                "RAYPLANE_DATA_DIR": str(work / "data"),
                "RAYPLANE_DATABASE_URL": database_url,
                "RAYPLANE_REDIS_URL": redis_url,
                "RAYPLANE_SECRET_KEY": secret,
                "RAYPLANE_DB_POOL_SIZE": "10",
                "RAYPLANE_DB_MAX_OVERFLOW": "10",
                "RAYPLANE_RATE_LIMIT_PER_MINUTE": "1000000000",
            }
        )
        uvloop.run(_run(args, env, seed.pairs, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
