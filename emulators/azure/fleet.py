"""Simulated virtual machines behind AKS agent pools, and the AKS cluster autoscaler.

This is the one piece of state the ARM surface and the Kubernetes surface share:

* ARM (``emulators.azure.arm``) calls :meth:`Fleet.upsert_pool` when an agent pool PUT
  succeeds, :meth:`Fleet.delete_pool` / :meth:`Fleet.delete_cluster` on DELETE, and reads
  :meth:`Fleet.pool` to report the live ``count``.
* Kubernetes (``emulators.azure.kube``) lists :meth:`Fleet.nodes` as Node objects, tells the
  autoscaler how many nodes each pool needs with :meth:`Fleet.set_demand` (what unschedulable
  pods would need, the way cluster-autoscaler reacts to pending pods), and learns which nodes
  disappeared (scale-down, spot eviction) from the next :meth:`Fleet.nodes`.

Time is wall-clock seconds, so state written before a restart still means the same thing
after it. A node is ``Ready`` ``boot_seconds`` after it was created. An autoscaling pool grows
to ``clamp(demand, min, max)`` at once (nodes then boot) and shrinks only after demand has
stayed below its size for ``scale_down_seconds``, removing nodes that no pod uses, newest
first. A manual pool holds exactly ``count`` nodes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from emulators.azure import aksnode
from emulators.azure.store import DocumentStore

_KIND = "fleet.pool"
_CONTROL_PLANE_KIND = "fleet.controlplane"
SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"
POOL_LABEL = "kubernetes.azure.com/agentpool"


def cluster_key(subscription: str, resource_group: str, cluster: str) -> str:
    """The key of one managed cluster: its ARM id, lower-cased (ARM ids are case-insensitive)."""
    return (
        f"/subscriptions/{subscription}/resourcegroups/{resource_group}"
        f"/providers/microsoft.containerservice/managedclusters/{cluster}"
    ).lower()


@dataclass
class Node:
    """One VM of a pool, as Kubernetes will show it."""

    name: str
    pool: str
    created_at: float
    ready_at: float
    labels: dict[str, str]
    taints: list[dict[str, str]]
    capacity: dict[str, str]
    # What the kubelet offers pods (capacity minus AKS's reservations; ``aksnode``). Empty in
    # documents written before it existed, which then offer their capacity.
    allocatable: dict[str, str] = field(default_factory=dict)
    kubelet_version: str = ""
    # GPUs of the VM, advertised as ``nvidia.com/gpu`` only once a device plugin runs on it
    # (``aksnode``); 0 in documents written before it existed.
    gpus: int = 0

    def ready(self, now: float) -> bool:
        return now >= self.ready_at


@dataclass
class PoolSpec:
    """What ARM asked for: the subset of agent pool properties that shapes its nodes."""

    name: str
    vm_size: str
    vcpus: int
    memory_gib: float
    gpus: int = 0
    mode: str = "User"
    spot: bool = False
    autoscale: bool = False
    count: int = 0
    min_count: int = 0
    max_count: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[str] = field(default_factory=list)  # "key=value:Effect", as ARM writes them
    max_pods: int = 110
    # Of the managed cluster and the pool, for the nodes' reserved labels and kubelet version.
    region: str = ""
    node_resource_group: str = ""
    kubernetes_version: str = ""
    node_image_version: str = ""
    os_sku: str = "Ubuntu"
    # The cluster's omsagent addon (Container Insights) is on: its ama-logs DaemonSet runs here.
    monitoring: bool = False
    # ``gpuProfile.nvidia.managementMode: Managed``: AKS runs the NVIDIA device plugin itself.
    gpu_managed: bool = False


@dataclass
class Pool:
    """A pool's spec, its nodes and the autoscaler's view of it."""

    cluster: str
    spec: PoolSpec
    nodes: list[Node] = field(default_factory=list)
    serial: int = 0  # next VM instance number
    demand: int = 0
    busy: list[str] = field(default_factory=list)  # nodes with pods on them (not removable)
    below_since: float | None = None  # when demand first dropped below the node count
    evicted: list[str] = field(default_factory=list)  # names of nodes lost to spot eviction

    @property
    def target(self) -> int:
        s = self.spec
        return max(s.min_count, min(self.demand, s.max_count)) if s.autoscale else s.count


def _parse_taint(text: str) -> dict[str, str]:
    key_value, _, effect = text.partition(":")
    key, _, value = key_value.partition("=")
    return {"key": key, "value": value, "effect": effect}


def _pool_from_doc(doc: dict[str, Any]) -> Pool:
    spec = PoolSpec(**doc["spec"])
    nodes = [Node(**n) for n in doc["nodes"]]
    rest = {k: v for k, v in doc.items() if k not in ("spec", "nodes")}
    return Pool(spec=spec, nodes=nodes, **rest)


class Fleet:
    """Pools and nodes of every emulated AKS cluster, persisted in ``store``."""

    def __init__(
        self,
        store: DocumentStore,
        *,
        boot_seconds: float = 1.0,
        scale_down_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.boot_seconds = boot_seconds
        self.scale_down_seconds = scale_down_seconds
        self.clock = clock
        self._pools: dict[tuple[str, str], Pool] = {}
        for key, doc in store.scan(_KIND):
            pool = _pool_from_doc(doc)
            self._pools[(pool.cluster, pool.spec.name)] = pool
            del key

    # -- ARM side ------------------------------------------------------------------------
    def upsert_pool(self, cluster: str, spec: PoolSpec) -> Pool:
        """Create the pool or change its spec; nodes follow on the next :meth:`nodes`."""
        pool = self._pools.get((cluster, spec.name))
        if pool is None:
            pool = Pool(cluster=cluster, spec=spec)
            self._pools[(cluster, spec.name)] = pool
        else:
            pool.spec = spec
            # AKS applies a pool's new nodeLabels (and image/version labels) to the nodes it
            # already has, not only to new ones.
            for node in pool.nodes:
                node.labels = aksnode.labels(spec, node.name)
        self._converge(pool, self.clock(), force_save=True)
        return pool

    def pool(self, cluster: str, name: str) -> Pool | None:
        """The pool, converged to now, or None."""
        pool = self._pools.get((cluster, name))
        if pool is not None:
            self._converge(pool, self.clock())
        return pool

    def pools(self, cluster: str) -> list[Pool]:
        """Every pool of ``cluster``, by name, converged to now."""
        found = [p for (c, _), p in sorted(self._pools.items()) if c == cluster]
        now = self.clock()
        for pool in found:
            self._converge(pool, now)
        return found

    def delete_pool(self, cluster: str, name: str) -> bool:
        """Remove the pool and its nodes at once; whether it existed."""
        self.store.delete(_KIND, f"{cluster}/{name}")
        return self._pools.pop((cluster, name), None) is not None

    def delete_cluster(self, cluster: str) -> None:
        """Remove every pool of ``cluster`` and its control plane's version."""
        for c, name in [k for k in self._pools if k[0] == cluster]:
            self.delete_pool(c, name)
        self.store.delete(_CONTROL_PLANE_KIND, cluster)

    def set_control_plane_version(self, cluster: str, version: str) -> None:
        """The Kubernetes version the cluster's API server runs (ARM's ``currentKubernetesVersion``)."""
        self.store.put(_CONTROL_PLANE_KIND, cluster, {"version": version})

    def control_plane_version(self, cluster: str) -> str | None:
        doc = self.store.get(_CONTROL_PLANE_KIND, cluster)
        return str(doc["version"]) if doc and doc.get("version") else None

    # -- Kubernetes side -----------------------------------------------------------------
    def nodes(self, cluster: str) -> list[Node]:
        """Every node of every pool of ``cluster`` (Ready or still booting), converged to now."""
        return [node for pool in self.pools(cluster) for node in pool.nodes]

    def set_demand(self, cluster: str, pool_name: str, nodes_needed: int, busy: Iterable[str] = ()) -> None:
        """Tell the autoscaler ``pool_name`` needs ``nodes_needed`` nodes and which are in use."""
        pool = self._pools.get((cluster, pool_name))
        if pool is None:
            return
        busy_list = sorted(set(busy))
        if pool.demand != nodes_needed or pool.busy != busy_list:
            pool.demand = nodes_needed
            pool.busy = busy_list
            self._converge(pool, self.clock(), force_save=True)

    def evict(self, cluster: str, pool_name: str, count: int) -> list[str]:
        """Spot eviction (policy Delete): remove up to ``count`` nodes now; their names.

        The autoscaler sees the lost capacity as demand again, so replacements follow.
        """
        pool = self._pools.get((cluster, pool_name))
        if pool is None or count <= 0:
            return []
        victims = pool.nodes[-count:]
        pool.nodes = pool.nodes[: len(pool.nodes) - len(victims)]
        pool.evicted.extend(n.name for n in victims)
        pool.below_since = None
        self._save(pool)
        return [n.name for n in victims]

    # -- internals -----------------------------------------------------------------------
    def _new_node(self, pool: Pool, now: float) -> Node:
        spec = pool.spec
        digest = hashlib.sha256(f"{pool.cluster}/{spec.name}".encode()).hexdigest()[:8]
        name = f"aks-{spec.name}-{digest}-vmss{pool.serial:06x}"
        pool.serial += 1
        labels = aksnode.labels(spec, name)
        taints = [_parse_taint(t) for t in spec.taints]
        if spec.spot and not any(t["key"] == SPOT_LABEL for t in taints):
            # AKS taints every spot node this way, whatever the pool asked for.
            taints.append({"key": SPOT_LABEL, "value": "spot", "effect": "NoSchedule"})
        version = f"v{spec.kubernetes_version}" if spec.kubernetes_version else ""
        return Node(
            name,
            spec.name,
            now,
            now + self.boot_seconds,
            labels,
            taints,
            aksnode.capacity(spec),
            aksnode.allocatable(spec),
            version,
            spec.gpus,
        )

    def _converge(self, pool: Pool, now: float, *, force_save: bool = False) -> None:
        target = pool.target
        changed = force_save
        if len(pool.nodes) < target:
            pool.nodes.extend(self._new_node(pool, now) for _ in range(target - len(pool.nodes)))
            pool.below_since = None
            changed = True
        elif len(pool.nodes) > target:
            if not pool.spec.autoscale:
                pool.nodes = pool.nodes[:target]
                changed = True
            elif pool.below_since is None:
                pool.below_since = now
                changed = True
            elif now - pool.below_since >= self.scale_down_seconds:
                busy = set(pool.busy)
                surplus = len(pool.nodes) - target
                keep: list[Node] = []
                for node in reversed(pool.nodes):
                    if surplus and node.name not in busy:
                        surplus -= 1
                        continue
                    keep.append(node)
                pool.nodes = list(reversed(keep))
                pool.below_since = None
                changed = True
        elif pool.below_since is not None:
            pool.below_since = None
            changed = True
        if changed:
            self._save(pool)

    def _save(self, pool: Pool) -> None:
        doc = asdict(pool)
        self.store.put(_KIND, f"{pool.cluster}/{pool.spec.name}", doc)
