"""``ops.devlogs``: every line of a service reaches its rotating JSON file, the terminal gets
warnings and errors readably (everything when verbose), and nothing secret is kept raw."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from ops.devlogs import LogSink, parse_line, readable

KEY = "rpk_abcdefghijkl_" + "0123456789abcdefghijklmnopqrstuvwxyz0123"


def records(log_dir: Path, service: str) -> list[dict[str, object]]:
    """Every record of ``service``, oldest first, across its rotated files."""
    files = sorted(log_dir.glob(f"{service}.log*"), key=lambda p: -int(p.suffix[1:]) if p.suffix != ".log" else 0)
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_rotation_keeps_every_line_in_order(tmp_path: Path) -> None:
    sink = LogSink(tmp_path, io.StringIO())
    handler = sink._file("worker")
    assert isinstance(handler, RotatingFileHandler)
    handler.maxBytes, handler.backupCount = 2000, 50  # small files, enough of them to keep all
    for i in range(300):
        sink.line("worker", json.dumps({"event": "tick", "level": "info", "n": i}))
    sink.close()
    assert len(list(tmp_path.glob("worker.log.*"))) > 3  # it did rotate
    assert [r["n"] for r in records(tmp_path, "worker")] == list(range(300))


def test_a_childs_pipe_is_read_to_its_end(tmp_path: Path) -> None:
    terminal = io.StringIO()
    sink = LogSink(tmp_path, terminal)
    script = (
        "import json, sys\n"
        "for i in range(2000): print(json.dumps({'event': 'e', 'level': 'info', 'n': i}))\n"
        "print('Traceback (most recent call last):', file=sys.stderr)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    sink.pump("api", proc.stdout, "stdout")
    sink.pump("api", proc.stderr, "stderr")
    assert proc.wait(timeout=60) == 0
    sink.close(timeout=60)
    kept = records(tmp_path, "api")
    assert sorted(int(str(r["n"])) for r in kept if "n" in r) == list(range(2000))
    assert any(r["event"] == "Traceback (most recent call last):" and r["level"] == "warning" for r in kept)
    assert terminal.getvalue().count("\n") == 1  # the stderr line only; info stays in the file


def test_non_json_lines_are_wrapped_and_masked() -> None:
    out = parse_line(f"key {KEY}\n", "stdout")
    assert out["event"] == "key [redacted]"
    assert (out["level"], out["logger"]) == ("info", "stdout")
    assert parse_line("oops", "stderr")["level"] == "warning"
    assert parse_line('{"event": "x", "level": "error"}', "stderr") == {"event": "x", "level": "error"}


def test_readable_is_one_line_with_time_service_level_event_and_fields() -> None:
    record = {
        "event": "reconcile_failed",
        "level": "warning",
        "logger": "rayplane.clusters",
        "timestamp": "2026-01-02T03:04:05+00:00",
        "cluster_id": "c-1",
        "error": "no\nprovider",
        "exception": "Traceback …\nValueError: bad",
    }
    line = readable("worker", record)
    assert "\n" not in line
    assert line.split()[1:4] == ["worker", "WARNING", "reconcile_failed"]
    assert 'cluster_id=c-1 error="no\\nprovider" exception="ValueError: bad"' in line
    assert "{" not in line


def test_verbose_shows_info_and_quiet_does_not(tmp_path: Path) -> None:
    for verbose, expected in ((False, 1), (True, 2)):
        terminal = io.StringIO()
        sink = LogSink(tmp_path / str(verbose), terminal, verbose=verbose)
        sink.line("beat", '{"event": "tick", "level": "info"}')
        sink.line("beat", '{"event": "late", "level": "warning"}')
        sink.close()
        assert terminal.getvalue().count("\n") == expected


def test_stderr_of_children_goes_to_the_service_and_comes_back(tmp_path: Path) -> None:
    terminal = io.StringIO()
    sink = LogSink(tmp_path, terminal)
    before = os.fstat(2)
    with sink.stderr_of_children("redis"):
        proc = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', file=sys.stderr)"])
    assert proc.wait(timeout=60) == 0
    sink.close(timeout=60)
    assert os.fstat(2).st_ino == before.st_ino
    assert [r["event"] for r in records(tmp_path, "redis")] == ["ready"]
