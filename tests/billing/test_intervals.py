"""Usage intervals carry per-node vCPUs and GPUs: recorded from the catalog, backfilled by
the migration for rows that predate it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from rayplane import catalog
from rayplane.db.base import utcnow
from rayplane.db.engine import normalize_url
from rayplane.db.migrate import downgrade, upgrade
from rayplane.usage import store as usage_store
from rayplane.usage.models import UsageInterval
from tests.billing.conftest import World
from tests.support.services import scratch_database


def test_recorded_intervals_copy_the_catalog_shape(world: World, sync_sessions: sessionmaker[Session]) -> None:
    tenant = world.tenant()
    cluster = world.cluster(tenant)
    groups = [
        usage_store.GroupUsage("head", "standard_d4s_v5", False, 1, catalog.get("standard_d4s_v5")),
        usage_store.GroupUsage("gpu", "Standard_NC48ads_A100_v4", True, 2, catalog.get("Standard_NC48ads_A100_v4")),
    ]
    with sync_sessions() as s, s.begin():
        usage_store.record_observation(s, tenant_id=tenant, cluster_id=cluster, groups=groups, at=utcnow())
    with sync_sessions() as s:
        rows = s.execute(select(UsageInterval).where(UsageInterval.cluster_id == cluster)).scalars()
        assert sorted((u.group_name, u.node_count, u.vcpus, u.gpus) for u in rows) == [
            ("gpu", 2, 48, 2),
            ("head", 1, 4, 0),
        ]


def test_migration_backfills_existing_intervals(admin_db_url: str) -> None:
    with scratch_database(admin_db_url) as url:
        upgrade(url, "0004")
        engine = create_engine(normalize_url(url))
        now = utcnow()
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO tenants (id, name, display_name, status, version)"
                        " VALUES ('ten_m', 'm', 'm', 'active', 1)"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO clusters (id, tenant_id, name, spec, labels, generation, desired_state, state,"
                        " observed, observed_generation, provider_state, attempts, retry_requested, version)"
                        " VALUES ('cls_m', 'ten_m', 'm', '{}', '{}', 1, 'running', 'RUNNING', '{}', 1, '{}', 0,"
                        " false, 1)"
                    )
                )
                for i, size in enumerate(("standard_nc24ads_a100_v4", "Standard_D8s_v5", "Standard_Unknown_v9")):
                    conn.execute(
                        text(
                            "INSERT INTO usage_intervals (id, tenant_id, cluster_id, group_name, vm_size, spot,"
                            " node_count, started_at, ended_at)"
                            " VALUES (:id, 'ten_m', 'cls_m', :g, :size, false, 1, :s, :e)"
                        ),
                        {"id": f"use_{i}", "g": f"g{i}", "size": size, "s": now - timedelta(hours=1), "e": now},
                    )
            upgrade(url)
            with engine.connect() as conn:
                shapes = conn.execute(text("SELECT vm_size, vcpus, gpus FROM usage_intervals ORDER BY id")).all()
            assert [tuple(r) for r in shapes] == [
                ("standard_nc24ads_a100_v4", 24, 1),
                ("Standard_D8s_v5", 8, 0),
                ("Standard_Unknown_v9", 0, 0),
            ]
            downgrade(url, "0004")
            upgrade(url)
        finally:
            engine.dispose()
