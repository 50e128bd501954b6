"""Billing tasks: the hourly metering run and the periodic budget check (both beat).

Both are idempotent: metering takes a Postgres advisory lock and inserts each hour once; the
budget check raises each alert once per month by a unique key. A stop decided by the budget
check is committed before the reconcile nudges are sent.
"""

from __future__ import annotations

from typing import Any

from rayplane.billing.budget_check import check_budgets
from rayplane.billing.metering import Metering
from rayplane.common.tasks import TaskName
from rayplane.logs import get_logger
from rayplane.settings import get_settings
from workers.celery_app import app
from workers.db import sessions

log = get_logger("rayplane.workers.billing")


@app.task(name=TaskName.METER, acks_late=True)
def meter() -> dict[str, Any]:
    return Metering(sessions(), get_settings()).run().summary()


@app.task(name=TaskName.CHECK_BUDGETS)
def budgets() -> dict[str, int]:
    settings = get_settings()
    result = check_budgets(sessions())
    for cluster_id in result.stopped:
        app.send_task(TaskName.RECONCILE, args=(cluster_id,), queue=settings.task_queue)
    if result.alerts or result.stopped:
        log.info("budgets_checked", alerts=len(result.alerts), blocked=len(result.blocked), stopped=len(result.stopped))
    return {"alerts": len(result.alerts), "blocked": len(result.blocked), "stopped": len(result.stopped)}
