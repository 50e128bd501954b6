"""Helpers shared by the Marketplace emulator tests (this module holds no tests).

* :func:`publisher_token` -- a token for the Marketplace API from a real MSAL confidential client.
* :class:`Marketplace` -- an httpx client for the Azure routes (adds ``api-version``) and
  the ``/_emulator/marketplace`` test control.
* :class:`WebhookReceiver` -- a publisher's webhook endpoint (HTTP, or HTTPS with the
  emulator's server certificate) that records every request and answers as scripted.
* :func:`verify_webhook_token` -- validate the webhook's JWT the way a publisher must:
  signature against the tenant's JWKS, issuer, ``aud``, ``tid``, ``azp``/``appid``, lifetime.
* :func:`wait_until` -- poll with a deadline instead of sleeping.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import jwt
import msal  # type: ignore[import-untyped, unused-ignore]
import pytest

from emulators.azure.server import EmulatorProcess

MARKETPLACE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
MARKETPLACE_SCOPE = f"{MARKETPLACE}/.default"
API = {"api-version": "2018-08-31"}
T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> T:
    """``probe()`` once it is truthy; AssertionError with its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s; last value: {value!r}")
        time.sleep(interval)


def publisher_token(emu: EmulatorProcess, tenant: str, client_id: str, scope: str = MARKETPLACE_SCOPE) -> str:
    """An app token for ``scope`` from MSAL's client-credentials flow against the emulator."""
    with pytest.MonkeyPatch.context() as patch:
        # requests lets REQUESTS_CA_BUNDLE override a session's verify=, so name the CA there too.
        patch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_path))
        app = msal.ConfidentialClientApplication(
            client_id,
            client_credential="emulator-secret",
            authority=f"{emu.origin}/{tenant}",
            instance_discovery=False,
            verify=str(emu.ca_path),
        )
        result = app.acquire_token_for_client(scopes=[scope])
    assert "access_token" in result, result
    token: str = result["access_token"]
    return token


class Marketplace:
    """The emulator's Marketplace, as a publisher (``api``) and as a test (``admin``)."""

    def __init__(self, emu: EmulatorProcess, token: str | None) -> None:
        self.emu = emu
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=emu.origin, verify=emu.ssl_context() or False, timeout=30, headers=headers)

    def close(self) -> None:
        self.http.close()

    def api(self, method: str, path: str, *, api_version: bool = True, **kwargs: Any) -> httpx.Response:
        """An Azure route; ``api-version=2018-08-31`` is added unless ``api_version`` is False."""
        params = {**(API if api_version else {}), **kwargs.pop("params", {})}
        return self.http.request(method, path, params=params, **kwargs)

    def admin(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        """A test-control route under ``/_emulator/marketplace``; its JSON (checked against ``status``)."""
        answer = self.http.request(method, f"/_emulator/marketplace{path}", json=body)
        if status is None:
            assert answer.status_code < 400, (answer.status_code, answer.text)
        else:
            assert answer.status_code == status, (answer.status_code, answer.text)
        return answer.json()

    # -- conveniences ------------------------------------------------------------------------
    def configure(self, **fields: Any) -> dict[str, Any]:
        config: dict[str, Any] = self.admin("PUT", "/config", fields)
        return config

    def purchase(self, **fields: Any) -> tuple[str, str]:
        """(subscription id, landing-page token) of a new purchase."""
        bought = self.admin("POST", "/purchases", fields, status=201)
        return bought["subscription"]["id"], bought["token"]

    def subscribed(self, plan_id: str = "starter", **fields: Any) -> str:
        """A purchased, resolved and activated subscription's id."""
        subscription_id, token = self.purchase(planId=plan_id, **fields)
        resolved = self.api("POST", "/api/saas/subscriptions/resolve", headers={"x-ms-marketplace-token": token})
        assert resolved.status_code == 200, resolved.text
        body: dict[str, Any] = {"planId": plan_id}
        if "quantity" in fields:
            body["quantity"] = fields["quantity"]
        activated = self.api("POST", f"/api/saas/subscriptions/{subscription_id}/activate", json=body)
        assert activated.status_code == 200, activated.text
        return subscription_id

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        answer = self.api("GET", f"/api/saas/subscriptions/{subscription_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def operation(self, subscription_id: str, operation_id: str) -> dict[str, Any]:
        answer = self.api("GET", f"/api/saas/subscriptions/{subscription_id}/operations/{operation_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def webhook(self, subscription_id: str, action: str, status: int = 201, **fields: Any) -> dict[str, Any]:
        """Azure performs ``action`` (test control); ``{operation, deliveries}``."""
        body: dict[str, Any] = self.admin(
            "POST", f"/subscriptions/{subscription_id}/webhook", {"action": action, **fields}, status
        )
        return body

    def deliveries(self, **query: str) -> list[dict[str, Any]]:
        answer = self.http.get("/_emulator/marketplace/deliveries", params=query)
        assert answer.status_code == 200, answer.text
        value: list[dict[str, Any]] = answer.json()["value"]
        return value


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: Any

    @property
    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None


@dataclass
class WebhookReceiver:
    """A threaded HTTP(S) server standing in for the publisher's webhook endpoint.

    ``statuses`` are the answers to the next requests, in order (then 200). ``on_request``
    runs before the answer is sent (e.g. to PATCH the operation, as a publisher does).
    """

    tls: tuple[str, str] | None = None
    statuses: list[int] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"null"))
                if receiver.on_request is not None:
                    try:
                        receiver.on_request(got)
                    except (AssertionError, httpx.HTTPError) as exc:  # recorded for the test to assert on
                        receiver.errors.append(exc)
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.received.append(got)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/marketplace/webhook"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The first ``count`` requests, once they arrived."""
        wait_until(lambda: len(self.received) >= count, timeout, what=f"{count} webhook calls")
        return self.received[:count]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def receiver(tls: tuple[str, str] | None = None, **options: Any) -> Iterator[WebhookReceiver]:
    """A started receiver, stopped when the block ends."""
    started = WebhookReceiver(tls=tls, **options)
    try:
        yield started
    finally:
        started.stop()


def verify_webhook_token(emu: EmulatorProcess, token: str, *, tenant: str, audience: str) -> dict[str, Any]:
    """Claims of the webhook's bearer ``token`` after the checks a publisher must make;
    :class:`jwt.InvalidTokenError` (or :class:`jwt.PyJWKClientError`) when one fails."""
    with httpx.Client(verify=emu.ssl_context() or False) as http:
        metadata = http.get(f"{emu.origin}/{tenant}/v2.0/.well-known/openid-configuration").json()
    keys = jwt.PyJWKClient(metadata["jwks_uri"], cache_jwk_set=False, ssl_context=emu.ssl_context())
    claims: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "nbf", "aud", "iss"]},
    )
    if claims.get("tid") != tenant:
        raise jwt.InvalidTokenError(f"tid {claims.get('tid')} is not the publisher tenant")
    if claims.get("azp") != MARKETPLACE or claims.get("appid") != MARKETPLACE:
        raise jwt.InvalidTokenError("the token was not issued to the Marketplace API")
    return claims
