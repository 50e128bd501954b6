"""kill -9 of a real Celery worker between the Marketplace's answer and the commit that
records it: the hour is resent, answered Duplicate, and counted once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from emulators.azure.server import EmulatorProcess
from rayplane.billing.models import MeteringRecord
from rayplane.procs import stop_process_group
from rayplane.settings import Settings
from tests.billing.conftest import PUBLISHER_APP, PUBLISHER_TENANT, World, hours_ago
from tests.emulators.test_marketplace_support import Marketplace

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 120.0


def _statuses(sessions: sessionmaker[Session], subscription: str) -> list[MeteringRecord]:
    with sessions() as s:
        stmt = select(MeteringRecord).where(MeteringRecord.subscription_id == subscription)
        return list(s.execute(stmt).scalars())


def test_worker_killed_after_sending_counts_each_hour_once(
    world: World,
    market: Marketplace,
    sync_sessions: sessionmaker[Session],
    settings: Settings,
    emulator: EmulatorProcess,
    tmp_path: Path,
) -> None:
    sub = market.subscribed("starter")
    tenant = world.tenant()
    world.subscription(tenant, sub)
    # 15 closed hours x (vCPU, GPU) = 30 events: a batch of 25, then one of 5.
    world.interval(tenant, world.cluster(tenant), "Standard_NC24ads_A100_v4", 1, hours_ago(15), hours_ago(0))

    queue = f"test-metering-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "killed-once"
    assert settings.database_url
    assert settings.redis_url
    assert emulator.ca_path
    env = {
        **os.environ,
        "RAYPLANE_ENV": "test",
        "RAYPLANE_DATA_DIR": str(tmp_path),
        "RAYPLANE_SECRET_KEY": "crash-test",
        "RAYPLANE_DATABASE_URL": settings.database_url,
        "RAYPLANE_REDIS_URL": settings.redis_url,
        "RAYPLANE_TASK_QUEUE": queue,
        "RAYPLANE_ENTRA_AUTHORITY": emulator.origin,
        "RAYPLANE_CA_BUNDLE": str(emulator.ca_path),
        "REQUESTS_CA_BUNDLE": str(emulator.ca_path),
        "RAYPLANE_MARKETPLACE_API_URL": emulator.origin,
        "RAYPLANE_MARKETPLACE_CLIENT_ID": PUBLISHER_APP,
        "RAYPLANE_MARKETPLACE_CLIENT_SECRET": "emulator-secret",
        "RAYPLANE_MARKETPLACE_PUBLISHER_TENANT_ID": PUBLISHER_TENANT,
        "RAYPLANE_METERING_DELAY_SECONDS": "0",
        # The worker process SIGKILLs itself once, right after the first batch was answered
        # and before the answers are committed.
        "RAYPLANE_FAULT": "metering_after_send",
        "RAYPLANE_FAULT_ONCE": str(marker),
        "RAYPLANE_LOG_LEVEL": "WARNING",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        # prefork: the task runs in a child; the parent sees it die and starts another one.
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "worker",
                "-Q",
                queue,
                "--concurrency",
                "1",
                "--pool",
                "prefork",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sender = Celery("test", broker=settings.redis_url.replace("unix://", "redis+socket://"))
    try:
        sender.send_task("rayplane.billing.meter", queue=queue)
        records: list[MeteringRecord] = []
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            assert worker.poll() is None, log_path.read_text()[-3000:]
            records = _statuses(sync_sessions, sub)
            if len(records) == 30 and all(r.status in ("accepted", "duplicate") for r in records):
                break
            time.sleep(0.2)
        assert marker.exists(), "the fault never fired:\n" + log_path.read_text()[-3000:]
        statuses = sorted(r.status for r in records)
        assert statuses == ["accepted"] * 5 + ["duplicate"] * 25, log_path.read_text()[-3000:]
        # The worker's child really died of SIGKILL, and the task was delivered again.
        assert "SIGKILL" in log_path.read_text() or "WorkerLostError" in log_path.read_text()
    finally:
        stop_process_group(worker, timeout=10)
        with sender.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)  # type: ignore[attr-defined]

    # The Marketplace holds exactly one event per (dimension, hour): 30, none twice.
    usage = market.admin("GET", f"/usage?resourceId={sub}")["value"]
    keys = [(e["dimension"], e["effectiveStartTime"]) for e in usage]
    assert len(keys) == 30 == len(set(keys))
    by_key = {(r.dimension, r.hour.strftime("%Y-%m-%dT%H:%M:%SZ")): r for r in records}
    for event in usage:
        record = by_key[(event["dimension"], event["effectiveStartTime"])]
        assert record.usage_event_id == event["usageEventId"]
        assert float(record.quantity) == event["quantity"]
    duplicates = [r for r in records if r.status == "duplicate"]
    assert all(r.attempts == 2 for r in duplicates)
