"""Headers every answer carries, errors included: the outermost middleware.

- ``X-Content-Type-Options: nosniff`` on every answer, so a browser never reads a JSON or
  problem+json body as something it could run.
- ``Cache-Control: no-store`` on every answer of a route in ``SECRET_ROUTES``: answers that
  carry a secret (a new API key) must not be kept by a browser, a proxy or a CLI's HTTP cache.
  Keyed by route name so it holds for every answer of the route, replays and errors included.
  ``tests/api/test_headers.py`` fails when a response model gains a secret-looking field
  (``key``, ``secret``, ``token``, ``password``) on a route that is not listed here.

Pure ASGI, outside ``RequestContextMiddleware``, so its own 415 and 500 answers get them too.
The matched route is read from the scope, where the router leaves it before the answer starts.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Names of the routes whose answers carry a secret.
SECRET_ROUTES = frozenset({"api_keys.create", "clusters.ray_token"})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if getattr(scope.get("route"), "name", None) in SECRET_ROUTES:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
