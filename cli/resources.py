"""Wire shapes of the API's resources, as the client returns them (JSON, ISO 8601 times)."""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar

T = TypeVar("T")


class Page(TypedDict, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None


class Resource(TypedDict):
    """What clusters and services share: a name, a state and why (the watchers read only these)."""

    id: str
    name: str
    state: str
    state_reason: str | None
    state_code: str | None
    desired_state: str


class Cluster(TypedDict):
    """``ClusterOut``: spec, desired and observed state, dashboard."""

    id: str
    name: str
    cloud_id: str | None
    state: str
    state_reason: str | None
    state_code: str | None
    desired_state: str
    spec: dict[str, Any]
    labels: dict[str, str]
    observed: dict[str, Any]
    dashboard_url: str | None
    generation: int
    observed_generation: int
    created_at: str
    updated_at: str


class ServiceApplication(TypedDict):
    """One Serve application of one version, as Serve reports it."""

    version: int
    name: str
    status: str
    message: str


class Service(TypedDict):
    """``ServiceOut``: a cluster that runs Ray Serve applications, its versions and their traffic.

    ``version`` is the version wanted; ``active_version`` the one serving, ``pending_version``
    the one a rollout brings up, with ``traffic_percent`` of new requests; ``failure`` the
    last rollback's Serve error.
    """

    id: str
    name: str
    cloud_id: str | None
    state: str
    state_reason: str | None
    state_code: str | None
    desired_state: str
    generation: int
    spec: dict[str, Any]
    serve: dict[str, Any]
    rollout: dict[str, Any]
    labels: dict[str, str]
    endpoint_url: str | None
    version: int
    active_version: int | None
    pending_version: int | None
    traffic_percent: int
    applications: list[ServiceApplication]
    failure: str | None
    nodes: dict[str, Any]
    dashboard_url: str | None
    observed_generation: int
    created_at: str
    updated_at: str


class ClusterEvent(TypedDict):
    """One entry of a cluster's timeline."""

    id: str
    at: str
    kind: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    code: str | None
    detail: dict[str, Any] | None


class Operation(TypedDict):
    """A long-running request: Running, Succeeded, Failed or Canceled."""

    id: str
    kind: str
    status: str
    cluster_id: str
    target_generation: int
    error_code: str | None
    error_message: str | None
    created_at: str
    completed_at: str | None


class Job(TypedDict):
    """A Ray job: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""

    id: str
    cluster_id: str
    submission_id: str
    status: str
    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]
    message: str | None
    driver_exit_code: int | None
    submitted_at: str | None
    started_at: str | None
    ended_at: str | None


class Package(TypedDict):
    """An uploaded working directory, for ``runtime_env.working_dir``."""

    uri: str
    size_bytes: int


class Tenant(TypedDict):
    """The caller's organisation."""

    id: str
    name: str
    display_name: str
    entra_tenant_id: str | None
    status: str
    created_at: str
    updated_at: str


class ApiKey(TypedDict):
    """An API key, without its secret."""

    id: str
    name: str
    prefix: str
    role: str
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class ApiKeyCreated(ApiKey):
    """A new API key with its secret, shown once."""

    key: str


class Member(TypedDict):
    """A person (Entra object id) and their role."""

    id: str
    oid: str
    email: str | None
    display_name: str | None
    role: str
    created_at: str
    updated_at: str


class Cloud(TypedDict):
    """Where clusters run: local or an Azure subscription."""

    id: str
    name: str
    provider: str
    status: str
    status_reason: str | None
    is_default: bool
    config: dict[str, Any]
    ray_versions: list[str]
    admin_consent_url: str | None
    created_at: str
