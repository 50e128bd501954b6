"""Wire shapes of metering records, usage reports, the overview, estimates and budgets.

Money is USD as JSON numbers; a figure the catalog cannot price is ``null``, and the sizes
that lacked a price are listed next to it, so a portal never shows an invented number.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from rayplane.clusters.schemas import ClusterEventOut, HeadSpec, WorkerGroupSpec

MeteringStatus = Literal["pending", "submitted", "accepted", "duplicate", "expired", "rejected", "dry_run"]
GroupBy = Literal["day", "cluster", "dimension"]


class MeteringRecordOut(BaseModel):
    """One hour of one dimension; (subscription_id, dimension, hour) identifies it."""

    model_config = ConfigDict(from_attributes=True)

    subscription_id: str = Field(description="The Azure Marketplace SaaS subscription (the event's resourceId)")
    plan_id: str
    dimension: str = Field(examples=["vcpu_hours"])
    hour: datetime = Field(description="Start of the UTC hour (the event's effectiveStartTime)")
    quantity: float = Field(examples=[12.5])
    status: MeteringStatus = Field(
        description="pending, submitted (sent, answer not yet recorded), accepted, duplicate (the Marketplace "
        "already had the hour: counted as accepted), expired (not accepted within 24 hours), rejected (see "
        "reason), dry_run (computed in dry-run mode, never sent)"
    )
    reason: str | None = None
    usage_event_id: str | None = Field(default=None, description="The Marketplace's id of the accepted event")
    message_time: datetime | None = None
    attempts: int
    submitted_at: datetime | None = None
    resolved_at: datetime | None = None
    created_at: datetime


class UsageRow(BaseModel):
    """One group of a usage report.

    ``group_by=day`` (key ``YYYY-MM-DD``, UTC) and ``cluster`` (key the cluster id, label its
    name) fill the hours and cost; ``group_by=dimension`` gives one row per metering dimension
    with ``quantity`` in ``unit`` (cost is not split by dimension; see the totals).
    """

    key: str
    label: str | None = None
    vcpu_hours: float | None = None
    gpu_hours: float | None = None
    node_hours: float | None = None
    cost_usd: float | None = Field(default=None, description="Catalog price x node-hours; null if nothing was priced")
    unpriced_vm_sizes: list[str] = Field(default_factory=list, description="Sizes whose cost is not included")
    quantity: float | None = None
    unit: str | None = None
    usd_per_unit: float | None = Field(
        default=None, description="group_by=dimension: Rayplane's fee per unit on the tenant's plan (null without one)"
    )
    fee_usd: float | None = Field(default=None, description="group_by=dimension: quantity x usd_per_unit")


class FeeLine(BaseModel):
    """Rayplane's fee for one metering dimension of one plan (billed by the Azure Marketplace)."""

    plan_id: str = Field(examples=["team"])
    dimension: str = Field(examples=["vcpu_hours"])
    unit: str = Field(examples=["vCPU hour"])
    usd_per_unit: float = Field(examples=[0.008], description="The plan's price for one unit")


class EstimateFee(FeeLine):
    min_units_per_hour: float = Field(description="Units per hour at min nodes (vCPUs or GPUs running)")
    max_units_per_hour: float = Field(description="Units per hour at max nodes")
    min_usd_per_hour: float
    max_usd_per_hour: float


class UsageFee(FeeLine):
    quantity: float = Field(description="Units observed in the window")
    usd: float = Field(description="quantity x usd_per_unit")


class UsageTotals(BaseModel):
    vcpu_hours: float
    gpu_hours: float
    node_hours: float
    cost_usd: float | None
    unpriced_node_hours: float = Field(description="Node-hours of sizes without a catalog price (not in cost_usd)")
    unpriced_vm_sizes: list[str]


class UsageReport(BaseModel):
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    group_by: GroupBy
    currency: Literal["USD"] = "USD"
    items: list[UsageRow]
    totals: UsageTotals
    plan_id: str | None = Field(
        default=None, description="The tenant's Marketplace plan; null when it has none (then no fee is metered)"
    )
    fees: list[UsageFee] = Field(
        default_factory=list,
        description="Rayplane's fee per dimension for the window's usage: the tenant's plan, or every plan when it "
        "has none (for comparison)",
    )
    fee_usd: float | None = Field(default=None, description="Sum of the fees of the tenant's plan; null without one")
    fee_note: str | None = None

    model_config = ConfigDict(populate_by_name=True)


class SpendOut(BaseModel):
    month: str = Field(examples=["2026-11"], description="UTC calendar month")
    month_to_date_usd: float | None = Field(description="null when none of the usage had a catalog price")
    unpriced_vm_sizes: list[str]
    budget_usd: float | None = None
    percent_of_budget: float | None = None
    hard_stop: bool = False
    blocked: bool = False


class BudgetAlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    threshold: int = Field(description="Percent of the budget")
    at: datetime
    spend_usd: float
    amount_usd: float


class OverviewEvent(ClusterEventOut):
    """A cluster event (the same shape as ``GET /v1/clusters/{id}/events``) with its cluster."""

    cluster_id: str
    cluster_name: str


class Overview(BaseModel):
    clusters_by_state: dict[str, int] = Field(examples=[{"RUNNING": 2, "STOPPED": 1}])
    clusters_total: int = Field(description="Live clusters (deleted ones are not counted)")
    running_nodes: int = Field(description="Nodes observed running now, heads included")
    spend: SpendOut
    budget_alerts: list[BudgetAlertOut] = Field(description="Thresholds reached this month")
    recent_events: list[OverviewEvent] = Field(description="Newest first")


class EstimateRequest(BaseModel):
    """A cluster spec; takes a create body as it is (fields other than these are ignored)."""

    model_config = ConfigDict(extra="ignore")

    head: HeadSpec = Field(default_factory=HeadSpec)
    worker_groups: list[WorkerGroupSpec] = Field(default_factory=list, max_length=16)


class EstimateLine(BaseModel):
    group: str = Field(examples=["head"])
    vm_size: str
    spot: bool
    min_nodes: int
    max_nodes: int
    usd_per_node_hour: float | None = Field(description="Catalog pay-as-you-go price; null when unknown")
    min_usd_per_hour: float | None
    max_usd_per_hour: float | None
    price_region: str | None = None
    price_date: str | None = None
    price_source: str | None = None


class Estimate(BaseModel):
    currency: Literal["USD"] = "USD"
    complete: bool = Field(description="Every size has a catalog price")
    min_usd_per_hour: float | None = Field(description="At min nodes; null unless complete")
    max_usd_per_hour: float | None = Field(description="At max nodes; null unless complete")
    priced_min_usd_per_hour: float = Field(description="The priced lines only, at min nodes")
    priced_max_usd_per_hour: float = Field(description="The priced lines only, at max nodes")
    unpriced_vm_sizes: list[str]
    lines: list[EstimateLine]
    note: str
    plan_id: str | None = Field(
        default=None, description="The tenant's Marketplace plan; null when it has none (then no fee is metered)"
    )
    fees: list[EstimateFee] = Field(
        default_factory=list,
        description="Rayplane's fee per dimension beside the Azure compute price: the tenant's plan, or every plan "
        "when it has none (for comparison)",
    )
    fee_min_usd_per_hour: float | None = Field(
        default=None, description="The tenant's plan's fees at min nodes; null without a plan"
    )
    fee_max_usd_per_hour: float | None = Field(
        default=None, description="The tenant's plan's fees at max nodes; null without a plan"
    )
    fee_note: str | None = None


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_usd: Decimal = Field(gt=0, le=10_000_000, decimal_places=2, description="Monthly limit, USD")
    alert_thresholds: list[StrictInt] = Field(
        default_factory=lambda: [50, 80, 100],
        max_length=10,
        description="Percents of the budget that raise an alert, once each per month",
    )
    hard_stop: bool = Field(default=False, strict=True, description="Stop every cluster when spend reaches the budget")

    @field_validator("alert_thresholds")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        if any(not 1 <= t <= 1000 for t in value):
            raise ValueError("each threshold is a percent from 1 to 1000")
        if len(set(value)) != len(value):
            raise ValueError("thresholds must be distinct")
        return sorted(value)


class BudgetOut(BaseModel):
    amount_usd: float
    alert_thresholds: list[int]
    hard_stop: bool
    spend: SpendOut
    blocked_reason: str | None = Field(description="Why creates and starts are refused, when they are")
    alerts: list[BudgetAlertOut] = Field(description="Thresholds reached this month")
    created_at: datetime
    updated_at: datetime
