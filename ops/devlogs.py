"""Where the output of ``rayplane dev`` goes: files for the record, the terminal for a human.

Contract: every line a service writes (API, worker, beat, the embedded Redis, the
supervisor itself) is appended, as one JSON object, to ``<data_dir>/logs/<service>.log``,
rotated by size (``MAX_BYTES``, ``BACKUPS`` older files kept). A line that is not JSON (a
traceback before logging is set up, Celery's start-up banner, a C server's own message) is
wrapped as ``{"event": <text>, "level": "info" (stdout) | "warning" (stderr), "logger":
"stdout" | "stderr"}``, with API keys and tokens masked. The terminal gets warnings and errors
only, one readable line each (time, service, level, event, key fields); with ``verbose`` it
gets every line.

Why the supervisor writes the files rather than each service through its own
``RotatingFileHandler``: a handler in the child sees only what goes through ``logging``, so
a crash before logging is configured, or anything printed or written by C code, would be lost;
and the Celery worker forks pool processes that would each rotate the same file, which
``RotatingFileHandler`` does not support (lines are lost or land in a rotated-away file). Here
each file has exactly one writer, a thread of the supervisor reading the child's pipe, so no
line is dropped; the writer is the standard library's ``RotatingFileHandler`` all the same.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TextIO

from rayplane.logs import mask

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}
# Shown in the line's head or not worth a terminal line; everything else is a key field.
_HEAD = {"event", "level", "timestamp", "logger", "exception", "request_id"}
_MAX_VALUE = 120


def parse_line(text: str, stream: str) -> dict[str, Any]:
    """One line of a service's output as a log record (JSON as is, anything else wrapped)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            record = json.loads(stripped)
        except ValueError:
            pass
        else:
            if isinstance(record, dict):
                return record
    return {
        "event": mask(stripped),
        "level": "warning" if stream == "stderr" else "info",
        "logger": stream,
        "timestamp": datetime.now().astimezone().isoformat(),
    }


def _clock(record: dict[str, Any]) -> str:
    try:
        return datetime.fromisoformat(str(record["timestamp"])).astimezone().strftime("%H:%M:%S")
    except (KeyError, ValueError):
        return datetime.now().strftime("%H:%M:%S")


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1] + "…"
    # Quoted (with escapes) when it holds whitespace, so a newline cannot break the line.
    return json.dumps(text, ensure_ascii=False) if (not text or any(c.isspace() for c in text)) else text


def readable(service: str, record: dict[str, Any]) -> str:
    """``12:03:04 worker   WARNING  cluster_failed  cluster=c-1 reason="…"`` (no newline).

    The key fields follow the event in the order the service logged them; a traceback is cut
    to its last line (the whole of it is in the service's file).
    """
    level = str(record.get("level", "info")).upper()
    # A multi-line message (Celery's, a traceback's) stays on one line; the file has it whole.
    event = " ".join(str(record.get("event", "")).split())
    if len(event) > 2 * _MAX_VALUE:
        event = event[: 2 * _MAX_VALUE - 1] + "…"
    parts = [f"{_clock(record)} {service:<10} {level:<8} {event}"]
    parts += [f"{k}={_value(v)}" for k, v in record.items() if k not in _HEAD]
    exception = str(record.get("exception") or "").strip()
    if exception:
        parts.append(f"exception={_value(exception.splitlines()[-1])}")
    return "  ".join(parts[:1]) + ("  " + " ".join(parts[1:]) if len(parts) > 1 else "")


class LogSink:
    """Routes lines of named services to their rotating files and (filtered) to the terminal."""

    def __init__(self, log_dir: Path, terminal: TextIO, *, verbose: bool = False) -> None:
        self.log_dir = log_dir
        self.terminal = terminal
        self.verbose = verbose
        self._files: dict[str, logging.Handler] = {}
        # Re-entrant: a signal handler that logs may run while this thread holds the lock.
        self._lock = threading.RLock()
        self._threads: list[threading.Thread] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def _file(self, service: str) -> logging.Handler:
        with self._lock:
            handler = self._files.get(service)
            if handler is None:
                handler = logging.handlers.RotatingFileHandler(
                    self.log_dir / f"{service}.log", maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
                )
                handler.setFormatter(logging.Formatter("%(message)s"))
                self._files[service] = handler
            return handler

    def line(self, service: str, text: str, stream: str = "stderr") -> None:
        """Record one line of ``service``'s output (``stream``: where the service wrote it)."""
        if not text.strip():
            return
        record = parse_line(text, stream)
        self._file(service).handle(logging.makeLogRecord({"msg": json.dumps(record, default=str)}))
        shown = _LEVELS.get(str(record.get("level", "info")).lower(), 20) >= logging.WARNING
        if self.verbose or shown:
            with self._lock:
                self.terminal.write(readable(service, record) + "\n")
                self.terminal.flush()

    def pump(self, service: str, pipe: IO[bytes], stream: str) -> None:
        """Read ``pipe`` to its end in a thread of its own, one line at a time.

        The service's file is created now, so each service has one even while it says nothing.
        """
        self._file(service)

        def read() -> None:
            with pipe:
                for raw in iter(pipe.readline, b""):
                    self.line(service, raw.decode("utf-8", "replace"), stream)

        thread = threading.Thread(target=read, name=f"log-{service}-{stream}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stream(self, service: str) -> TextIO:
        """A text stream whose lines go to ``service`` (for the supervisor's own logging)."""
        return _LineStream(self, service)  # type: ignore[return-value]

    @contextmanager
    def stderr_of_children(self, service: str) -> Iterator[None]:
        """While open, processes started here inherit a stderr that goes to ``service``.

        The embedded servers are started by ``rayplane.embedded`` with our stderr as theirs;
        pointing fd 2 at a pipe for the duration of their start keeps that module as it is
        and still gives each server a file of its own. Our own stderr is back on exit.
        """
        read_end, write_end = os.pipe()
        saved = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            # The pipe ends when the last server holding its write end exits.
            self.pump(service, os.fdopen(read_end, "rb"), "stderr")

    def close(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for the readers to drain what the stopped services wrote, then close."""
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            for handler in self._files.values():
                handler.close()


class _LineStream:
    """The ``write``/``flush`` a ``logging.StreamHandler`` needs, splitting into lines."""

    def __init__(self, sink: LogSink, service: str) -> None:
        self.sink = sink
        self.service = service
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self.sink.line(self.service, line)
        return len(text)

    def flush(self) -> None:
        pass
