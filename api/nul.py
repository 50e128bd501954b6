"""Refuse NUL (U+0000) in every string a request carries as data, before any SQL sees it.

Postgres text cannot hold NUL, and psycopg raises ``DataError`` when a parameter contains
one; left alone that was a 500 whose log line carried the statement's parameters. Every
request is checked where it costs least:

- ``scope_refusal``, called by ``api.middleware`` on every request before routing, reads the
  raw ASGI scope: NUL in the path (a path parameter is always an id here) answers 404, as for
  any id that names nothing; in a query parameter, 422 on ``query.<name>``; in a header read
  as data (``Idempotency-Key``, ``If-Match``), 422 on ``header.<Name>``. A read pays two
  substring tests, not a FastAPI dependency.
- ``CheckedRoute``, the route class of every router, gives each route that takes a request
  body (every mutating method) the ``reject_body_nul`` dependency, which runs before the
  route's own dependencies: FastAPI has parsed the JSON body already, so it reads the cached
  document, never the wire, and answers 422 on the first string (value or key) holding NUL,
  as ``body.<dotted path>``.

Routes that read their body themselves (the Marketplace webhook, zip uploads) check what
they store. ``api.problems`` maps any ``DataError`` that still reaches it to 422 as a last
resort, and the engines hide statement parameters (``rayplane.db.engine``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from starlette.types import Scope

from rayplane.common.errors import DomainError, InvalidInput, NotFound

NUL = "\x00"
MESSAGE = "must not contain the NUL character (U+0000)"
DATA_HEADERS = ("Idempotency-Key", "If-Match")
_RAW_DATA_HEADERS = {name.lower().encode(): name for name in DATA_HEADERS}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def nul_path(document: Any, path: str = "body") -> str | None:
    """The dotted path of the first string in a JSON document that holds NUL, else None."""
    if isinstance(document, str):
        return path if NUL in document else None
    if isinstance(document, dict):
        for key, value in document.items():
            if NUL in str(key):
                return path
            found = nul_path(value, f"{path}.{key}")
            if found is not None:
                return found
    if isinstance(document, list):
        for i, value in enumerate(document):
            found = nul_path(value, f"{path}.{i}")
            if found is not None:
                return found
    return None


def scope_refusal(scope: Scope) -> DomainError | None:
    """The refusal for NUL in the path, the query or a data header of ``scope``, else None."""
    path: str = scope.get("path", "")
    if NUL in path:
        return NotFound(f"no resource at {path.replace(NUL, '')!r}")
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if NUL in name or NUL in value:
                return InvalidInput.on(f"query.{name.replace(NUL, '')}", MESSAGE)
    for raw_name, raw_value in scope.get("headers", ()):
        if b"\x00" in raw_value and raw_name in _RAW_DATA_HEADERS:
            return InvalidInput.on(f"header.{_RAW_DATA_HEADERS[raw_name]}", MESSAGE)
    return None


async def reject_body_nul(request: Request) -> None:
    """The dependency of routes with a body; raises ``InvalidInput`` as described above."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and route.body_field is not None and await request.body():
        try:
            document = await request.json()  # cached: FastAPI parsed it before dependencies ran
        except ValueError:
            return  # FastAPI has answered malformed JSON already; nothing to add
        field = nul_path(document)
        if field is not None:
            raise InvalidInput.on(field.replace(NUL, ""), MESSAGE)


class CheckedRoute(APIRoute):
    """An ``APIRoute`` that checks the body of a mutating method for NUL (see above)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: set[str] | list[str] | None = None,
        dependencies: Sequence[DependsParam] | None = None,
        **kwargs: Any,
    ) -> None:
        if methods is not None and _BODY_METHODS & {m.upper() for m in methods}:
            dependencies = [Depends(reject_body_nul), *(dependencies or ())]
        super().__init__(path, endpoint, methods=methods, dependencies=dependencies, **kwargs)
