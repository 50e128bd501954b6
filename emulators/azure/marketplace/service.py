"""One Marketplace per emulator: state, life cycle, webhook sender and the ticker driving them.

The ticker (started by the Azure router's lifespan) runs every :data:`TICK_SECONDS`: it
accepts operations whose auto-accept time has come and starts due webhook attempts. Both
read their schedule from the store, so after a restart the ticker picks up where the
previous process stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from emulators.azure.marketplace.lifecycle import Lifecycle
from emulators.azure.marketplace.models import TokenFault
from emulators.azure.marketplace.state import MarketplaceState
from emulators.azure.marketplace.webhooks import WebhookSender, webhook_payload

if TYPE_CHECKING:
    from emulators.azure.app import EmulatorContext

log = logging.getLogger(__name__)
TICK_SECONDS = 0.1


class MarketplaceService:
    """Everything the Marketplace routes need, for one :class:`EmulatorContext`."""

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.origin = ctx.settings.origin.rstrip("/")
        self.keys = ctx.entra.keys
        self.state = MarketplaceState(ctx.store)
        self.lifecycle = Lifecycle(self.state)
        self.sender = WebhookSender(self.state, self.keys, self.origin)
        self._ticker: asyncio.Task[None] | None = None

    async def notify(
        self,
        operation: dict[str, Any],
        subscription: dict[str, Any],
        *,
        deliver: bool = True,
        fault: TokenFault = "valid",
        copies: int = 1,
        wait: bool = False,
    ) -> list[dict[str, Any]]:
        """Fix the operation's webhook payload (subscription as it is now) and, with ``deliver``,
        queue ``copies`` deliveries of it; with ``wait``, make their first attempts before
        returning. The deliveries, as they stand."""
        operation["_payload"] = webhook_payload(operation, subscription)
        self.state.put_operation(operation)
        if not deliver:
            return []
        return await self.redeliver(operation, fault=fault, copies=copies, wait=wait)

    async def redeliver(
        self, operation: dict[str, Any], *, fault: TokenFault = "valid", copies: int = 1, wait: bool = False
    ) -> list[dict[str, Any]]:
        """Queue ``copies`` more deliveries of the operation's stored payload (see :meth:`notify`)."""
        deliveries = self.sender.enqueue(operation, fault, copies)
        if not wait:
            return deliveries
        done = []
        for delivery in deliveries:
            attempted = await self.sender.attempt(delivery["id"])
            done.append(attempted or delivery)
        return done

    def tick(self) -> None:
        """One round of background work: auto-accepts, then due webhook attempts."""
        self.lifecycle.sweep()
        self.sender.run_due()

    async def _run_ticker(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                # Keep ticking: one bad document must not stop auto-accepts and retries for good.
                log.exception("marketplace tick failed")
            await asyncio.sleep(TICK_SECONDS)

    @contextlib.asynccontextmanager
    async def running(self, _app: Any) -> AsyncIterator[None]:
        """Lifespan: run the ticker while the server runs."""
        self._ticker = asyncio.get_running_loop().create_task(self._run_ticker())
        try:
            yield
        finally:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            await self.sender.close()
