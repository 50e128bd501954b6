"""The control loop of every emulated cluster: one asyncio task, woken by writes and timers.

Each step looks at every cluster that has objects and reconciles it when something may have
changed: an object of the cluster was written (the ObjectStore listener marks it dirty), its
set of nodes or their readiness changed (the fleet booted, scaled down or evicted one), or a
timed change fell due (a bound pod's containers start, a booting node becomes Ready, an
orphaned pod's GC). Node changes made outside this surface (ARM resizing a pool, the fleet's
scale-down timer) are noticed by looking at each cluster's nodes every ``node_poll_seconds``.
Reconciling is: Deployments, then the KubeRay operator, then pods (node
loss, scheduling, kubelet, autoscaler demand). Writes made while reconciling mark the cluster
dirty again, so the loop runs until nothing changes; an idle cluster costs one
``Fleet.nodes`` call per ``node_poll_seconds``.

Then pending Ray jobs are started where their entrypoint fits. Heads that vanished take their
running jobs with them (:meth:`JobManager.head_lost`).

With real Ray (:mod:`emulators.azure.kube.raynodes`), each step first marks dirty the
clusters whose Ray nodes came up or died (a pod held until its node serves is looked at
again), and last stops the nodes whose pods are gone or terminal (or whose processes died)
and starts a node again for a Running Ray pod that has none (a dead node, a new head).

Races: everything runs on the event loop, so a step never interleaves with a request's
mutation; a request that writes during a step's ``await`` (only job starts await) is seen
by the next step. A step that raises is logged and the loop carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from emulators.azure.fleet import Fleet
from emulators.azure.kube import raypods
from emulators.azure.kube import resources as res
from emulators.azure.kube.config import KubeConfig
from emulators.azure.kube.dashboard import Dashboard, scope_of
from emulators.azure.kube.jobs import JobManager
from emulators.azure.kube.kuberay import RAYCLUSTERS, KubeRayOperator
from emulators.azure.kube.objects import ObjectStore
from emulators.azure.kube.proxy import ServiceProxy, ray_token
from emulators.azure.kube.raynodes import Node, RayNodes
from emulators.azure.kube.workloads import Workloads

log = logging.getLogger(__name__)
Obj = dict[str, Any]
_MIN_GAP_SECONDS = 0.01


class Controller:
    """Runs :meth:`step` from :meth:`run` until cancelled."""

    def __init__(
        self,
        objects: ObjectStore,
        fleet: Fleet,
        config: KubeConfig,
        workloads: Workloads,
        kuberay: KubeRayOperator,
        jobs: JobManager,
        dashboard: Dashboard,
        proxy: ServiceProxy,
    ) -> None:
        self.objects = objects
        self.fleet = fleet
        self.config = config
        self.workloads = workloads
        self.kuberay = kuberay
        self.jobs = jobs
        self.dashboard = dashboard
        self.proxy = proxy
        self.dirty: set[str] = set(objects.clusters())
        self.due: dict[str, float | None] = {}
        self.signatures: dict[str, tuple[object, ...]] = {}
        self.polled: dict[str, float] = {}  # cluster -> when its nodes are next looked at
        self._event: asyncio.Event | None = None
        self.raynodes: RayNodes | None = None
        objects.listeners.append(self._changed)

    # -- notifications ----------------------------------------------------------------------
    def _changed(self, cluster: str, rkey: str, old: Obj | None, new: Obj | None) -> None:
        self.dirty.add(cluster)
        if new is None and old is not None:
            self._deleted(cluster, rkey, old)
        elif new is None and old is None:
            self._cluster_dropped(cluster)

    def _deleted(self, cluster: str, rkey: str, old: Obj) -> None:
        uid = old["metadata"].get("uid", "")
        if rkey == res.PODS.key:
            self.workloads.bound_at.pop(uid, None)
            self.workloads.lost_at.pop(uid, None)
            if old["metadata"].get("labels", {}).get(raypods.NODE_TYPE_LABEL) == "head":
                scope = f"head:{uid}"
                self.jobs.head_lost(scope, keep=False)
                self.dashboard._seen.pop(scope, None)
                self.dashboard.serve.forget(scope)
                rc = self.owner_rc(cluster, old)
                if rc is not None and (rc.get("spec") or {}).get("gcsFaultToleranceOptions"):
                    self.jobs.head_lost(scope_of(rc, old), keep=True)
        elif rkey == RAYCLUSTERS:
            self.jobs.head_lost(f"rc:{uid}", keep=False)

    def owner_rc(self, cluster: str, pod: Obj) -> Obj | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "RayCluster":
                return self.objects.by_uid(cluster, str(ref.get("uid")))
        return None

    def _cluster_dropped(self, cluster: str) -> None:
        for scope in self.jobs.scopes():
            owners = {j["_owner"].get("cluster") for j in self.jobs.jobs.get(scope, {}).values()}
            if cluster in owners:
                self.jobs.head_lost(scope, keep=False)
        self.dirty.discard(cluster)
        self.workloads.node_states.pop(cluster, None)
        self.due.pop(cluster, None)
        self.signatures.pop(cluster, None)
        self.polled.pop(cluster, None)

    def wake(self) -> None:
        if self._event is not None:
            self._event.set()

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        self._event = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout=self.config.tick_seconds)
            self._event.clear()
            try:
                await self.step(time.time())
            except Exception:  # the loop must survive a bug in one reconcile
                log.exception("kube controller step failed")
            await asyncio.sleep(_MIN_GAP_SECONDS)

    async def step(self, now: float) -> None:
        if self.raynodes is not None:
            self.dirty |= self.raynodes.poll()
        for cluster in self.objects.clusters():
            due = self.due.get(cluster)
            timed = due is not None and due <= now
            if cluster not in self.dirty and not timed and now < self.polled.get(cluster, 0.0):
                continue
            # Nodes change behind our back only through ARM (pool created, resized, deleted)
            # and the fleet's own scale-down timer: look at them every node_poll_seconds.
            self.polled[cluster] = now + self.config.node_poll_seconds
            signature = self._signature(cluster, now)
            if cluster in self.dirty or timed or signature != self.signatures.get(cluster):
                self.dirty.discard(cluster)
                self.due[cluster] = self.reconcile(cluster, now)
                self.signatures[cluster] = self._signature(cluster, now)
        if self.raynodes is not None:
            self.raynodes.sync(self._wanted)
            if self.config.ray_backend == "real":
                self._revive(self.raynodes)
        await self.start_jobs()

    def _revive(self, raynodes: RayNodes) -> None:
        """Start a node for every Running Ray pod that has none: its node died, or its head
        was replaced (the kubelet restarts a crashed Ray container, which joins the new head)."""
        for cluster in self.objects.clusters():
            for pod in list(self.objects.iter_type(cluster, res.PODS.key)):
                if (pod.get("status") or {}).get("phase") != "Running" or pod["metadata"]["uid"] in raynodes.nodes:
                    continue
                if pod["metadata"].get("labels", {}).get(raypods.NODE_TYPE_LABEL) not in ("head", "worker"):
                    continue
                rc = self.owner_rc(cluster, pod)
                if rc is not None and rc.get("kind") == "RayCluster":
                    raynodes.gate(cluster, pod, rc, ray_token(self.objects, cluster, rc))

    def _wanted(self, node: Node) -> bool:
        """A real Ray node runs while its pod exists and is not terminal."""
        pod = self.objects.by_uid(node.cluster, node.pod_uid)
        return pod is not None and (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded")

    def _signature(self, cluster: str, now: float) -> tuple[object, ...]:
        """What ARM and the fleet can change behind our back: nodes (and readiness), and the
        pools themselves -- a new or resized pool can take pods that were unschedulable."""
        pools = tuple(
            (p.spec.name, p.spec.autoscale, p.spec.min_count, p.spec.max_count) for p in self.fleet.pools(cluster)
        )
        nodes = tuple((n.name, n.ready(now)) for n in self.fleet.nodes(cluster))
        return pools, nodes

    def reconcile(self, cluster: str, now: float) -> float | None:
        """One pass over a cluster; when the next timed change is due."""
        self.workloads.deployments(cluster)
        requeue = self.kuberay.reconcile(cluster)
        nodes = self.fleet.nodes(cluster)
        evicted = {name for pool in self.fleet.pools(cluster) for name in pool.evicted}
        due = self.workloads.pods(cluster, nodes, evicted, now)
        if requeue is not None and (due is None or requeue < due):
            return requeue
        return due

    async def start_jobs(self) -> None:
        for scope in self.jobs.pending_scopes():
            owner = self.jobs.owner(scope)
            if owner is None:
                continue
            rc = self.objects.get(owner["cluster"], RAYCLUSTERS, owner["namespace"], owner["name"])
            head = None if rc is None else self.proxy.ray_head(owner["cluster"], rc)
            if head is None or head.scope != scope:
                continue
            await self.jobs.tick(scope, self.dashboard.nodes(head), str(head.head["status"].get("podIP", "")))
