"""A real Celery worker answers a ChangePlan well inside the Marketplace's 10 seconds.

The emulator delivers the webhook to the live API, which stores the event and nudges the
worker through Redis after its commit; the worker confirms the operation with the Fulfillment
API, PATCHes Success and applies it. A redelivered task changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from rayplane.marketplace import store
from rayplane.procs import stop_process_group
from tests.e2e.stack import wait_for
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import ROOT, Buyer, LiveApi, cleanup, onboard


@pytest.fixture
def worker(live_api: LiveApi, redis_url: str, tmp_path: Path) -> Iterator[Celery]:
    """One Celery worker (solo pool) on the live API's queue; a producer for that queue."""
    queue = live_api.env["RAYPLANE_TASK_QUEUE"]
    broker = redis.Redis.from_url(redis_url)
    broker.delete(queue)  # nudges earlier tests left for nobody
    broker.close()
    log = tmp_path / "worker.log"
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queue]
    argv += ["--pool", "solo", "--loglevel", "INFO", "-n", f"mkt-{queue}@%h"]
    env = {**live_api.env, "RAYPLANE_LOG_LEVEL": "INFO", "RAYPLANE_LOG_FORMAT": "console"}
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the worker exited:\n{log.read_text()[-3000:]}")
            return " ready." in log.read_text()

        wait_for(ready, 90, "the Celery worker to be ready", interval=0.2)
        producer = Celery("test-producer", broker=redis_url)
        producer.conf.task_default_queue = queue
        yield producer
    finally:
        stop_process_group(proc, timeout=20)


def test_the_worker_answers_a_change_plan_within_seconds(
    market: Marketplace,
    live_api: LiveApi,
    buyer: Buyer,
    worker: Celery,
    committed_sessions: sessionmaker[Session],
) -> None:
    # Without our answer the emulator would accept only after ten minutes.
    market.configure(webhook_url=live_api.webhook_url, auto_accept_seconds=600)
    subscriptions: list[str] = []
    try:
        customer = onboard(live_api, market, buyer, plan="team")
        subscriptions.append(customer.subscription_id)
        started = time.monotonic()
        sent = market.webhook(customer.subscription_id, "ChangePlan", planId="enterprise")
        operation_id = str(sent["operation"]["id"])
        path = f"/operations?subscriptionId={customer.subscription_id}"

        def answered() -> str | None:
            ops = market.admin("GET", path)["value"]
            status = next(op["status"] for op in ops if op["id"] == operation_id)
            return None if status == "InProgress" else str(status)

        assert wait_for(answered, 10, "the worker's answer", interval=0.1) == "Succeeded"
        elapsed = time.monotonic() - started
        assert elapsed < 10

        def applied() -> bool:
            plan = live_api.request("GET", "/v1/marketplace/subscription", customer.user_token).json()
            return bool(plan["subscription"]["plan_id"] == "enterprise")

        wait_for(applied, 10, "the new plan in Rayplane", interval=0.1)
        with committed_sessions() as session:
            event = store.load_event(session, operation_id)
            assert event is not None
            assert (event.status, event.attempts) == ("done", 1)
            processed_at = event.processed_at

        # A redelivered task (acks_late after a crash, or the sweep racing the nudge) changes
        # nothing. The solo worker runs tasks in order: once the Renew sent after it is done,
        # the duplicate has run.
        worker.send_task("rayplane.marketplace.process_event", args=[operation_id])
        renew = str(market.webhook(customer.subscription_id, "Renew")["operation"]["id"])

        def renew_done() -> bool:
            with committed_sessions() as session:
                found = store.load_event(session, renew)
                return found is not None and found.status == "done"

        wait_for(renew_done, 15, "the Renew to be processed", interval=0.1)
        with committed_sessions() as session:
            again = store.load_event(session, operation_id)
            assert again is not None
            assert (again.status, again.attempts, again.processed_at) == ("done", 1, processed_at)
    finally:
        cleanup(committed_sessions, tenants=[], subscriptions=subscriptions, tids=[buyer.tid])
