"""Wire shapes of clusters, operations and events.

Pydantic checks shapes (types, lengths, patterns); rules that need data (the catalog, the
cloud, quotas) are checked by ``rayplane.clusters.validation`` with the same field paths.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.values import DesiredState, OperationKind, OperationStatus, State

DNS_1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
GROUP_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# Labels are bounded as Kubernetes bounds them (they may become KubeRay labels): a key is an
# optional DNS-subdomain prefix (<= 253) and "/", then a name (<= 63); a value is empty or a
# name; at most MAX_LABELS of them.
MAX_LABELS = 32
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _label_key(key: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        raise ValueError("a label key's prefix is a DNS subdomain of at most 253 characters (e.g. example.com/)")
    if not (len(name) <= 63 and _LABEL_NAME.match(name)):
        raise ValueError(
            "a label key's name is 1-63 characters: letters, digits, '-', '_' and '.', "
            "beginning and ending with a letter or digit"
        )
    return key


def _label_value(value: str) -> str:
    if value and not (len(value) <= 63 and _LABEL_NAME.match(value)):
        raise ValueError(
            "a label value is empty or 1-63 characters: letters, digits, '-', '_' and '.', "
            "beginning and ending with a letter or digit"
        )
    return value


LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Labels = dict[LabelKey, LabelValue]


GCS_FT_DESCRIPTION = (
    "Head-node fault tolerance (Ray's GCS fault tolerance on Redis): the head keeps the cluster's "
    "metadata in Redis, so when it dies it is restarted and detached actors, Serve applications, "
    "job records and the worker nodes survive; drivers running on the head do not. Local clouds use "
    "a Redis of the control plane's (`rayplane dev` starts one for it); an Azure cloud needs a "
    "`gcs_redis` in its config. Changed only while "
    "the cluster is STOPPED. Shown in the spec only when true."
)


class HeadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vm_size: str = Field(default="Standard_D4s_v5", min_length=1, max_length=64, examples=["Standard_D4s_v5"])
    gcs_fault_tolerance: bool = Field(default=False, strict=True, description=GCS_FT_DESCRIPTION)


class HeadPatch(BaseModel):
    """What may change on the head of an existing cluster (its VM size may not)."""

    model_config = ConfigDict(extra="forbid")

    gcs_fault_tolerance: bool | None = Field(default=None, strict=True, description=GCS_FT_DESCRIPTION)


class WorkerGroupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=30, pattern=GROUP_NAME, examples=["cpu"])
    vm_size: str = Field(min_length=1, max_length=64, examples=["Standard_D8s_v5"])
    min_nodes: int = Field(default=0, ge=0, le=1000, strict=True)
    max_nodes: int = Field(default=1, ge=0, le=1000, strict=True)
    spot: bool = Field(default=False, strict=True)
    fallback_to_on_demand: bool = Field(
        default=False, strict=True, description="Use regular VMs when spot capacity is short"
    )


class ClusterCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=DNS_1035, examples=["demo"])
    cloud: str | None = Field(default=None, description="Cloud id or name; default: the tenant's default cloud")
    ray_version: str | None = Field(default=None, description="Default: the newest the cloud runs", examples=["2.60.0"])
    image: str | None = Field(default=None, max_length=300)
    head: HeadSpec = Field(default_factory=HeadSpec)
    worker_groups: list[WorkerGroupSpec] = Field(default_factory=list, max_length=16)
    idle_timeout_minutes: int | None = Field(
        default=None, ge=1, le=10080, strict=True, description="Stop when idle this long"
    )
    labels: Labels = Field(default_factory=dict, max_length=MAX_LABELS)


class ClusterPatch(BaseModel):
    """Fields left out stay as they are; ``worker_groups`` replaces the whole list."""

    model_config = ConfigDict(extra="forbid")

    worker_groups: list[WorkerGroupSpec] | None = Field(default=None, max_length=16)
    idle_timeout_minutes: int | None = Field(default=None, ge=1, le=10080, strict=True)
    head: HeadPatch | None = None
    labels: Labels | None = Field(default=None, max_length=MAX_LABELS)


class ClusterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["cls_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    name: str
    cloud_id: str | None
    state: State = Field(examples=["RUNNING"])
    state_reason: str | None = None
    state_code: str | None = None
    desired_state: DesiredState = Field(examples=["running"])
    spec: dict[str, Any]
    labels: dict[str, str]
    observed: dict[str, Any]
    dashboard_url: str | None = None
    generation: int
    observed_generation: int
    created_at: datetime
    updated_at: datetime

    @field_validator("spec", mode="before")
    @classmethod
    def _spec_json(cls, value: Any) -> Any:
        return value.to_json() if isinstance(value, ClusterSpec) else value


class OperationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["op_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    kind: OperationKind = Field(examples=["create"])
    status: OperationStatus = Field(examples=["Running"])
    cluster_id: str
    target_generation: int
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime
    completed_at: datetime | None = None


class ClusterEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    at: datetime
    kind: str
    from_state: State | None = None
    to_state: State | None = None
    reason: str | None = None
    code: str | None = None
    detail: dict[str, Any] | None = None


class RayTokenOut(BaseModel):
    """A cluster's Ray token: what Ray's dashboard, Jobs API and clients require."""

    token: str = Field(description="Ray's authentication token for this cluster (a secret)")
    header: str = Field(
        default="X-Ray-Authorization",
        description="Send it as `<header>: Bearer <token>` (or `Authorization` when talking to Ray directly); "
        "Ray's tools read it from the RAY_AUTH_TOKEN environment variable",
    )
    dashboard_url: str | None = None
