"""The Marketplace's webhook sender: payloads, their Entra JWT, deliveries and retries.

A delivery is one payload sent to ``webhook_url`` until it is answered 2xx or
``webhook_max_attempts`` attempts failed; each attempt (HTTP status or transport error) is
recorded. Deliveries persist in the store, so retries resume after a restart. Payload
(the documented webhook body): ``id`` (operation id), ``activityId``, ``publisherId``,
``offerId``, ``planId``, ``quantity``, ``subscriptionId``, ``timeStamp``, ``action``,
``status``, ``operationRequestSource``, ``subscription{...}`` and ``purchaseToken`` (null).
The payload is fixed when the operation is created: duplicates and late deliveries carry the
same body, as Azure's retries do.

The ``Authorization: Bearer`` JWT is signed with the emulator's Entra keys: ``iss`` = the
emulator's issuer for ``publisher_tenant``, ``aud`` = ``publisher_app_id``, ``tid`` =
``publisher_tenant``, ``appid`` = ``azp`` = the Marketplace API's app id, minted fresh for
every attempt. A :data:`TokenFault` breaks one property on purpose, for testing the receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Any

import httpx

from emulators.azure.keys import KeyStore
from emulators.azure.marketplace.models import MARKETPLACE_RESOURCE, MarketplaceConfig, TokenFault, format_time, public
from emulators.azure.marketplace.state import MarketplaceState

log = logging.getLogger(__name__)
_WRONG = "00000000-0000-0000-0000-00000000bad0"


def webhook_payload(operation: dict[str, Any], subscription: dict[str, Any]) -> dict[str, Any]:
    """The webhook body for ``operation`` with a snapshot of ``subscription``."""
    return {
        "id": operation["id"],
        "activityId": operation["activityId"],
        "publisherId": operation["publisherId"],
        "offerId": operation["offerId"],
        "planId": operation["planId"],
        "quantity": operation["quantity"],
        "subscriptionId": operation["subscriptionId"],
        "timeStamp": operation["timeStamp"],
        "action": operation["action"],
        "status": operation["status"],
        "operationRequestSource": operation["operationRequestSource"],
        "subscription": public(subscription),
        "purchaseToken": None,
    }


def _ssl_context(config: MarketplaceConfig) -> ssl.SSLContext | bool:
    if not config.webhook_url or not config.webhook_url.startswith("https:"):
        return True
    if config.webhook_ca is None:
        return ssl.create_default_context()
    if "-----BEGIN" in config.webhook_ca:
        return ssl.create_default_context(cadata=config.webhook_ca)
    return ssl.create_default_context(cafile=config.webhook_ca)


class WebhookSender:
    """Creates deliveries and makes their attempts; :meth:`run_due` is driven by a ticker."""

    def __init__(self, state: MarketplaceState, keys: KeyStore, origin: str) -> None:
        self.state, self.keys, self.origin = state, keys, origin
        # Attempts under way, each with an event set once its outcome is recorded.
        self._in_flight: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- tokens ------------------------------------------------------------------------------
    def token(self, fault: TokenFault) -> str | None:
        """The bearer token for one attempt; None for ``missing`` (no Authorization header)."""
        if fault == "missing":
            return None
        config = self.state.config
        now = int(time.time())
        tenant = _WRONG if fault == "wrong_tid" else config.publisher_tenant
        claims: dict[str, Any] = {"tid": tenant}
        if fault == "wrong_iss":
            claims["iss"] = f"{self.origin}/{_WRONG}/v2.0"
        elif fault == "expired":
            claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
        elif fault == "not_yet_valid":
            claims.update(iat=now + 3600, nbf=now + 3600, exp=now + 7200)
        return self.keys.mint(
            claims,
            origin=self.origin,
            tenant=config.publisher_tenant,
            client_id=_WRONG if fault == "wrong_azp" else MARKETPLACE_RESOURCE,
            audience=_WRONG if fault == "wrong_aud" else config.publisher_app_id,
            lifetime_seconds=config.webhook_token_lifetime_seconds,
            untrusted=fault == "bad_signature",
        )

    # -- deliveries ------------------------------------------------------------------------------
    def enqueue(self, operation: dict[str, Any], fault: TokenFault = "valid", copies: int = 1) -> list[dict[str, Any]]:
        """``copies`` new deliveries of the operation's stored payload, due now."""
        created = []
        for _ in range(copies):
            delivery = {
                "id": self.state.new_delivery_id(),
                "operationId": operation["id"],
                "subscriptionId": operation["subscriptionId"],
                "action": operation["action"],
                "token": fault,
                "payload": operation["_payload"],
                "state": "pending",
                "attempts": [],
                "nextAttemptAt": time.time(),
                "created": format_time(time.time()),
            }
            self.state.put_delivery(delivery)
            created.append(delivery)
        return created

    async def attempt(self, delivery_id: str, *, claimed: bool = False) -> dict[str, Any] | None:
        """Make one attempt of a pending delivery; the delivery after it.

        A delivery has at most one attempt under way: a second caller (an admin request with
        ``wait`` racing the background ticker) waits for that attempt and gets its outcome.
        ``claimed`` means the caller (:meth:`run_due`) already marked it under way.
        """
        if not claimed:
            running = self._in_flight.get(delivery_id)
            if running is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(running.wait(), self.state.config.webhook_timeout_seconds + 5)
                return self.state.delivery(delivery_id)
            self._in_flight[delivery_id] = asyncio.Event()
        try:
            return await self._attempt(delivery_id)
        finally:
            done = self._in_flight.pop(delivery_id, None)
            if done is not None:
                done.set()

    async def _attempt(self, delivery_id: str) -> dict[str, Any] | None:
        delivery = self.state.delivery(delivery_id)
        if delivery is None or delivery["state"] != "pending":
            return delivery
        status, problem, elapsed = await self._post(delivery)
        # Re-read: a reset may have removed it while the request was under way.
        delivery = self.state.delivery(delivery_id)
        if delivery is None:
            return None
        config = self.state.config
        attempts = delivery["attempts"]
        attempts.append({"at": format_time(time.time()), "status": status, "error": problem, "ms": elapsed})
        if status is not None and 200 <= status < 300:
            delivery["state"], delivery["nextAttemptAt"] = "delivered", None
        elif len(attempts) >= config.webhook_max_attempts:
            delivery["state"], delivery["nextAttemptAt"] = "failed", None
        else:
            backoff = config.webhook_backoff_seconds * 2 ** (len(attempts) - 1)
            delivery["nextAttemptAt"] = time.time() + min(backoff, config.webhook_backoff_max_seconds)
        self.state.put_delivery(delivery)
        return delivery

    async def _post(self, delivery: dict[str, Any]) -> tuple[int | None, str | None, int]:
        config = self.state.config
        started = time.monotonic()
        if not config.webhook_url:
            return None, "no webhook_url is configured", 0
        headers = {"Content-Type": "application/json", "User-Agent": "rayplane-emulator-marketplace"}
        token = self.token(delivery["token"])
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with httpx.AsyncClient(verify=_ssl_context(config), timeout=config.webhook_timeout_seconds) as http:
                answer = await http.post(config.webhook_url, json=delivery["payload"], headers=headers)
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            return None, f"{type(exc).__name__}: {exc}", int((time.monotonic() - started) * 1000)
        return answer.status_code, None, int((time.monotonic() - started) * 1000)

    def run_due(self) -> None:
        """Start an attempt (in the background) for every pending delivery that is due."""
        now = time.time()
        for delivery in self.state.deliveries():
            due = delivery.get("nextAttemptAt")
            if delivery["state"] != "pending" or due is None or float(due) > now:
                continue
            if delivery["id"] in self._in_flight:
                continue
            # Claimed before the task runs, so the next tick cannot start a second attempt.
            self._in_flight[delivery["id"]] = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self.attempt(delivery["id"], claimed=True))
            # Keep a reference until done: the loop holds tasks only weakly.
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel attempts under way (they stay pending and are retried after a restart)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
