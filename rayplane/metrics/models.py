"""The metric point table: one row per cluster, tier and time, all of a scrape's figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, SmallInteger, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rayplane.db.base import Base


class MetricPoint(Base):
    """``figures`` maps ``name`` or ``name/group`` to a value (``rayplane.metrics.series``).

    Tier 0 holds each scrape (``at`` on the scrape interval's grid, so two workers scraping the
    same cluster at once write one row) and the Serve counters the next scrape's rates need;
    tiers 1 and 2 hold means over 1 and 15 minutes (``rayplane.metrics.tiers``)."""

    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_tier_at", "tier", "at"),)

    cluster_id: Mapped[str] = mapped_column(String(40), ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True)
    tier: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(primary_key=True)
    figures: Mapped[dict[str, float]] = mapped_column(JSONB)
    counters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
