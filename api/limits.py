"""Body limits, with authentication before any of a body is read; and ``OPTIONS`` answers.

A pure ASGI middleware inside CORS (so preflights are answered by ``CORSMiddleware`` as
before). For a request that carries a body (``Content-Length`` above 0, or
``Transfer-Encoding``) it hands the app a ``receive`` that, on its first call (when the
router has matched the route and before a byte of the body is returned):

1. takes the route's limit (``ROUTE_LIMITS`` by route name, else ``RAYPLANE_MAX_BODY_BYTES``)
   and refuses a ``Content-Length`` over it with 413, so nothing is read;
2. authenticates, when the route needs a caller (it depends on ``api.deps.get_principal``)
   and none is known yet, through ``api.authguard`` in a session of its own (401, 403, 429,
   503), leaving the principal in the request state where ``get_principal`` takes it. It has
   to happen here: FastAPI reads and parses a declared body *before* it solves the route's
   dependencies. Routes without a caller (the Marketplace's landing-page calls and webhook)
   authenticate in their own ways and get the size limit only;
3. counts the body as the app reads it: past the limit it raises ``BodyTooLarge`` (413), so
   a chunked body is cut where it crossed the limit, never buffered whole.

A body the app never reads (a route without one, a 404) is never read at all. What the first
call raises is an ``HTTPException`` (``Refused`` wraps the others), because FastAPI's body
parsing passes those through untouched and turns anything else into a 400; ``install``
registers the handler that answers a ``Refused`` with the app's own handler for its cause,
so a 401 or a 503 from here is the same problem+json as from a route. Starlette's
``RequestBodyLimitMiddleware`` counts the same way, but with one limit set at import time,
in plain text, and cannot authenticate first.

``OPTIONS`` on a path of the API that is not a CORS preflight answers 204 with ``Allow``
listing every method of that path in the OpenAPI document (the router alone answers 405
with the methods of the first route it tried).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import authguard
from api.deps import get_principal
from api.headers import header
from api.state import AppState
from rayplane.settings import Settings

#: Routes (by name) whose body limit is not the JSON default.
ROUTE_LIMITS: dict[str, Callable[[Settings], int]] = {
    "jobs.upload_package": lambda settings: settings.max_package_bytes,
}


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over this endpoint's limit of {_size(limit)}")


class Refused(HTTPException):
    """An error while authenticating ahead of the body, carried past FastAPI's body parsing."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(500)
        self.cause = cause


def _content_length(scope: Scope) -> int | None:
    raw = header(scope, b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None  # the server refuses a malformed one before the app sees it


def _needs_caller(dependant: Dependant) -> bool:
    return any(d.call is get_principal or _needs_caller(d) for d in dependant.dependencies)


def _app_handler(app: Any, exc: Exception) -> Callable[..., Any] | None:
    """The app's handler for ``exc``, not counting the catch-all one for ``Exception``."""
    handlers: dict[Any, Callable[..., Any]] = getattr(app, "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    handler = _app_handler(request.app, exc.cause)
    if handler is None:
        raise exc.cause  # unexpected: the request-context middleware answers 500
    response: Response = await handler(request, exc.cause)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(Refused, _refused)


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._paths: list[tuple[re.Pattern[str], list[str]]] | None = None
        self._callers: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method") is None:
            allowed = self._allowed(scope)
            if allowed:
                await Response(status_code=204, headers={"Allow": ", ".join(allowed)})(scope, receive, send)
                return
        length = _content_length(scope)
        state: AppState | None = getattr(getattr(scope.get("app"), "state", None), "rayplane", None)
        if state is None or not ((length or 0) > 0 or header(scope, b"transfer-encoding") is not None):
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._gated(scope, receive, state, length), send)

    def _gated(self, scope: Scope, receive: Receive, state: AppState, length: int | None) -> Receive:
        limit: int | None = None  # known at the first call, once the router has chosen the route
        received = 0

        async def gated() -> Message:
            nonlocal limit, received
            if limit is None:
                route = scope.get("route")
                name = getattr(route, "name", None)
                limit = ROUTE_LIMITS[name](state.settings) if name in ROUTE_LIMITS else state.settings.max_body_bytes
                if length is not None and length > limit:
                    raise BodyTooLarge(limit)
                if self._needs_caller(route) and "principal" not in scope.get("state", {}):
                    await self._authenticate(state, scope)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return gated

    def _needs_caller(self, route: Any) -> bool:
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            return False
        needs = self._callers.get(id(route))
        if needs is None:
            needs = self._callers[id(route)] = _needs_caller(dependant)
        return needs

    async def _authenticate(self, state: AppState, scope: Scope) -> None:
        client = scope.get("client")
        try:
            async with state.sessions() as session:
                principal = await authguard.authenticate(
                    state, session, header(scope, b"authorization"), client[0] if client else None
                )
                await session.commit()  # authenticating may note the key's last use
        except Exception as exc:
            raise Refused(exc) from exc
        scope.setdefault("state", {})["principal"] = principal

    def _allowed(self, scope: Scope) -> list[str]:
        if self._paths is None:
            app = scope.get("app")
            paths: dict[str, Any] = app.openapi().get("paths", {}) if isinstance(app, FastAPI) else {}
            # The most specific template first (``/{id}:stop`` before ``/{id}``), as the
            # routes are declared for the router.
            ordered = sorted(paths.items(), key=lambda p: (p[0].count("{"), -len(p[0])))
            self._paths = [
                (compile_path(path)[0], sorted({m.upper() for m in item} | {"OPTIONS"})) for path, item in ordered
            ]
        path = scope.get("path", "")
        return next((methods for pattern, methods in self._paths if pattern.match(path)), [])


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to an OpenAPI document what this module, ``api.outage`` and ``api.problems`` answer
    on every route: 400 and 413 where a request has a body, 422 as problem+json, 503 (with
    ``Retry-After``) everywhere. Idempotent."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    retry = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                responses.setdefault(
                    "413", {"description": "The body is over this endpoint's limit", "content": problem}
                )
                responses.setdefault("400", {"description": "The body could not be parsed", "content": problem})
            if "422" in responses:
                # FastAPI documents its own validation answer as application/json; ours is a problem.
                responses["422"]["content"] = problem
            unavailable = responses.setdefault(
                "503", {"description": "The database or the broker is unavailable; retry later", "content": problem}
            )
            unavailable.setdefault("headers", retry)
            if "429" in responses:
                responses["429"].setdefault("headers", retry)
    return schema
