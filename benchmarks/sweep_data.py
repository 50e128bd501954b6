"""Data for the due-sweep benchmark (``benchmarks/sweep.py``): data sets, seeding, settings.

Split from sweep.py: what the measured tables hold and how they are filled.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from rayplane.db.ids import new_id

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "RESULTS-sweep.md"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DUE_INDEX = "ix_clusters_due"
HOLD_SECONDS = 15
LIMITS = (500, 2000)
WARMUP_ROUNDS = 2
TARGET_MS = 100.0
TARGET_SIZE = 100_000
TARGET_FRACTION = 0.01


# The naive variant: sequential scans only (one round trip, transaction-local).
NAIVE_SETTINGS = "SELECT set_config('enable_indexscan', 'off', true), set_config('enable_bitmapscan', 'off', true)"


class BenchmarkError(RuntimeError):
    """A run that cannot produce trustworthy figures (wrong claim count, due set drifted)."""


# ---- data sets --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    size: int
    due: int
    equal_due: bool  # the extra data set that matches the largest size's due count

    @property
    def label(self) -> str:
        return f"{self.size:,} rows, {self.due:,} due ({100 * self.due / self.size:g}%)"


def data_sets(sizes: Sequence[int], fraction: float) -> list[DataSet]:
    largest = max(sizes)
    big_due = round(fraction * largest)
    out: list[DataSet] = []
    for size in sorted(set(sizes)):
        out.append(DataSet(size, round(fraction * size), equal_due=False))
        if size < largest and big_due != round(fraction * size) and big_due <= size // 2:
            out.append(DataSet(size, big_due, equal_due=True))
    return out


COLUMNS = (
    "id",
    "tenant_id",
    "cloud_id",
    "name",
    "spec",
    "labels",
    "generation",
    "desired_state",
    "state",
    "state_reason",
    "state_code",
    "observed",
    "observed_generation",
    "provider_state",
    "dashboard_url",
    "attempts",
    "retry_requested",
    "next_reconcile_at",
    "lease_owner",
    "lease_expires_at",
    "last_activity_at",
    "deleted_at",
    "created_at",
    "updated_at",
    "version",
)

# Rows that are not due: (weight, state, desired_state, scheduled in the future?)
NOT_DUE_MIX = (
    (75, "RUNNING", "running", True),
    (5, "PROVISIONING", "running", True),
    (2, "UPDATING", "running", True),
    (10, "STOPPED", "stopped", False),
    (6, "DELETED", "deleted", False),
    (2, "FAILED", "running", False),
)
# Rows that are due: a steady check that is overdue, or a busy cluster waiting for its next look.
DUE_MIX = (
    (80, "RUNNING", "running"),
    (8, "PROVISIONING", "running"),
    (4, "UPDATING", "running"),
    (4, "STOPPING", "stopped"),
    (4, "DELETING", "deleted"),
)


def _spec(i: int) -> str:
    return json.dumps(
        {
            "ray_version": "2.49.0",
            "image": None,
            "head": {"vm_size": "Standard_D4s_v5"},
            "worker_groups": [
                {
                    "name": "cpu",
                    "vm_size": "Standard_D8s_v5",
                    "min_nodes": i % 3,
                    "max_nodes": 4 + i % 5,
                    "spot": bool(i % 2),
                    "fallback_to_on_demand": False,
                }
            ],
            "idle_timeout_minutes": 60 if i % 4 else None,
        }
    )


def _observed(i: int, live: bool) -> str:
    if not live:
        return "{}"
    return json.dumps(
        {
            "head": {"ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", "ready": True},
            "groups": {"cpu": {"nodes": 1 + i % 4, "ready": 1 + i % 4}},
        }
    )


def seed(url: str, ds: DataSet) -> tuple[list[str], list[datetime]]:
    """Inserts the tenant, cloud and clusters; returns the due rows' ids and original times."""
    rng = random.Random(ds.size * 1_000_003 + ds.due)
    now = datetime.now(UTC)
    tenant_id, cloud_id = new_id("ten"), new_id("cld")
    due_index = set(rng.sample(range(ds.size), ds.due))
    not_due_states = [(state, desired, future) for w, state, desired, future in NOT_DUE_MIX for _ in range(w)]
    due_states = [(state, desired) for w, state, desired in DUE_MIX for _ in range(w)]
    due_ids: list[str] = []
    due_at: list[datetime] = []
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, display_name, status, version) VALUES (%s, %s, %s, 'active', 1)",
            (tenant_id, "bench-sweep", "Sweep benchmark"),
        )
        conn.execute(
            "INSERT INTO clouds (id, tenant_id, name, provider, status, is_default, config, ray_versions, version)"
            " VALUES (%s, %s, 'local', 'local', 'READY', true, %s, %s, 1)",
            (cloud_id, tenant_id, '{"capacity": {"cpus": 64}}', '["2.49.0"]'),
        )
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        with conn.cursor() as cur, cur.copy(sql.SQL("COPY clusters ({}) FROM STDIN").format(columns)) as copy:
            for i in range(ds.size):
                cid = new_id("cls")
                created = now - timedelta(days=30, seconds=ds.size - i)
                deleted_at: datetime | None = None
                if i in due_index:
                    state, desired = due_states[rng.randrange(len(due_states))]
                    past = now - timedelta(seconds=rng.uniform(1, 600))
                    due_ids.append(cid)
                    due_at.append(past)
                    at: datetime | None = past
                else:
                    state, desired, scheduled = not_due_states[rng.randrange(len(not_due_states))]
                    at = now + timedelta(seconds=3600 + rng.uniform(0, 3600)) if scheduled else None
                    if state == "DELETED":
                        deleted_at = now - timedelta(days=1, seconds=i)
                live = state in ("RUNNING", "UPDATING", "STOPPING")
                copy.write_row(
                    (
                        cid,
                        tenant_id,
                        cloud_id,
                        f"cluster-{i:07d}",
                        _spec(i),
                        '{"team": "bench"}',
                        1 + i % 3,
                        desired,
                        state,
                        None if state != "FAILED" else "gave up after 5 attempts: quota exceeded",
                        None if state != "FAILED" else "QuotaExceeded",
                        _observed(i, live),
                        1 + i % 3,
                        json.dumps({"resource_group": f"rg-{cid}"}) if state != "DELETED" else "{}",
                        f"https://{cid}.dashboards.example.net" if live else None,
                        0 if state != "FAILED" else 5,
                        False,
                        at,
                        None,
                        None,
                        now - timedelta(minutes=i % 120),
                        deleted_at,
                        created,
                        created,
                        1 + i % 7,
                    )
                )
        # The benchmark vacuums between repeats itself; no background vacuum inside a timing.
        conn.execute("ALTER TABLE clusters SET (autovacuum_enabled = false)")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE clusters")
        found = count_due(conn)
        if found != ds.due:
            raise BenchmarkError(f"seeded {found} due rows, wanted {ds.due}")
    return due_ids, due_at


def count_due(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM clusters WHERE next_reconcile_at IS NOT NULL AND next_reconcile_at <= now()"
    ).fetchone()
    assert row is not None
    return int(row[0])


# ---- measuring --------------------------------------------------------------------------
