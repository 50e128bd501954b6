"""Nudges from the API to the workers: "look at cluster X now".

Sent only after the request's transaction committed (``api.deps.after_commit``), so a
worker never looks for a row it cannot see yet. A nudge that fails to send is logged and
dropped: the cluster row is already due, and the beat sweep will enqueue it.
"""

from __future__ import annotations

import asyncio

from celery import Celery

from rayplane.logs import get_logger

log = get_logger("rayplane.api.nudges")

RECONCILE_TASK = "rayplane.clusters.reconcile"
VALIDATE_CLOUD_TASK = "rayplane.clouds.validate"
MARKETPLACE_EVENT_TASK = "rayplane.marketplace.process_event"


def broker_url(url: str) -> str:
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


class Nudger:
    def __init__(self, redis_url: str, queue: str) -> None:
        self.queue = queue
        self.app = Celery("rayplane-api", broker=broker_url(redis_url))
        self.app.conf.update(broker_connection_retry_on_startup=False, broker_transport_options={"max_retries": 1})
        self.sent: int = 0

    def _send(self, task: str, args: list[str]) -> None:
        self.app.send_task(task, args=args, queue=self.queue, retry=False)

    async def reconcile(self, cluster_id: str) -> None:
        try:
            await asyncio.to_thread(self._send, RECONCILE_TASK, [cluster_id])
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - the sweep covers a lost nudge
            log.warning("nudge_failed", cluster_id=cluster_id, error=type(exc).__name__)

    async def validate_cloud(self, cloud_id: str) -> None:
        try:
            await asyncio.to_thread(self._send, VALIDATE_CLOUD_TASK, [cloud_id])
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - POST /v1/clouds/{id}:validate runs it again
            log.warning("nudge_failed", cloud_id=cloud_id, error=type(exc).__name__)

    async def marketplace_event(self, operation_id: str) -> None:
        try:
            await asyncio.to_thread(self._send, MARKETPLACE_EVENT_TASK, [operation_id])
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - the event row is due; the beat sweep sends it
            log.warning("nudge_failed", operation_id=operation_id, error=type(exc).__name__)
