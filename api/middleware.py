"""One pure-ASGI middleware for what every request needs.

In order: the security headers of ``api.headers`` on every answer; a request id
(``X-Request-ID``, accepted from the client when well-formed, else generated) on every
response and log line; NUL in the path, query or a data header refused (``api.nul``);
``415`` for a body that is not JSON (a zip on the upload route; an HTML form or a CSP report
on the console's pages);
Prometheus counters and latency by route template; one access-log line; an audit entry
for a mutating request that failed after authentication (successes are audited inside
their own transaction by ``api.deps.get_session``); and a problem+json 500 for anything
unhandled, so even that answer carries the request id and no stack trace.

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: it adds no task or stream
per request, which matters on the hot read path.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import MUTATING, audit_event
from api.headers import header, with_security_headers
from api.nul import NUL, scope_refusal
from api.problems import PROBLEM, domain_problem, problem_body
from api.state import AppState
from rayplane.audit.service import record
from rayplane.logs import ACCESS_LOGGER, access_line, get_logger

log = get_logger(ACCESS_LOGGER)

REQUESTS = Counter(
    "rayplane_http_requests_total", "HTTP requests by route template and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "rayplane_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# The labelled children, kept: ``labels()`` takes the metric's lock and builds a key tuple on
# every call. Route templates, methods and statuses are few, so this stays small.
_counted: dict[tuple[str, str, int], Any] = {}
_timed: dict[tuple[str, str], Any] = {}


def _observe(method: str, template: str, status: int, elapsed: float) -> None:
    counter = _counted.get((method, template, status))
    if counter is None:
        counter = _counted.setdefault((method, template, status), REQUESTS.labels(method, template, str(status)))
    timer = _timed.get((method, template))
    if timer is None:
        timer = _timed.setdefault((method, template), LATENCY.labels(method, template))
    counter.inc()
    timer.observe(elapsed)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)
# The one upload route takes a zip archive instead of JSON.
_ZIP_ROUTE = re.compile(r"^/v1/clusters/[^/]+/packages$")
_ZIP_TYPE = re.compile(r"^application/(zip|x-zip-compressed|octet-stream)\s*(;.*)?$", re.IGNORECASE)
# The console's pages (web/) take HTML forms, urlencoded, and the browsers' CSP reports.
_PAGE_ROUTE = re.compile(r"^/(console/|auth/|dev/|marketplace/landing|csp-report$)")
# The Ray dashboard behind web/dashboard.py takes whatever the dashboard takes, as it is.
_PROXY_ROUTE = re.compile(r"^/clusters/[^/]+/dashboard/")
_PAGE_TYPE = re.compile(r"^application/(x-www-form-urlencoded|csp-report|reports\+json|json)\s*(;.*)?$", re.IGNORECASE)


def _has_body(scope: Scope) -> bool:
    length = header(scope, b"content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return header(scope, b"transfer-encoding") is not None


def _wanted(accepted: re.Pattern[str]) -> str:
    if accepted is _PAGE_TYPE:
        return "an HTML form (application/x-www-form-urlencoded)"
    return "application/zip" if accepted is _ZIP_TYPE else "application/json"


def _accepted(path: str) -> re.Pattern[str]:
    if _ZIP_ROUTE.match(path):
        return _ZIP_TYPE
    return _PAGE_TYPE if _PAGE_ROUTE.match(path) else _JSON_TYPE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_holder = {"status": 500, "started": False}
        rid_header = (b"x-request-id", request_id.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                with_security_headers(scope, message, rid_header)
            await send(message)

        method = scope["method"]
        try:
            refusal = scope_refusal(scope)
            unsupported = self._unsupported_body(scope) if method in MUTATING else None
            if refusal is not None:
                await domain_problem(refusal, instance=scope.get("path", "").replace(NUL, ""))(
                    scope, receive, send_wrapper
                )
            elif unsupported is not None:
                await self._send_problem(send_wrapper, 415, unsupported, scope)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            log.error("unhandled_error", path=scope.get("path"), exc_info=exc)
            if not status_holder["started"]:
                await self._send_problem(
                    send_wrapper, 500, f"an internal error occurred; quote request id {request_id} to support", scope
                )
        finally:
            status = int(status_holder["status"])
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            _observe(method, template, status, elapsed)
            state = scope.get("state", {})
            principal = state.get("principal")
            # Reads that hand out a secret (``audit_read``) are audited like changes.
            audited_kind = method in MUTATING or state.get("audit_read")
            if audited_kind and status >= 400 and principal is not None and not state.get("audited"):
                await self._audit_failure(scope, status)
            access_line(
                request_id=request_id,
                method=method,
                path=scope.get("path", ""),
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                tenant_id=getattr(principal, "tenant_id", None),
            )

    @staticmethod
    def _unsupported_body(scope: Scope) -> str | None:
        """Why a mutating request's body is refused (415), or None: judged only for methods
        that take a body, so a read pays for none of these matches."""
        path = scope.get("path", "")
        if not _has_body(scope) or _PROXY_ROUTE.match(path):
            return None
        content_type = header(scope, b"content-type")
        accepted = _accepted(path)
        if content_type and accepted.match(content_type):
            return None
        return f"send the body as {_wanted(accepted)}, not {content_type or 'no content type'}"

    async def _send_problem(self, send: Send, status: int, detail: str, scope: Scope) -> None:
        body = json.dumps(problem_body(status, detail, instance=scope.get("path"))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _audit_failure(self, scope: Scope, status: int) -> None:
        app_state: Any = scope.get("app")
        state: AppState | None = getattr(getattr(app_state, "state", None), "rayplane", None)
        if state is None:
            return
        request = Request(scope)
        try:
            async with state.sessions() as session, session.begin():
                await record(session, scope["state"]["principal"], audit_event(request, status))
        except Exception as exc:
            log.error("audit_write_failed", exc_info=exc)
