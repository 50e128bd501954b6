"""clusters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:54:32.930348
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clouds",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("ray_versions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_clouds_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clouds")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_clouds_tenant_name"),
    )
    op.create_index(op.f("ix_clouds_tenant_id"), "clouds", ["tenant_id"], unique=False)
    op.create_index(
        "uq_clouds_one_default", "clouds", ["tenant_id"], unique=True, postgresql_where=sa.text("is_default")
    )
    op.create_table(
        "clusters",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("cloud_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("labels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("desired_state", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_reason", sa.String(length=1000), nullable=True),
        sa.Column("state_code", sa.String(length=80), nullable=True),
        sa.Column("observed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("observed_generation", sa.Integer(), nullable=False),
        sa.Column("provider_state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dashboard_url", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_requested", sa.Boolean(), nullable=False),
        sa.Column("next_reconcile_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cloud_id"], ["clouds.id"], name=op.f("fk_clusters_cloud_id_clouds"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_clusters_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
    )
    op.create_index(op.f("ix_clusters_cloud_id"), "clusters", ["cloud_id"], unique=False)
    op.create_index(
        "ix_clusters_due",
        "clusters",
        ["next_reconcile_at"],
        unique=False,
        postgresql_where=sa.text("next_reconcile_at IS NOT NULL"),
    )
    op.create_index("ix_clusters_tenant_id_id", "clusters", ["tenant_id", "id"], unique=False)
    op.create_index(
        "uq_clusters_live_name",
        "clusters",
        ["tenant_id", "name"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "cluster_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("cluster_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("code", sa.String(length=80), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_cluster_events_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_cluster_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_events")),
    )
    op.create_index("ix_cluster_events_cluster_id_id", "cluster_events", ["cluster_id", "id"], unique=False)
    op.create_index(op.f("ix_cluster_events_tenant_id"), "cluster_events", ["tenant_id"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("cluster_id", sa.String(length=40), nullable=False),
        sa.Column("submission_id", sa.String(length=100), nullable=False),
        sa.Column("entrypoint", sa.Text(), nullable=False),
        sa.Column("runtime_env", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("entrypoint_num_cpus", sa.Float(), nullable=True),
        sa.Column("entrypoint_num_gpus", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("driver_exit_code", sa.Integer(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("logs", sa.Text(), nullable=True),
        sa.Column("logs_truncated", sa.Boolean(), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_jobs_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_jobs_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("cluster_id", "submission_id", name="uq_jobs_cluster_submission"),
    )
    op.create_index(
        "ix_jobs_active",
        "jobs",
        ["cluster_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('PENDING', 'RUNNING')"),
    )
    op.create_index("ix_jobs_cluster_id_id", "jobs", ["cluster_id", "id"], unique=False)
    op.create_index(op.f("ix_jobs_tenant_id"), "jobs", ["tenant_id"], unique=False)
    op.create_table(
        "operations",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("cluster_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("target_generation", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=80), nullable=True),
        sa.Column("error_message", sa.String(length=1000), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_operations_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_operations_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index(
        "ix_operations_cluster_running",
        "operations",
        ["cluster_id"],
        unique=False,
        postgresql_where=sa.text("status = 'Running'"),
    )
    op.create_index(op.f("ix_operations_tenant_id"), "operations", ["tenant_id"], unique=False)
    op.create_table(
        "usage_intervals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("cluster_id", sa.String(length=40), nullable=False),
        sa.Column("group_name", sa.String(length=63), nullable=False),
        sa.Column("vm_size", sa.String(length=64), nullable=False),
        sa.Column("spot", sa.Boolean(), nullable=False),
        sa.Column("node_count", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"], ["clusters.id"], name=op.f("fk_usage_intervals_cluster_id_clusters"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_usage_intervals_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_intervals")),
    )
    op.create_index("ix_usage_tenant_started", "usage_intervals", ["tenant_id", "started_at"], unique=False)
    op.create_index(
        "uq_usage_open",
        "usage_intervals",
        ["cluster_id", "group_name"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.add_column("tenants", sa.Column("quota_vcpus", sa.Integer(), nullable=True))
    op.add_column("tenants", sa.Column("quota_clusters", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tenants", "quota_clusters")
    op.drop_column("tenants", "quota_vcpus")
    op.drop_index("uq_usage_open", table_name="usage_intervals", postgresql_where=sa.text("ended_at IS NULL"))
    op.drop_index("ix_usage_tenant_started", table_name="usage_intervals")
    op.drop_table("usage_intervals")
    op.drop_index(op.f("ix_operations_tenant_id"), table_name="operations")
    op.drop_index(
        "ix_operations_cluster_running", table_name="operations", postgresql_where=sa.text("status = 'Running'")
    )
    op.drop_table("operations")
    op.drop_index(op.f("ix_jobs_tenant_id"), table_name="jobs")
    op.drop_index("ix_jobs_cluster_id_id", table_name="jobs")
    op.drop_index("ix_jobs_active", table_name="jobs", postgresql_where=sa.text("status IN ('PENDING', 'RUNNING')"))
    op.drop_table("jobs")
    op.drop_index(op.f("ix_cluster_events_tenant_id"), table_name="cluster_events")
    op.drop_index("ix_cluster_events_cluster_id_id", table_name="cluster_events")
    op.drop_table("cluster_events")
    op.drop_index("uq_clusters_live_name", table_name="clusters", postgresql_where=sa.text("deleted_at IS NULL"))
    op.drop_index("ix_clusters_tenant_id_id", table_name="clusters")
    op.drop_index("ix_clusters_due", table_name="clusters", postgresql_where=sa.text("next_reconcile_at IS NOT NULL"))
    op.drop_index(op.f("ix_clusters_cloud_id"), table_name="clusters")
    op.drop_table("clusters")
    op.drop_index("uq_clouds_one_default", table_name="clouds", postgresql_where=sa.text("is_default"))
    op.drop_index(op.f("ix_clouds_tenant_id"), table_name="clouds")
    op.drop_table("clouds")
