"""Wire shapes of services (``/v1/services``): a cluster spec, a Serve config and a rollout
policy in; the cluster's state with the service's versions, traffic and Serve statuses out.

Pydantic checks shapes; ``serve.serve_errors``/``rollout_errors`` and the cluster validation
check the rules that need the whole request or data, with the same field paths.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rayplane.clusters.models import Cluster
from rayplane.clusters.schemas import DNS_1035, MAX_LABELS, Labels, WorkerGroupSpec
from rayplane.clusters.serve import RolloutStrategy
from rayplane.clusters.values import DesiredState, State


class AutoscalingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(default=1, ge=0, le=10_000, strict=True)
    max_replicas: int = Field(default=1, ge=1, le=10_000, strict=True)
    target_ongoing_requests: float | None = Field(default=None, gt=0)


class DeploymentIn(BaseModel):
    """Overrides of one deployment the application's code declares (Serve's own fields)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    num_replicas: int | None = Field(default=None, ge=0, le=10_000, strict=True)
    autoscaling_config: AutoscalingIn | None = None
    ray_actor_options: dict[str, Any] = Field(default_factory=dict)
    user_config: Any = None


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, examples=["echo"])
    import_path: str = Field(min_length=1, max_length=300, examples=["echo:app"])
    route_prefix: str | None = Field(default="/", max_length=200, examples=["/echo"])
    runtime_env: dict[str, Any] = Field(
        default_factory=dict,
        description="Ray's runtime_env; a local `working_dir` is uploaded to the cluster by Rayplane",
    )
    deployments: list[DeploymentIn] = Field(default_factory=list, max_length=50)


class ServeIn(BaseModel):
    """The Ray Serve applications the service runs (Serve's declarative config, in part)."""

    model_config = ConfigDict(extra="forbid")

    applications: list[ApplicationIn] = Field(max_length=20)


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: RolloutStrategy = RolloutStrategy.BLUE_GREEN
    step_percent: int = Field(default=20, strict=True, description="incremental: traffic moved per step")
    interval_seconds: int = Field(default=30, strict=True, description="incremental: time between steps")
    max_surge_percent: int = Field(default=100, strict=True)
    health_timeout_seconds: int = Field(
        default=600, strict=True, description="A new version not healthy this long after it is up is rolled back"
    )


class ServiceHead(BaseModel):
    """A service's head: its size. Its GCS fault tolerance is always on (not a choice)."""

    model_config = ConfigDict(extra="forbid")

    vm_size: str = Field(default="Standard_D4s_v5", min_length=1, max_length=64, examples=["Standard_D4s_v5"])


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=DNS_1035, examples=["echo"])
    cloud: str | None = Field(default=None, description="Cloud id or name; default: the tenant's default cloud")
    ray_version: str | None = Field(default=None, description="Default: the newest the cloud runs")
    image: str | None = Field(default=None, max_length=300)
    head: ServiceHead = Field(default_factory=ServiceHead)
    worker_groups: list[WorkerGroupSpec] = Field(default_factory=list, max_length=16)
    labels: Labels = Field(default_factory=dict, max_length=MAX_LABELS)
    serve: ServeIn
    rollout: RolloutIn = Field(default_factory=RolloutIn)


class ServicePatch(BaseModel):
    """Fields left out stay as they are. A change of the Serve config (or of a group's node
    range) applies in place; a change of the Ray version, image or any VM size rolls out a
    new version on a new cluster."""

    model_config = ConfigDict(extra="forbid")

    ray_version: str | None = None
    image: str | None = Field(default=None, max_length=300)
    head: ServiceHead | None = None
    worker_groups: list[WorkerGroupSpec] | None = Field(default=None, max_length=16)
    labels: Labels | None = Field(default=None, max_length=MAX_LABELS)
    serve: ServeIn | None = None
    rollout: RolloutIn | None = None


class ServiceApplicationOut(BaseModel):
    version: int
    name: str
    status: str = Field(examples=["RUNNING"])
    message: str = ""


class ServiceOut(BaseModel):
    id: str = Field(examples=["svc_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    name: str
    cloud_id: str | None
    state: State = Field(examples=["RUNNING"])
    state_reason: str | None = None
    state_code: str | None = None
    desired_state: DesiredState
    spec: dict[str, Any] = Field(description="The cluster each version runs on: Ray version, image, head, groups")
    serve: dict[str, Any]
    rollout: dict[str, Any]
    labels: dict[str, str]
    endpoint_url: str | None = Field(default=None, description="The stable address; the same across rollouts")
    version: int = Field(description="The version wanted: it grows when a change needs a new cluster")
    active_version: int | None = Field(default=None, description="The version serving traffic")
    pending_version: int | None = Field(default=None, description="The version rolling out, if any")
    traffic_percent: int = Field(default=0, description="The pending version's share of new requests")
    applications: list[ServiceApplicationOut] = Field(default_factory=list)
    failure: str | None = Field(default=None, description="Serve's error of the last failed deploy or rollback")
    nodes: dict[str, Any] = Field(
        default_factory=dict,
        description="Per running version number: its head's liveness and each group's ready and wanted nodes",
    )
    dashboard_url: str | None = None
    generation: int
    observed_generation: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: Cluster) -> ServiceOut:
        service = c.service
        assert service is not None, "only a service row has a ServiceSpec"
        progress = (c.observed or {}).get("service") or {}
        return cls(
            id=c.id,
            name=c.name,
            cloud_id=c.cloud_id,
            state=c.state,
            state_reason=c.state_reason,
            state_code=c.state_code,
            desired_state=c.desired_state,
            spec=c.spec.to_json(),
            serve=service.serve.to_json(),
            rollout=service.rollout.to_json(),
            labels=c.labels,
            endpoint_url=progress.get("endpoint_url"),
            version=service.version,
            active_version=progress.get("active_version"),
            pending_version=progress.get("pending_version"),
            traffic_percent=progress.get("traffic_percent") or 0,
            applications=[ServiceApplicationOut(**a) for a in progress.get("applications") or ()],
            failure=progress.get("failure"),
            nodes={
                v: {"head": o.get("head"), "groups": o.get("groups")}
                for v, o in ((c.observed or {}).get("versions") or {}).items()
            },
            dashboard_url=c.dashboard_url,
            generation=c.generation,
            observed_generation=c.observed_generation,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )
