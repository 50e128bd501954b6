"""What ``rayplane dev`` shows and keeps: the terminal holds the banner, then warnings and
errors one readable line each (``--verbose``: every line), never raw JSON; every service's
output is kept as JSON lines in ``<data_dir>/logs/<service>.log``.

The warning comes from a real child: a message on the worker's queue that is not a task
makes the Celery worker log ``Received and deleted unknown message`` at WARNING.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from tests.e2e.stack import Stack, wait_for
from tests.support.services import scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REDIS_DB = 13  # 7-12 are other e2e modules'
SERVICES = ("supervisor", "api", "worker", "beat")
# 12:03:04 worker     WARNING  event  key=value …
READABLE = re.compile(r"^\d\d:\d\d:\d\d (\S+) +([A-Z]+) +(.+)$")


def redis_url_for(base: str) -> str:
    return base.rsplit("/", 1)[0] + f"/{REDIS_DB}" if base.startswith("redis://") else base


def terminal(stack: Stack) -> list[str]:
    return stack.log.read_text().splitlines()


def readable_lines(stack: Stack) -> list[tuple[str, str, str]]:
    return [m.groups() for line in terminal(stack) if (m := READABLE.match(line))]  # type: ignore[misc]


def publish_unknown_message(stack: Stack) -> None:
    queue = stack.env["RAYPLANE_TASK_QUEUE"]
    exchange = Exchange(queue, type="direct")
    with Connection(stack.env["RAYPLANE_REDIS_URL"]) as conn:
        # Declared with the message: on Redis a message routed through an exchange whose
        # binding the worker has not declared yet is dropped, and the worker may still be
        # starting when the banner shows.
        conn.Producer().publish(
            {"not": "a task"},
            exchange=exchange,
            routing_key=queue,
            serializer="json",
            declare=[Queue(queue, exchange, routing_key=queue)],
        )


@pytest.fixture
def scratch(admin_db_url: str) -> Iterator[str]:
    with scratch_database(admin_db_url) as db:
        yield db


def test_terminal_shows_the_banner_and_readable_warnings_and_files_keep_json(
    scratch: str, redis_url: str, tmp_path: Path
) -> None:
    quiet = Stack(tmp_path / "quiet", scratch, redis_url_for(redis_url), None, queue="-quiet")
    quiet.workdir.mkdir()
    try:
        quiet.start()
        wait_for(lambda: "Press Ctrl-C to stop." in quiet.log.read_text(), 30, "the banner")
        publish_unknown_message(quiet)
        warned = wait_for(
            lambda: [g for g in readable_lines(quiet) if g[0] == "worker" and g[1] == "WARNING"],
            60,
            "the worker's warning on the terminal",
        )
        assert "Received and deleted unknown message" in warned[0][2]
        # Beat ticks every second (RAYPLANE_SWEEP_INTERVAL_SECONDS=1): info lines keep coming,
        # into the files only.
        logs = quiet.workdir / "data" / "logs"
        wait_for(lambda: (logs / "beat.log").stat().st_size > 0, 30, "beat's log file")
    finally:
        quiet.stop()

    text = quiet.log.read_text()
    assert "Rayplane control plane is running (dev mode)" in text
    assert f"Logs      {logs}/" in text
    assert f"in {quiet.workdir / 'data' / 'dev.env'}" in text
    lines = terminal(quiet)
    assert not [line for line in lines if line.lstrip().startswith("{")], text[-3000:]
    assert {level for _, level, _ in readable_lines(quiet)} <= {"WARNING", "ERROR", "CRITICAL"}, text[-3000:]
    for service in SERVICES:
        records = [json.loads(line) for line in (logs / f"{service}.log").read_text().splitlines()]
        assert records, service
        assert all("event" in r and "level" in r for r in records), service
    worker_events = [json.loads(line) for line in (logs / "worker.log").read_text().splitlines()]
    assert any(str(r["event"]).startswith("Received and deleted unknown message") for r in worker_events)
    assert "superuser" not in (logs / "worker.log").read_text()
    for service in SERVICES:
        assert "XDG_RUNTIME_DIR" not in (logs / f"{service}.log").read_text(), service

    # The same data dir again, with --verbose: the key's location once more, info lines readable.
    verbose = Stack(tmp_path / "quiet", scratch, redis_url_for(redis_url), None, queue="-quiet")
    verbose.log = tmp_path / "verbose.log"
    try:
        verbose.start("--verbose")
        # The banner is printed once the API is ready, after its first info lines.
        wait_for(lambda: "Press Ctrl-C to stop." in verbose.log.read_text(), 30, "the banner")
        wait_for(
            lambda: [g for g in readable_lines(verbose) if g[0] == "api" and g[1] == "INFO"],
            30,
            "the API's info lines on the terminal",
        )
    finally:
        verbose.stop()
    again = verbose.log.read_text()
    assert f"in {quiet.workdir / 'data' / 'dev.env'}" in again
    assert not [line for line in terminal(verbose) if line.lstrip().startswith("{")], again[-3000:]
    assert {service for service, _, _ in readable_lines(verbose)} >= {"supervisor", "api", "worker", "beat"}
