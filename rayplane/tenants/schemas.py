"""Wire shapes of tenants."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["ten_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    name: str = Field(examples=["contoso"])
    display_name: str = Field(examples=["Contoso Ltd"])
    entra_tenant_id: str | None = Field(default=None, examples=["72f988bf-86f1-41af-91ab-2d7cd011db47"])
    status: str = Field(examples=["active"])
    log_retention_days: int | None = Field(
        default=None,
        description="Days the clusters' logs are kept after their last write; null: the deployment's default (30)",
    )
    created_at: datetime
    updated_at: datetime


class TenantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    entra_tenant_id: str | None = None
    log_retention_days: int | None = Field(
        default=None, ge=1, le=3650, strict=True, description="1 to 3650 days (admins)"
    )
