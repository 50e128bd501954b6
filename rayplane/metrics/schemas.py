"""The answer of ``GET /v1/clusters/{id}/metrics`` (and ``/v1/services/{id}/metrics``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from rayplane.metrics.series import Figure


class Series(BaseModel):
    name: Figure
    group: str | None = Field(description="The worker group (or head); null for the whole cluster")
    points: list[tuple[datetime, float]] = Field(description="[time, value] pairs, oldest first; a gap is no scrape")


class MetricsOut(BaseModel):
    cluster_id: str
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    step_seconds: int = Field(description="Each point is the mean over this many seconds from its time")
    resolution_seconds: int = Field(description="Of the stored tier that answered (15 s, 1 min or 15 min)")
    series: list[Series]
