"""Nudges from the API to the workers: "look at cluster X now".

Sent only after the request's transaction committed (``api.deps.after_commit``), so a
worker never looks for a row it cannot see yet. A nudge that fails to send is logged and
dropped: the cluster row is already due, and the beat sweep will enqueue it.
"""

from __future__ import annotations

import asyncio

from celery import Celery

from rayplane.common.tasks import TaskName
from rayplane.logs import get_logger
from rayplane.settings import broker_url

log = get_logger("rayplane.api.nudges")


class Nudger:
    def __init__(self, redis_url: str, queue: str) -> None:
        self.queue = queue
        self.app = Celery("rayplane-api", broker=broker_url(redis_url))
        self.app.conf.update(broker_connection_retry_on_startup=False, broker_transport_options={"max_retries": 1})
        self.sent: int = 0

    def _send(self, task: TaskName, args: list[str]) -> None:
        self.app.send_task(task.value, args=args, queue=self.queue, retry=False)

    async def reconcile(self, cluster_id: str) -> None:
        try:
            await asyncio.to_thread(self._send, TaskName.RECONCILE, [cluster_id])
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - the sweep covers a lost nudge
            log.warning("nudge_failed", cluster_id=cluster_id, error=type(exc).__name__)

    async def validate_cloud(self, cloud_id: str) -> None:
        try:
            await asyncio.to_thread(self._send, TaskName.VALIDATE_CLOUD, [cloud_id])
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - POST /v1/clouds/{id}:validate runs it again
            log.warning("nudge_failed", cloud_id=cloud_id, error=type(exc).__name__)

    async def marketplace_event(self, operation_id: str) -> None:
        try:
            await asyncio.to_thread(self._send, TaskName.PROCESS_MARKETPLACE_EVENT, [operation_id])
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - the event row is due; the beat sweep sends it
            log.warning("nudge_failed", operation_id=operation_id, error=type(exc).__name__)
