"""Refuse NUL (U+0000) in every string a request carries as data, before any SQL sees it.

Postgres text cannot hold NUL, and psycopg raises ``DataError`` when a parameter contains
one; left alone that was a 500 whose log line carried the statement's parameters. This
app-level dependency runs before each route's own dependencies and answers:

- a path parameter (always an id here): 404, as for any id that names nothing;
- a query parameter: 422 on ``query.<name>``;
- a header read as data (``Idempotency-Key``, ``If-Match``): 422 on ``header.<Name>``;
- a JSON body (routes that declare one; FastAPI has already parsed it, so this reads the
  cached document, never the wire): 422 on the first string (value or key) holding NUL,
  as ``body.<dotted path>``.

Routes that read their body themselves (the Marketplace webhook, zip uploads) check what
they store. ``api.problems`` maps any ``DataError`` that still reaches it to 422 as a last
resort, and the engines hide statement parameters (``rayplane.db.engine``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from rayplane.common.errors import InvalidInput, NotFound

NUL = "\x00"
MESSAGE = "must not contain the NUL character (U+0000)"
DATA_HEADERS = ("Idempotency-Key", "If-Match")


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


async def reject_nul(request: Request) -> None:
    """The app-level dependency; raises ``NotFound`` or ``InvalidInput`` as described above."""
    if any(NUL in str(value) for value in request.path_params.values()):
        raise NotFound(f"no resource at {request.url.path!r}")
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise InvalidInput.on(f"query.{name.replace(NUL, '')}", MESSAGE)
    for header in DATA_HEADERS:
        sent = request.headers.get(header)
        if sent is not None and NUL in sent:
            raise InvalidInput.on(f"header.{header}", MESSAGE)
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and route.body_field is not None and await request.body():
        try:
            document = await request.json()  # cached: FastAPI parsed it before dependencies ran
        except ValueError:
            return  # FastAPI has answered malformed JSON already; nothing to add
        field = nul_path(document)
        if field is not None:
            raise InvalidInput.on(field.replace(NUL, ""), MESSAGE)
