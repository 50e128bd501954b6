"""Wire shapes of clouds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: int = Field(ge=1, le=4096, strict=True, description="CPUs this cloud may use for Ray nodes")
    memory_gib: float = Field(gt=0, le=65536, strict=True)
    gpus: int = Field(default=0, ge=0, le=512, strict=True)
    max_nodes: int = Field(default=16, ge=1, le=10000, strict=True, description="Most Ray nodes (processes) at once")


_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class AzureCloud(BaseModel):
    """Where in the customer's Azure Rayplane runs clusters, and how it gets in."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: str = Field(pattern=_GUID, description="The customer's Azure subscription")
    resource_group: str = Field(min_length=1, max_length=90, pattern=r"^[-\w\._\(\)]*[-\w_\(\)]$", examples=["ml-prod"])
    region: str = Field(min_length=2, max_length=40, pattern=r"^[a-z0-9]+$", examples=["eastus2"])
    tenant_id: str = Field(pattern=_GUID, description="The customer's Entra tenant id")
    auth_mode: Literal["app_consent", "federated", "lighthouse"] = Field(
        default="app_consent",
        description="app_consent: admin consent to Rayplane's app; federated: workload identity, no secret; "
        "lighthouse: the resource group is delegated to Rayplane's tenant",
    )
    aks_mode: Literal["managed", "existing"] = Field(
        default="managed", description="managed: Rayplane creates the AKS cluster; existing: adopt one"
    )
    aks_cluster_name: str = Field(
        default="rayplane", min_length=1, max_length=63, pattern=r"^[a-zA-Z0-9][-_a-zA-Z0-9]*$"
    )
    container_insights: bool = Field(default=False, strict=True, description="Enable Container Insights (managed mode)")


class CloudCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=3, max_length=63, examples=["laptop"])
    provider: Literal["local", "azure"] = "local"
    capacity: Capacity | None = Field(default=None, description="local only; defaults to this machine's")
    azure: AzureCloud | None = Field(default=None, description="azure only: the subscription and access mode")
    default: bool = Field(default=False, strict=True, description="Use this cloud when a cluster names none")


class CloudOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["cld_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    name: str
    provider: str
    status: str
    status_reason: str | None = None
    is_default: bool
    config: dict[str, Any]
    ray_versions: list[str]
    admin_consent_url: str | None = Field(
        default=None, description="app_consent clouds: where the customer's admin grants consent to Rayplane's app"
    )
    created_at: datetime
    updated_at: datetime
