"""The values a local service step takes and returns (``service.LocalServiceRunner``).

``ServeSpec`` and ``RolloutSpec`` (``rayplane.clusters.serve``) live in a layer above the
providers, so the runner takes them through the protocols :class:`ServeConfigSource` and
:class:`RolloutPolicy`, which they satisfy (as ``providers.azure.rayservice`` does).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from rayplane.providers.base import ClusterTarget, ProviderEvent


class ServeConfigSource(Protocol):
    """What a service runs (``rayplane.clusters.serve.ServeSpec``): the body of Serve's
    ``PUT /api/serve/applications/`` for a given HTTP address."""

    def deploy_config(self, *, http_host: str, http_port: int, proxy_location: str = ...) -> dict[str, Any]: ...


class RolloutPolicy(Protocol):
    """How a new version takes the traffic (``rayplane.clusters.serve.RolloutSpec``)."""

    @property
    def interval_seconds(self) -> int: ...
    @property
    def health_timeout_seconds(self) -> int: ...
    def traffic_steps(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class VersionTarget:
    """The version of a service the user wants now: ``version`` grows by one each time a
    change needs a new cluster (``needs_new_cluster``); ``cluster`` is its shape. The runner
    derives each version's own ``cluster_id`` (``<service_id>-v<version>``) from it."""

    version: int
    cluster: ClusterTarget


class ServicePhase(enum.StrEnum):
    PROVISIONING = "PROVISIONING"  # the first version's cluster is starting
    DEPLOYING = "DEPLOYING"  # Serve applications being applied on the active version
    RUNNING = "RUNNING"  # every application of the active version RUNNING, 100 % on it
    ROLLING_OUT = "ROLLING_OUT"  # a new version beside the active one, traffic moving to it
    ROLLING_BACK = "ROLLING_BACK"  # the new version being dropped, traffic back on the old


@dataclass(frozen=True)
class AppStatus:
    """One Serve application of one version, as Serve reports it."""

    version: int
    name: str
    status: str
    message: str


@dataclass(frozen=True)
class ServiceProgress:
    """Where a service is after a step. ``traffic_percent`` is the pending version's share
    of new requests (0 without one); ``failure`` the last rollback's or a failed deploy's
    Serve error, None when there is none to report."""

    phase: ServicePhase
    active_version: int | None
    pending_version: int | None
    traffic_percent: int
    applications: tuple[AppStatus, ...]
    endpoint_url: str | None
    failure: str | None = None


@dataclass(frozen=True)
class ServiceStep:
    """What one ``ensure``/``rollback``/``stop``/``teardown`` call leaves: the JSON-able
    ``state`` to persist (a new process resumes from it), the events to record once each,
    and the progress to show."""

    state: dict[str, Any]
    progress: ServiceProgress
    events: tuple[ProviderEvent, ...] = ()
