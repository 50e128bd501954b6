"""Headers every answer carries, errors included.

- ``X-Content-Type-Options: nosniff`` on every answer, so a browser never reads a JSON or
  problem+json body as something it could run.
- ``Cache-Control: no-store`` on every answer of a route in ``SECRET_ROUTES``: answers that
  carry a secret (a new API key) must not be kept by a browser, a proxy or a CLI's HTTP cache.
  Keyed by route name so it holds for every answer of the route, replays and errors included.
  ``tests/api/test_headers.py`` fails when a response model gains a secret-looking field
  (``key``, ``secret``, ``token``, ``password``) on a route that is not listed here.

``with_security_headers`` is applied by ``api.middleware.RequestContextMiddleware`` to the
start of every answer that passes it, its own 415 and 500 answers included (it used to be a
middleware of its own, outside that one: one ASGI layer and one header copy per request more).
The matched route is read from the scope, where the router leaves it before the answer starts.
"""

from __future__ import annotations

from starlette.types import Message, Scope

#: Names of the routes whose answers carry a secret.
SECRET_ROUTES = frozenset({"api_keys.create", "clusters.ray_token"})

_NOSNIFF = (b"x-content-type-options", b"nosniff")


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header ``name`` (lower case, as ASGI servers give
    names), read straight from the scope: no Starlette ``Headers`` object on the hot path."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


_NO_STORE = (b"cache-control", b"no-store")


def with_security_headers(scope: Scope, message: Message, *extra: tuple[bytes, bytes]) -> None:
    """Sets the security headers (replacing any of the same name) and appends ``extra`` on the
    ``http.response.start`` ``message``, in place."""
    secret = getattr(scope.get("route"), "name", None) in SECRET_ROUTES
    replaced = (b"x-content-type-options", b"cache-control") if secret else (b"x-content-type-options",)
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in replaced]
    headers.append(_NOSNIFF)
    if secret:
        headers.append(_NO_STORE)
    headers.extend(extra)
    message["headers"] = headers
