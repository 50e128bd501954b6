"""The provider interface every cloud kind implements.

A provider turns a *desired shape* into running Ray nodes and reports what it *observes*.
The reconciler (in ``rayplane.clusters``) owns all decisions and all database writes; a
provider owns only cloud-side effects, and keeps whatever it needs to find its resources
again in ``state`` (a JSON-able dict that the reconciler persists after every call, so a
new worker process can pick up where a dead one stopped).

``ensure``, ``stop`` and ``teardown`` return a ``Step``: the state to persist and the events
the provider wants in the cluster's history (a Spot fallback, a pool being created), each
recorded once by the reconciler in the same transaction as the state.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # services.py builds on the values below
    from rayplane.providers.services import ServiceRunner


@dataclass(frozen=True)
class ProviderEvent:
    """Something the provider did or saw that belongs in the cluster's event history."""

    kind: str
    reason: str
    code: str | None = None


@dataclass(frozen=True)
class MetricsTarget:
    """One Ray node's metrics endpoint (``--metrics-export-port``) and the group it is of;
    ``headers`` and ``verify`` (httpx's TLS verify: a CA file or a bool) for a node reached
    through an authenticated proxy (the AKS API server's pod proxy), none for a local node."""

    node: str
    group: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: str | bool = True


@dataclass(frozen=True)
class Step:
    """What one ``ensure``/``stop``/``teardown`` call leaves: the state to persist, and the
    events it wants recorded (each exactly once)."""

    state: dict[str, Any]
    events: tuple[ProviderEvent, ...] = ()


@dataclass(frozen=True)
class AccessCheck:
    """Whether Rayplane can use a cloud: READY, or ERROR with the cloud's code and what to do."""

    status: str  # READY or ERROR
    reason: str | None
    code: str | None
    ray_versions: list[str]


