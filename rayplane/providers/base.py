"""The provider interface every cloud kind implements.

A provider turns a *desired shape* into running Ray nodes and reports what it *observes*.
The reconciler (in ``rayplane.clusters``) owns all decisions and all database writes; a
provider owns only cloud-side effects, and keeps whatever it needs to find its resources
again in ``state`` (a JSON-able dict that the reconciler persists after every call, so a
new worker process can pick up where a dead one stopped).

Provider state may carry ``events``: a list of ``{"kind", "reason", "code"}`` the provider
wants in the cluster's event history (a Spot fallback, a pool being created). The reconciler
records and removes them when it persists the state.

Contract for every method:
- **Idempotent**: calling it again with the same arguments after a crash half-way through
  converges on the same result and never creates a duplicate resource.
- **Bounded**: it returns within ``step_timeout`` seconds; a long cloud operation is started
  and its progress kept in ``state``, to be resumed by the next call.
- **Errors**: raise ``RetriableError`` for conditions that may pass (capacity, throttling,
  a node still booting, a network error) and ``TerminalError`` for ones that will not
  without a user's change (invalid configuration, quota, an unsupported size). Anything
  else is treated as retriable by the reconciler.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


class ProviderError(Exception):
    """Base of provider errors; ``code`` is the cloud's error code when there is one."""

    def __init__(self, message: str, *, code: str | None = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        # The provider state to persist despite the failure (e.g. an LRO token dropped
        # because its operation failed); None keeps the state the call started from.
        self.provider_state = state


class RetriableError(ProviderError):
    """May succeed if tried again later (with backoff)."""


class TerminalError(ProviderError):
    """Will not succeed without a change to the spec or the cloud; the cluster goes FAILED."""


@dataclass(frozen=True)
class NodeShape:
    """What one node of a group looks like, already resolved from the VM size catalog."""

    vm_size: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    spot: bool = False


@dataclass(frozen=True)
class GroupTarget:
    """How many worker nodes of one group should run now (min <= count <= max)."""

    name: str
    shape: NodeShape
    count: int
    min_nodes: int
    max_nodes: int
    fallback_to_on_demand: bool = False


@dataclass(frozen=True)
class ClusterTarget:
    """The desired shape of a running cluster, as the reconciler hands it to a provider."""

    cluster_id: str
    name: str
    ray_version: str
    image: str | None
    head: NodeShape
    groups: tuple[GroupTarget, ...]
    # Cloud-level settings (capacity, region, ...) as stored on the cloud row.
    cloud_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    group: str  # "head" for the head node
    alive: bool
    idle_seconds: float | None = None


@dataclass(frozen=True)
class Observation:
    """What the provider sees right now. Only observed nodes ever count for billing."""

    head_alive: bool
    dashboard_url: str | None
    # Alive worker nodes per group, as Ray itself reports them (not as we asked for).
    nodes: dict[str, int]
    node_details: tuple[NodeInfo, ...] = ()
    # Resource demand Ray cannot place now, per group that could host it (for scale-up).
    pending_demand: dict[str, int] = field(default_factory=dict)
    # Per group, how many nodes have been idle longer than the scale-down timeout.
    idle_nodes: dict[str, int] = field(default_factory=dict)
    # Seconds the whole cluster has been idle (no running task or actor), if known.
    cluster_idle_seconds: float | None = None
    # Provider-specific facts worth showing to users (e.g. a node that failed to start).
    messages: tuple[str, ...] = ()


class Provider(abc.ABC):
    """Implemented by ``providers.local`` and ``providers.azure``."""

    kind: str

    @abc.abstractmethod
    def ensure(self, target: ClusterTarget, state: dict[str, Any]) -> dict[str, Any]:
        """Make the cluster's head and worker nodes match ``target``; return the new state.

        Starts what is missing (a dead head is restarted, and its workers with it), stops
        surplus worker nodes, and never touches resources it did not record in ``state``.
        """

    @abc.abstractmethod
    def observe(self, target: ClusterTarget, state: dict[str, Any]) -> Observation:
        """Report what is running, through the cluster's own APIs. No side effects."""

    @abc.abstractmethod
    def stop(self, target: ClusterTarget, state: dict[str, Any]) -> dict[str, Any]:
        """Stop every node of the cluster (compute goes to zero); keep what a start needs."""

    @abc.abstractmethod
    def teardown(self, target: ClusterTarget, state: dict[str, Any]) -> dict[str, Any]:
        """Remove everything the cluster had (processes, files, cloud resources)."""

    @abc.abstractmethod
    def jobs_endpoint(self, state: dict[str, Any]) -> str | None:
        """Base URL of the Ray dashboard (Jobs REST API) while the head runs, else None."""

    def jobs_auth(self, cloud_config: dict[str, Any]) -> tuple[dict[str, str], str | bool]:
        """(headers, TLS verify) for calls to ``jobs_endpoint``: none for a local dashboard;
        a bearer token and the API server's CA when jobs go through a Kubernetes proxy."""
        return {}, True

    def ray_versions(self, cloud_config: dict[str, Any]) -> list[str]:
        """Ray versions this cloud can run, newest first."""
        return []
