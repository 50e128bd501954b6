"""Server-side browser sessions in Redis, named by a signed cookie.

Contract:
- The cookie holds only ``<session id>.<HMAC>``: a 256-bit random id and its HMAC-SHA256 under
  the server's secret key, so a cookie the server did not issue is ignored without a Redis
  read. The data (the signed-in user, the pending sign-in flow, the landing page's purchase
  token, the CSRF token) stays in Redis under ``rayplane:web:session:<id>`` and expires
  ``web_session_hours`` after its last write; signing out deletes it.
- The cookie is ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and ``Secure`` outside dev mode,
  where it is also named with the ``__Host-`` prefix (the browser then refuses it from http
  or with a Domain). Dev mode serves plain http on 127.0.0.1, so there it is not ``Secure``.
- :meth:`WebSession.rotate` gives the session a new id and deletes the old one: sign-in
  calls it, so an id planted before sign-in (session fixation) never becomes signed in.
- Losing Redis signs people out; it loses no other state (Postgres is the source of truth).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from api.deps import app_state

KEY_PREFIX = "rayplane:web:session:"


def cookie_name(secure: bool) -> str:
    return "__Host-rayplane_session" if secure else "rayplane_session"


def _sign(key: bytes, sid: str) -> str:
    return hmac.new(key, b"web-session:" + sid.encode(), hashlib.sha256).hexdigest()


@dataclass
class WebSession:
    """One browser's session: ``data`` is JSON-able; ``save`` writes it and sets the cookie."""

    sid: str
    data: dict[str, Any] = field(default_factory=dict)
    fresh: bool = True
    _dropped: list[str] = field(default_factory=list)

    @property
    def user(self) -> dict[str, str] | None:
        user = self.data.get("user")
        return user if isinstance(user, dict) else None

    @property
    def csrf(self) -> str:
        """This session's CSRF token (made on first use; a new one with every rotation)."""
        token = self.data.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            self.data["csrf"] = token
        return token

    def rotate(self) -> None:
        """A new id (and CSRF token) for the same data; the old id is deleted on save."""
        self._dropped.append(self.sid)
        self.sid = secrets.token_urlsafe(32)
        self.data.pop("csrf", None)
        self.fresh = True

    def clear(self) -> None:
        """Forget everything (sign-out): the id is deleted and a new empty session starts."""
        self.rotate()
        self.data = {}


class SessionStore:
    """Loads and saves :class:`WebSession` for a request, with the app's Redis and key."""

    def __init__(self, redis: Redis, key: bytes, *, secure: bool, ttl_seconds: int) -> None:
        self.redis, self.key, self.secure, self.ttl = redis, key, secure, ttl_seconds
        self.cookie = cookie_name(secure)

    @classmethod
    def of(cls, request: Request) -> SessionStore:
        state = app_state(request)
        settings = state.settings
        ttl = int(settings.web_session_hours * 3600)
        return cls(state.redis, state.hashing_key, secure=not settings.is_dev, ttl_seconds=ttl)

    async def load(self, request: Request) -> WebSession:
        raw = request.cookies.get(self.cookie, "")
        sid, _, mac = raw.partition(".")
        if sid and mac and hmac.compare_digest(mac, _sign(self.key, sid)):
            stored = await self.redis.get(KEY_PREFIX + sid)
            if stored is not None:
                try:
                    data = json.loads(stored)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    return WebSession(sid, data, fresh=False)
        # No cookie, a forged one or an expired session: a new id, never the one presented.
        return WebSession(secrets.token_urlsafe(32))

    async def save(self, session: WebSession, response: Response) -> None:
        for old in session._dropped:
            await self.redis.delete(KEY_PREFIX + old)
        session._dropped.clear()
        await self.redis.set(KEY_PREFIX + session.sid, json.dumps(session.data), ex=self.ttl)
        response.set_cookie(
            self.cookie,
            f"{session.sid}.{_sign(self.key, session.sid)}",
            max_age=self.ttl,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )
