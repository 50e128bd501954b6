"""Wire shapes of the Marketplace endpoints (landing page, activation, webhook, the tenant's plan)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rayplane.tenants.schemas import TenantOut

GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A purchase token travels in an HTTP header to the Marketplace: printable ASCII only.
PRINTABLE_ASCII = r"^[!-~]+$"


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1,
        max_length=4096,
        pattern=PRINTABLE_ASCII,
        description="The landing page's ?token= value, URL-decoded",
        examples=["GYbrq1JtV2r4x0Qz8lTDgFh6bX0f1Q..."],
    )


class PlanQuotasOut(BaseModel):
    max_clusters: int
    max_nodes: int
    max_gpus: int
    vm_families: list[str]
    spot_allowed: bool


class PlanOut(BaseModel):
    id: str = Field(examples=["team"])
    display_name: str = Field(examples=["Team"])
    quotas: PlanQuotasOut
    dimensions: list[str] = Field(examples=[["vcpu_hours", "gpu_hours"]])


class ResolveOut(BaseModel):
    """What the landing page shows the buyer before they activate. Never a secret or the token."""

    subscription_id: str = Field(examples=["37f9dea2-4345-438f-b0bd-03d40d28c7e0"])
    subscription_name: str = Field(examples=["Contoso ML platform"])
    offer_id: str = Field(examples=["rayplane"])
    plan_id: str = Field(examples=["team"])
    plan: PlanOut | None = Field(description="What the plan allows; null if this Rayplane does not offer it")
    quantity: int | None = None
    status: str = Field(examples=["PendingFulfillmentStart"])
    purchaser_email: str | None = Field(default=None, examples=["ops@contoso.com"])
    purchaser_tenant_id: str | None = Field(
        default=None,
        description="The buyer's Entra tenant id: who must sign in to activate",
        examples=["72f988bf-86f1-41af-91ab-2d7cd011db47"],
    )
    activated: bool = Field(description="Whether a Rayplane tenant is already bound to this subscription")


class ActivateIn(BaseModel):
    """Exactly one of ``token`` (from the landing page) or ``subscription_id``."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, min_length=1, max_length=4096, pattern=PRINTABLE_ASCII)
    subscription_id: str | None = Field(default=None, pattern=GUID)

    @model_validator(mode="after")
    def _one(self) -> ActivateIn:
        if (self.token is None) == (self.subscription_id is None):
            raise ValueError("give exactly one of token and subscription_id")
        return self


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["37f9dea2-4345-438f-b0bd-03d40d28c7e0"])
    offer_id: str
    plan_id: str
    quantity: int | None = None
    status: str = Field(examples=["Subscribed"], description="Subscribed, Suspended or Unsubscribed")
    purchaser_email: str | None = None
    last_event_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    created_at: datetime


class ActivateOut(BaseModel):
    tenant: TenantOut
    subscription: SubscriptionOut
    created: bool = Field(description="True when this call created the tenant; false when it linked or repeated")


class TenantPlanOut(BaseModel):
    """The caller's tenant: its current Marketplace subscription and what its plan allows."""

    subscription: SubscriptionOut | None
    plan: PlanOut | None


class WebhookIn(BaseModel):
    """The Marketplace's webhook body, as documented. Only ``id`` and ``subscriptionId`` are
    required; every other field may be missing, empty or of another type, and unknown fields
    are kept as sent (``rayplane.marketplace.webhook.parse`` reads it, tolerantly)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=64, description="The operation id")
    subscriptionId: str = Field(min_length=1, max_length=64)  # noqa: N815 - Azure's spelling
    action: str | None = Field(default=None, description="Claimed only: the operation read from Azure decides")
    timeStamp: str | None = Field(default=None, description="ISO 8601; no offset means UTC")  # noqa: N815
    activityId: str | None = None  # noqa: N815
    offerId: str | None = None  # noqa: N815
    planId: str | None = None  # noqa: N815
    quantity: int | str | None = None
    status: str | None = None
    subscription: dict[str, Any] | None = None


class WebhookAck(BaseModel):
    status: str = Field(examples=["received"], description="received, or duplicate for a delivery seen before")
    operation_id: str
