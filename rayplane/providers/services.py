"""What a provider's service runner is, and the values a service step takes and returns.

A provider that can run Ray Serve services (``Provider.service_runner``) hands the
reconciler a :class:`ServiceRunner`: the local one (``providers.local.service``) and the
Azure one (``providers.azure.services``). ``ServeSpec`` and ``RolloutSpec``
(``rayplane.clusters.serve``) live in a layer above the providers, so runners take them
through the protocols :class:`ServeConfigSource` and :class:`RolloutPolicy`, which they
satisfy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from rayplane.providers.base import ClusterTarget, Observation, ProviderEvent


def version_cluster_id(service_id: str, version: int) -> str:
    """The name a service's version runs and keeps its logs under: ``<service id>-v<n>``
    (a new version is a new cluster; the log store names files by it)."""
    return f"{service_id}-v{version}"


class ServeConfigSource(Protocol):
    """What a service runs (``rayplane.clusters.serve.ServeSpec``): the body of Serve's
    ``PUT /api/serve/applications/`` for a given HTTP address."""

    def deploy_config(self, *, http_host: str, http_port: int, proxy_location: str = ...) -> dict[str, Any]: ...


class RolloutPolicy(Protocol):
    """How a new version takes the traffic (``rayplane.clusters.serve.RolloutSpec``):
    ``strategy`` is ``blue_green`` or ``incremental`` (steps of ``step_percent``, at most
    ``max_surge_percent`` of extra capacity at a time, where the cloud applies one)."""

    @property
    def strategy(self) -> str: ...
    @property
    def step_percent(self) -> int: ...
    @property
    def max_surge_percent(self) -> int: ...
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


class ServiceRunner(Protocol):
    """How the reconciler drives one service (``service_id`` is the cluster row's id).

    Every call does one bounded step, is idempotent, and returns the whole JSON-able state
    to persist (a new process resumes from it); a ``ProviderError`` may carry the state to
    keep (``provider_state``). One caller per service at a time (the reconciler's lease).
    """

    def ensure(
        self,
        service_id: str,
        want: VersionTarget,
        serve: ServeConfigSource,
        rollout: RolloutPolicy,
        state: dict[str, Any],
    ) -> ServiceStep:
        """Move towards ``want`` running ``serve``: deploy in place, or roll out a new
        version under ``rollout``, rolling back one that is not healthy in time."""

    def rollback(
        self, service_id: str, state: dict[str, Any], *, token: str = "", reason: str = "rolled back on request"
    ) -> ServiceStep:
        """Drop the pending version (traffic back on the active one); a no-op without one."""

    def stop(self, service_id: str, state: dict[str, Any], *, token: str = "") -> ServiceStep:
        """Stop every version's nodes, keeping what ``ensure`` needs to start again."""

    def teardown(self, service_id: str, state: dict[str, Any]) -> ServiceStep:
        """Remove everything every version had; the returned state is empty."""

    def observe(self, service_id: str, want: VersionTarget, state: dict[str, Any]) -> dict[int, Observation]:
        """What runs, per version number, through each version's own APIs (for usage and
        node health). No side effects; a version whose nodes are all down may be left out."""
