"""The pages' security rules without a browser: local-only ``next``, the session cookie's
attributes in and outside dev mode, a forged cookie never being trusted."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from api.app import redis_client
from web.security import CSP, is_web_path, safe_next
from web.sessions import KEY_PREFIX, SessionStore, WebSession, cookie_name


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "console",
        "/console\r\nSet-Cookie: x=1",
        "/" + "a" * 3000,
    ],
)
def test_next_is_never_another_origin(value: str | None) -> None:
    assert safe_next(value) == "/console"


@pytest.mark.parametrize("value", ["/console", "/marketplace/landing", "/console?x=1&y=%2F"])
def test_local_paths_are_kept(value: str) -> None:
    assert safe_next(value) == value


def test_csp_is_strict() -> None:
    assert "default-src 'self'" in CSP
    assert "frame-ancestors 'none'" in CSP
    assert "unsafe-inline" not in CSP
    assert "unsafe-eval" not in CSP
    assert is_web_path("/console")
    assert not is_web_path("/v1/clusters")
    assert not is_web_path("/docs")


@pytest.mark.parametrize("secure", [True, False])
async def test_the_cookie_is_httponly_lax_and_secure_outside_dev(secure: bool, redis_url: str) -> None:
    redis = redis_client(redis_url)
    store = SessionStore(redis, b"k", secure=secure, ttl_seconds=60)
    try:
        session = WebSession("planted-id")
        session.data["user"] = {"tid": "t", "oid": "o"}
        session.rotate()
        response = Response()
        await store.save(session, response)
        header = response.headers["set-cookie"]
        assert header.startswith(cookie_name(secure) + "=")
        assert "HttpOnly" in header
        assert "samesite=lax" in header.lower()
        assert ("Secure" in header) is secure
        assert "planted-id" not in header  # rotated: the old id is gone
        value = header.split(";")[0].split("=", 1)[1]
        loaded = await store.load(_request(cookie_name(secure), value))
        assert not loaded.fresh
        assert loaded.user == {"tid": "t", "oid": "o"}
        # A cookie with the right id but a wrong signature is a new, empty session.
        sid = value.split(".")[0]
        forged = await store.load(_request(cookie_name(secure), sid + ".00"))
        assert forged.fresh
        assert forged.user is None
        assert forged.sid != sid
        await redis.delete(KEY_PREFIX + sid)
    finally:
        await redis.aclose()
    assert cookie_name(True).startswith("__Host-")


def _request(name: str, value: str) -> Request:
    return Request({"type": "http", "headers": [(b"cookie", f"{name}={value}".encode())]})