class ProviderError(Exception):
    """Base of provider errors; ``code`` is the cloud's error code when there is one."""

    def __init__(self, message: str, *, code: str | None = None, state: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        # The provider state to persist despite the failure (e.g. an LRO token dropped
        # because its operation failed); None keeps the state the call started from.
        self.provider_state = state
        # Events of the failed call that happened before the failure (e.g. a pool created).
        self.events: tuple[ProviderEvent, ...] = ()


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
    # For providers whose node pools are shared by a cloud's clusters: the most nodes the
    # cloud's running clusters may use per ``"<vm size>|<spot>"`` (lower case), so a shared
    # pool is sized once for all of them. Empty for providers without shared pools.
    pool_demand: Mapping[str, int] = field(default_factory=dict)
    # The cluster's Ray token: every node runs with Ray's token authentication on and this
    # token, and every call to its dashboard sends it (``ray_headers``). Providers refuse
    # to start a cluster without one. ``repr`` leaves it out, so logs of a target do not
    # carry it.
    ray_token: str = field(default="", repr=False)
    # Ray's GCS fault tolerance (``head.gcs_fault_tolerance``): the head keeps the cluster's
    # metadata in Redis under ``gcs_storage_namespace(cluster_id)``, and a head that dies is
    # restarted without touching the workers.
    gcs_fault_tolerance: bool = False
    # The owning tenant: the first part of the names its logs are stored under.
    tenant_id: str = ""
    # The tenant's log retention in days (None: the deployment's default).
    log_retention_days: int | None = None


def gcs_storage_namespace(cluster_id: str) -> str:
    """The cluster's key namespace in the GCS Redis (Ray's ``external_storage_namespace``).

    Ray keeps no Redis database number (its client always uses database 0), so every cluster
    of every control plane on one Redis server shares that database: the namespace holds the
    cluster id, unique across control planes, and Ray refuses one containing ``@`` (its key
    separator), which ids never hold."""
    return f"rayplane-{cluster_id}"


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
    # Causes worth the cluster's event history (e.g. why pods stay Pending): the reconciler
    # records each one once while it lasts (not again while the next observations repeat it).
    events: tuple[ProviderEvent, ...] = ()
    # A condition no retry will clear (a node the cluster needs can never take its pod): a
    # cluster still coming up goes FAILED with this event's code and reason at once, instead
    # of waiting for the provisioning timeout.
    fatal: ProviderEvent | None = None


# The header that carries a cluster's Ray token to its dashboard: the one Ray's dashboard
# reads when ``Authorization`` is absent, which the Kubernetes API server's service proxy
# consumes for its own bearer token.
RAY_AUTH_HEADER = "X-Ray-Authorization"


def ray_headers(token: str) -> dict[str, str]:
    """Headers that authenticate a call to a cluster's dashboard (none without a token)."""
    return {RAY_AUTH_HEADER: f"Bearer {token}"} if token else {}


class RayAuthFailed(RetriableError):
    """The head answered but refused the cluster's token (HTTP 401/403): an authentication
    problem, never "the head did not answer" (which would restart a healthy head)."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"the Ray dashboard at {url} refused the cluster's token (HTTP {status}); the head runs with "
            "another token or none Rayplane knows",
            code="RayAuthFailed",
        )


def check_ray_auth(url: str, status: int) -> None:
    """Raise ``RayAuthFailed`` for Ray's answers to a missing (401) or wrong (403) token."""
    if status in (401, 403):
        raise RayAuthFailed(url, status)


class Provider(abc.ABC):
    """Implemented by ``providers.local`` and ``providers.azure``."""

    kind: str

    @abc.abstractmethod
    def ensure(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        """Make the cluster's head and worker nodes match ``target``; return the new state.

        Starts what is missing (a dead head is restarted, and its workers with it), stops
        surplus worker nodes, and never touches resources it did not record in ``state``.
        """

    @abc.abstractmethod
    def observe(self, target: ClusterTarget, state: dict[str, Any]) -> Observation:
        """Report what is running, through the cluster's own APIs. No side effects."""

    @abc.abstractmethod
    def stop(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        """Stop every node of the cluster (compute goes to zero); keep what a start needs."""

    @abc.abstractmethod
    def teardown(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        """Remove everything the cluster had (processes, files, cloud resources)."""

    def service_runner(self) -> ServiceRunner | None:
        """The runner of Ray Serve services on this provider; None where services are not
        supported (a create on such a cloud is refused with 422)."""
        return None

    def metrics_targets(
        self, state: dict[str, Any], cloud_config: Mapping[str, Any] | None = None
    ) -> tuple[MetricsTarget, ...]:
        """The Prometheus endpoints of the cluster's (or service's) running Ray nodes that the
        control plane scrapes itself (``rayplane.metrics``), from its persisted ``state`` and
        its cloud's config; () where it scrapes none. May call the cloud (bounded, a few
        seconds at most) and raise: the scraper then skips that cluster for that scrape."""
        return ()

    @abc.abstractmethod
    def jobs_endpoint(self, state: dict[str, Any]) -> str | None:
        """Base URL of the Ray dashboard (Jobs REST API) while the head runs, else None."""

    def jobs_auth(self, cloud_config: dict[str, Any]) -> tuple[dict[str, str], str | bool]:
        """(headers, TLS verify) to reach ``jobs_endpoint``: none for a local dashboard; a
        bearer token and the API server's CA when jobs go through a Kubernetes proxy. The
        cluster's Ray token (``ray_headers``) is added by the caller, on every cloud."""
        return {}, True

    def ray_versions(self, cloud_config: dict[str, Any]) -> list[str]:
        """Ray versions this cloud can run, newest first."""
        return []

    # ---- capabilities ---------------------------------------------------------------
    # The core asks these instead of knowing which kinds of cloud have what.

    # Node pools shared by a cloud's clusters: the reconciler then passes the whole cloud's
    # demand in ``ClusterTarget.pool_demand``, and ``collect_unused_pools`` runs on a beat.
    shares_node_pools: bool = False

    def check_access(self, cloud_config: dict[str, Any]) -> AccessCheck:
        """Whether Rayplane can use the cloud with its credentials; never raises for the
        cloud's own refusals (they are the ERROR answer). Default: nothing to check."""
        return AccessCheck("READY", None, None, self.ray_versions(cloud_config))

    def collect_unused_pools(
        self,
        cloud_config: dict[str, Any],
        demand: Mapping[str, int],
        memo: dict[str, Any],
        *,
        grace_seconds: int,
        now: datetime,
    ) -> tuple[list[str], dict[str, Any]]:
        """Delete the shared pools no cluster has needed for ``grace_seconds``; the pools
        deleted (or being deleted) and the new ``memo`` the caller keeps for the next run
        (when each pool was first seen unneeded, deletions under way). Default: none."""
        return [], memo
