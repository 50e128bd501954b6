"""A real Celery worker, fed through Redis, runs a core task against Postgres."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import create_engine, text

from rayplane.db.engine import normalize_url
from rayplane.procs import stop_process_group

# Whole-system tests: minutes each on a 2-core machine, more when it is busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
ROOT = Path(__file__).resolve().parents[2]


def test_worker_purges_expired_idempotency_records(database_url: str, redis_url: str, tmp_path: Path) -> None:
    engine = create_engine(normalize_url(database_url))
    tenant_id = f"ten_{uuid.uuid4().hex[:26]}"
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO tenants (id, name, display_name, status, version) VALUES (:id, :n, :n, 'active', 1)"),
            {"id": tenant_id, "n": "w-" + uuid.uuid4().hex[:10]},
        )
        for key, expires in (("old", now - timedelta(hours=1)), ("fresh", now + timedelta(hours=1))):
            conn.execute(
                text(
                    "INSERT INTO idempotency_records"
                    " (tenant_id, key, credential, request_hash, status_code, body, headers, expires_at)"
                    " VALUES (:t, :k, 'api_key:test', 'h', 201, '{}', '{}', :e)"
                ),
                {"t": tenant_id, "k": key, "e": expires},
            )
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "RAYPLANE_DATABASE_URL": database_url,
        "RAYPLANE_REDIS_URL": redis_url,
        "RAYPLANE_DATA_DIR": str(tmp_path),
    }
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
            "solo",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        sender = Celery("test", broker=redis_url.replace("unix://", "redis+socket://"))
        sender.send_task("rayplane.maintenance.purge_idempotency_records", queue=queue)
        deadline = time.monotonic() + 60
        keys: list[str] = ["old", "fresh"]
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                keys = list(
                    conn.execute(
                        text("SELECT key FROM idempotency_records WHERE tenant_id = :t ORDER BY key"), {"t": tenant_id}
                    ).scalars()
                )
            if keys == ["fresh"]:
                break
            assert worker.poll() is None, "worker died"
            time.sleep(0.2)
        assert keys == ["fresh"]
    finally:
        stop_process_group(worker, timeout=10)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tenant_id})
        engine.dispose()
