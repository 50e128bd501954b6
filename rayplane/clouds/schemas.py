"""Wire shapes of clouds."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: int = Field(ge=1, le=4096, strict=True, description="CPUs this cloud may use for Ray nodes")
    memory_gib: float = Field(gt=0, le=65536, strict=True)
    gpus: int = Field(default=0, ge=0, le=512, strict=True)
    max_nodes: int = Field(default=16, ge=1, le=10000, strict=True, description="Most Ray nodes (processes) at once")


_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A storage account's ARM id (ARM compares the fixed segments case-insensitively; account names
# are 3-24 lowercase letters and digits).
_ACCOUNT_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"/resourceGroups/[-\w\._\(\)]{0,89}[-\w_\(\)]/providers/Microsoft\.Storage/storageAccounts/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


class GcsRedis(BaseModel):
    """The Redis that heads with ``gcs_fault_tolerance`` keep Ray's GCS in (KubeRay's
    ``gcsFaultToleranceOptions``), e.g. an Azure Cache for Redis the AKS cluster reaches. Its
    password stays in Kubernetes: a Secret the operator creates in the AKS cluster, which
    Rayplane copies into each fault-tolerant cluster's namespace."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        min_length=3,
        max_length=300,
        pattern=r"^(rediss?://)?[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$",
        description="host:port, or rediss://host:port for TLS (Azure Cache for Redis: rediss://<name>.redis.cache.windows.net:6380)",
        examples=["rediss://rayplane-gcs.redis.cache.windows.net:6380"],
    )
    password_secret: str = Field(
        min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", description="The Secret's name"
    )
    password_secret_namespace: str = Field(
        default="kuberay-system", min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    password_key: str = Field(default="password", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    username: str | None = Field(default=None, min_length=1, max_length=128, description="A Redis ACL user, if any")


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
    gcs_redis: GcsRedis | None = Field(
        default=None, description="For clusters with head.gcs_fault_tolerance: the Redis their GCS uses"
    )
    durable_logs: bool = Field(
        default=True,
        strict=True,
        description="Ship every Ray pod's logs into a storage account in this subscription (needs the right to "
        "create role assignments); false: no sidecar, no identity, no account",
    )
    log_storage_account_id: str | None = Field(
        default=None,
        max_length=300,
        description="An existing storage account (ARM id, in this subscription) for the durable logs, instead of "
        "one Rayplane creates; Rayplane adds the ray-logs container and its retention rule to it",
        examples=[
            "/subscriptions/3a9e5f21-7c4b-4e8d-a1f6-9b2c7d5e0f48/resourceGroups/ml-prod/providers/"
            "Microsoft.Storage/storageAccounts/contosologs"
        ],
    )

    @field_validator("log_storage_account_id")
    @classmethod
    def _log_account(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A storage account's ARM id with a valid name, in the cloud's subscription (the cloud's
        credential and the shippers' role assignments are scoped to it), and logs not turned off."""
        if value is None:
            return None
        found = _ACCOUNT_ID.match(value)
        if found is None:
            raise ValueError(
                "must be a storage account's ARM id: /subscriptions/<subscription>/resourceGroups/<group>"
                "/providers/Microsoft.Storage/storageAccounts/<account>"
            )
        if not _ACCOUNT_NAME.match(found.group("name")):
            raise ValueError("a storage account's name is 3-24 lowercase letters and digits")
        subscription = info.data.get("subscription_id")
        if subscription and found.group("sub").lower() != str(subscription).lower():
            raise ValueError(f"the storage account must be in the cloud's subscription {subscription}")
        if info.data.get("durable_logs") is False:
            raise ValueError("names the account of durable logs, which durable_logs: false turns off")
        return value

    def config(self) -> dict[str, Any]:
        """The stored config (``gcs_redis`` and ``log_storage_account_id`` only when given, so other
        clouds read as before)."""
        out = self.model_dump(exclude={"gcs_redis", "log_storage_account_id"})
        if self.gcs_redis is not None:
            out["gcs_redis"] = self.gcs_redis.model_dump(exclude_none=True)
        if self.log_storage_account_id is not None:
            out["log_storage_account_id"] = self.log_storage_account_id
        return out


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
