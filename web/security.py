"""The pages' browser security: Content-Security-Policy, CSRF, and local-only redirects.

- Every answer under the pages' paths (``WEB_PREFIXES``) carries a strict CSP: everything from
  this origin only, no inline script or style (the templates have none; htmx is told not to
  add its indicator style), no plugins, no framing (``frame-ancestors 'none'``, and the older
  ``X-Frame-Options: DENY``), forms posting only here, and violations reported to
  ``/csp-report`` (logged, and counted by the browser tests). The API's JSON answers and the
  offline Swagger page (which needs its own inline script) are left as they were.
- CSRF: every form carries the session's token in a hidden ``csrf`` field; a POST whose field is
  missing or differs is refused with 403 before anything else runs (:func:`check_csrf`).
  ``SameSite=Lax`` on the session cookie is the second line: a cross-site POST carries no
  session at all.
- ``next`` targets: :func:`safe_next` keeps only a local absolute path (``/console``), never
  ``//host``, ``/\\host``, a scheme or a control character, so sign-in cannot be turned into an
  open redirect.
"""

from __future__ import annotations

import hmac
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rayplane.common.errors import Forbidden
from rayplane.logs import get_logger

log = get_logger("rayplane.web")

WEB_PREFIXES = ("/console", "/marketplace/landing", "/auth/", "/static/", "/csp-report", "/dev/")
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "report-uri /csp-report",
    )
)
_LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*$")


def is_web_path(path: str) -> bool:
    return path == "/" or path.startswith(WEB_PREFIXES)


class PageSecurityHeaders:
    """Pure ASGI: adds the CSP and framing headers to every answer under the pages' paths."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_web_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CSP
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "same-origin"
                if not scope.get("path", "").startswith("/static/"):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def safe_next(value: str | None, default: str = "/console") -> str:
    """``value`` if it is a path on this site, else ``default`` (never another origin)."""
    if not value or len(value) > 2000 or not _LOCAL_PATH.match(value):
        return default
    return value


def check_csrf(expected: str, presented: str | None) -> None:
    """Refuse (403) a form whose CSRF token is not this session's."""
    if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Forbidden("the form's security token is missing or out of date; reload the page and try again")
