"""The job table. A job's record and final logs outlive its cluster."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base, ResourceMixin

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
ACTIVE = ("PENDING", "RUNNING")


class Job(ResourceMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("cluster_id", "submission_id", name="uq_jobs_cluster_submission"),
        Index("ix_jobs_cluster_id_id", "cluster_id", "id"),
        Index("ix_jobs_active", "cluster_id", postgresql_where=text("status IN ('PENDING', 'RUNNING')")),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # SET NULL-free: clusters are soft-deleted (DELETED rows stay), so the reference holds.
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    submission_id: Mapped[str] = mapped_column(String(100))
    entrypoint: Mapped[str] = mapped_column(Text)
    runtime_env: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    job_metadata: Mapped[dict[str, str]] = mapped_column("metadata", JSONB, default=dict)
    entrypoint_num_cpus: Mapped[float | None] = mapped_column(Float)
    entrypoint_num_gpus: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="PENDING")
    message: Mapped[str | None] = mapped_column(Text)
    driver_exit_code: Mapped[int | None] = mapped_column(Integer)
    submitted_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    logs: Mapped[str | None] = mapped_column(Text)
    logs_truncated: Mapped[bool] = mapped_column(default=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL
