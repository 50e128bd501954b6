"""The Azure provider: Ray clusters as KubeRay RayClusters on shared AKS node pools.

Per cloud (the customer's subscription, resource group and AKS cluster) the provider keeps,
in this process only, an ARM client, the kubeconfig (never persisted), and what it has
already confirmed (cluster ready, operator installed, pools ready). Per Ray cluster, the
provider state persisted by the reconciler holds the LRO continuation tokens it started
(``lro``), the groups moved from Spot to Regular (``fallback``), the digest of the last
applied RayCluster (``applied``) and the dashboard URL through the service proxy.

Races: two clusters needing the same missing pool may both PUT it; ARM answers the second
with ``OperationNotAllowed`` (retried) or, once created, treats it as an idempotent update.
A pool's ``maxCount`` comes from the whole cloud's demand (``ClusterTarget.pool_demand``, from the cloud
config the reconciler passes), so a cluster whose pools already fit causes no ARM write.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rayplane.providers.azure import access, manifests, observability, podfaults, pools, scheduling, scrape_targets
from rayplane.providers.azure.aks import SPOT_FALLBACK_CODES, Aks, LroStep
from rayplane.providers.azure.credentials import credential_for
from rayplane.providers.azure.kube import Kube
from rayplane.providers.azure.manifests import AKS_MAX_POOL_NODES, PoolKey
from rayplane.providers.base import (
    AccessCheck,
    ClusterTarget,
    NodeInfo,
    Observation,
    Provider,
    ProviderError,
    ProviderEvent,
    RetriableError,
    Step,
    TerminalError,
)
from rayplane.settings import Settings

if TYPE_CHECKING:
    from rayplane.providers.azure.logsink import LogSink, Storage
    from rayplane.providers.azure.services import AzureServiceRunner
    from rayplane.providers.azure.workload import WorkloadIdentities

POOL_CACHE_SECONDS = 30.0
KUBECONFIG_CACHE_SECONDS = 600.0
# provisioningState values of a resource with an operation running on it (AKS answers
# OperationNotAllowed to another write meanwhile).
BUSY_STATES = frozenset(
    {"Creating", "Updating", "Deleting", "Scaling", "Upgrading", "UpgradingNodeImageVersion", "Starting", "Stopping"}
)


@dataclass
class CloudHandle:
    """What this process knows about one cloud's AKS cluster (memory only); for durable logs
    (``observability``) its ARM clients and the confirmed sink, retention and OIDC issuer."""

    aks: Aks
    resource_group: str
    cluster: str
    cluster_ready: bool = False
    operator_applied: bool = False
    kube: Kube | None = None
    kube_at: float = 0.0
    pools: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    storage: Storage | None = None
    identities: WorkloadIdentities | None = None
    log_sink: tuple[LogSink, int, str] | None = None


def _props(resource: dict[str, Any] | None) -> dict[str, Any]:
    return dict((resource or {}).get("properties") or {})


_EVENTS = "_events"  # the events of one call, kept beside its working state until it returns


def _event(state: dict[str, Any], kind: str, reason: str, code: str | None = None) -> None:
    state.setdefault(_EVENTS, []).append(ProviderEvent(kind, reason, code))


def _step(state: dict[str, Any]) -> Step:
    events = tuple(state.pop(_EVENTS, ()))
    return Step(state, events)


class AzureProvider(scrape_targets.PodMetrics, Provider):
    kind = "azure"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._handles: dict[str, CloudHandle] = {}
        self._lock = threading.Lock()

    # -- per-cloud handles ---------------------------------------------------------------
    def handle(self, config: dict[str, Any]) -> CloudHandle:
        key = json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, sort_keys=True)
        with self._lock:
            found = self._handles.get(key)
            if found is None:
                aks = Aks(
                    credential_for(self.settings, config),
                    config["subscription_id"],
                    arm_url=self.settings.azure_arm_url,
                    ca_bundle=str(self.settings.ca_bundle) if self.settings.ca_bundle else None,
                )
                found = CloudHandle(aks, config["resource_group"], config["aks_cluster_name"])
                self._handles[key] = found
            return found

    def _kube(self, h: CloudHandle) -> Kube:
        with h.lock:  # the metrics scrape's threads share a cloud's handle: one kubeconfig fetch
            if h.kube is None or time.monotonic() - h.kube_at > KUBECONFIG_CACHE_SECONDS:
                kube = Kube(h.aks.user_kubeconfig(h.resource_group, h.cluster))
                if h.kube is not None:
                    h.kube.close()
                h.kube, h.kube_at = kube, time.monotonic()
            return h.kube

    # -- AKS cluster ---------------------------------------------------------------------
    def _cluster_body(self, config: dict[str, Any]) -> dict[str, Any]:
        props: dict[str, Any] = {
            "dnsPrefix": config["aks_cluster_name"][:40],
            "agentPoolProfiles": [
                {"name": "system", "mode": "System", "count": 1, "vmSize": "Standard_D4s_v5", "osType": "Linux"}
            ],
            "oidcIssuerProfile": {"enabled": True},
            "securityProfile": {"workloadIdentity": {"enabled": True}},
        }
        if self.settings.azure_kubernetes_version:
            props["kubernetesVersion"] = self.settings.azure_kubernetes_version
        if config.get("container_insights"):
            props["addonProfiles"] = {"omsagent": {"enabled": True, "config": {}}}
        return {"location": config["region"], "identity": {"type": "SystemAssigned"}, "properties": props}

    def _ensure_aks(self, h: CloudHandle, config: dict[str, Any], state: dict[str, Any]) -> bool:
        """True once the AKS cluster is ready; otherwise its creation is under way."""
        if h.cluster_ready:
            return True
        lro = state.setdefault("lro", {})
        if "aks" in lro:
            try:
                st = h.aks.put_cluster(h.resource_group, h.cluster, {}, lro["aks"])
            except ProviderError:
                lro.pop("aks", None)
                raise
            if not st.done:
                return False
            lro.pop("aks", None)
        found = h.aks.get_cluster(h.resource_group, h.cluster)
        status = _props(found).get("provisioningState")
        if config.get("aks_mode") == "existing":
            if found is None:
                raise TerminalError(
                    f"AKS cluster {h.cluster!r} not found in resource group {h.resource_group!r}; "
                    "check the cloud's aks_cluster_name",
                    code="ResourceNotFound",
                )
        elif found is None or status == "Failed":
            st = h.aks.put_cluster(h.resource_group, h.cluster, self._cluster_body(config), None)
            if not st.done:
                lro["aks"] = st.token
                _event(state, "cloud", f"creating AKS cluster {h.cluster}")
                return False
            status = _props(st.resource).get("provisioningState", "Succeeded")
        if status in BUSY_STATES:
            return False
        h.cluster_ready = True
        return True

    # -- pools -----------------------------------------------------------------------------
    def _pool(self, h: CloudHandle, name: str) -> dict[str, Any] | None:
        cached = h.pools.get(name)
        if cached and time.monotonic() - cached[1] < POOL_CACHE_SECONDS:
            return cached[0]
        pool = h.aks.get_pool(h.resource_group, h.cluster, name)
        if pool is not None:
            h.pools[name] = (pool, time.monotonic())
        else:
            h.pools.pop(name, None)
        return pool

    def _ensure_pool(self, h: CloudHandle, key: PoolKey, gpus: int, need: int, state: dict[str, Any]) -> bool:
        """True when the pool exists, is idle and can hold ``need`` nodes."""
        lro = state.setdefault("lro", {})
        slot = f"pool:{key.name}"
        st: LroStep | None = None
        if slot in lro:
            try:
                st = h.aks.put_pool(h.resource_group, h.cluster, key.name, {}, lro[slot])
            finally:
                if st is None or st.done:
                    lro.pop(slot, None)  # failed or done: never resume a finished operation
            if not st.done:
                return False
            h.pools[key.name] = (st.resource or {}, time.monotonic())
        pool = self._pool(h, key.name)
        props = _props(pool)
        status = props.get("provisioningState")
        if pool is not None and status in BUSY_STATES:
            h.pools.pop(key.name, None)  # look again next time
            return False
        # A pool at AKS's size limit cannot grow further; asking again would only rewrite it.
        if pool is not None and status != "Failed" and int(props.get("maxCount") or 0) >= min(need, AKS_MAX_POOL_NODES):
            return True
        body = manifests.pool_properties(
            key,
            gpus=gpus,
            max_count=manifests.pool_capacity_step(max(need, int(props.get("maxCount") or 0))),
            orchestrator_version=None,
        )
        st = h.aks.put_pool(h.resource_group, h.cluster, key.name, body, None)
        h.pools.pop(key.name, None)
        if st.done:
            h.pools[key.name] = (st.resource or {}, time.monotonic())
            return True
        lro[slot] = st.token
        verb = "creating" if pool is None else "updating"
        _event(state, "pool", f"{verb} node pool {key.name} ({key.vm_size}, {'Spot' if key.spot else 'Regular'})")
        return False

    def _effective(self, target: ClusterTarget, state: dict[str, Any]) -> ClusterTarget:
        """``target`` with Spot groups that fell back to Regular made Regular."""
        fallback = set(state.get("fallback", []))
        if not fallback:
            return target
        groups = tuple(
            replace(g, shape=replace(g.shape, spot=False)) if g.name in fallback else g for g in target.groups
        )
        return replace(target, groups=groups)

    def _pool_needs(self, target: ClusterTarget) -> dict[PoolKey, tuple[int, int]]:
        """Pool -> (nodes needed, GPUs per node): the cloud's demand when known, else ours."""
        demand = target.pool_demand
        needs: dict[PoolKey, tuple[int, int]] = {}
        own: dict[PoolKey, int] = {manifests.pool_key(target.head): 1}
        gpus = {manifests.pool_key(target.head): target.head.gpus}
        for g in target.groups:
            k = manifests.pool_key(g.shape)
            own[k] = own.get(k, 0) + g.max_nodes
            gpus[k] = g.shape.gpus
        for k, n in own.items():
            needs[k] = (max(n, int(demand.get(f"{k.vm_size.lower()}|{str(k.spot).lower()}", 0))), gpus[k])
        return needs

    def _ensure_pools(self, h: CloudHandle, target: ClusterTarget, state: dict[str, Any]) -> tuple[bool, ClusterTarget]:
        ready = True
        effective = self._effective(target, state)
        for key, (need, gpus) in self._pool_needs(effective).items():
            try:
                ready = self._ensure_pool(h, key, gpus, need, state) and ready
            except ProviderError as exc:
                groups = [g for g in effective.groups if manifests.pool_key(g.shape) == key]
                if not (key.spot and exc.code in SPOT_FALLBACK_CODES and groups):
                    raise
                if not all(g.fallback_to_on_demand for g in groups):
                    raise
                names = sorted(g.name for g in groups)
                state["fallback"] = sorted({*state.get("fallback", []), *names})
                # KubeRay does not recreate pods when a group's template changes: pods already
                # made for the Spot pool would stay Pending, so they are removed after the apply.
                state["recycle"] = sorted({*state.get("recycle", []), *names})
                _event(
                    state,
                    "spot_fallback",
                    f"no Spot capacity for {key.vm_size} ({exc.code}); group(s) {', '.join(names)} "
                    "moved to Regular (on-demand) VMs as their spec allows",
                    exc.code,
                )
                return self._ensure_pools(h, target, state)
        return ready, effective

    # -- Provider interface --------------------------------------------------------------------
    def ensure(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        state = json.loads(json.dumps(state))  # never mutate the caller's copy
        try:
            return _step(self._ensure(target, state))
        except ProviderError as exc:
            step = _step(state)
            exc.provider_state, exc.events = step.state, step.events
            raise

    def prepare(self, target: ClusterTarget, state: dict[str, Any]) -> tuple[Kube, ClusterTarget] | None:
        """The AKS side of ``target``, shared by a RayCluster and a service's RayService: the
        AKS cluster ready, the KubeRay operator (and the NVIDIA device plugin) installed, and
        the node pools of ``target`` able to hold it. Returns the cluster's ``Kube`` and the
        effective target (Spot groups that fell back made Regular), or None while the AKS
        cluster is being created. Mutates ``state`` (LRO tokens, ``fallback``, ``recycle``,
        events); the pools need not be ready yet: their pods wait for the nodes."""
        h = self.handle(target.cloud_config)
        if not self._ensure_aks(h, target.cloud_config, state):
            return None
        kube = self._kube(h)
        if not h.operator_applied:
            if kube.get("apps/v1", "Deployment", "kuberay-operator", "kuberay-system") is None:
                for obj in manifests.kuberay_objects():
                    kube.apply(obj)
                _event(state, "operator", f"installed the KubeRay operator {manifests.KUBERAY_VERSION}")
            # AKS does not run the NVIDIA device plugin on the GPU nodes of the pools Rayplane
            # makes: without it they advertise no nvidia.com/gpu and GPU pods never schedule.
            plugin = manifests.device_plugin_daemonset()
            if kube.get("apps/v1", "DaemonSet", plugin["metadata"]["name"], "kube-system") is None:
                kube.apply(plugin)
                _event(state, "operator", "installed the NVIDIA device plugin for GPU nodes")
            h.operator_applied = True
        _, effective = self._ensure_pools(h, target, state)
        return kube, effective

    @staticmethod
    def take_events(state: dict[str, Any]) -> tuple[ProviderEvent, ...]:
        """The events ``prepare`` left in ``state``, removed from it."""
        return tuple(state.pop(_EVENTS, ()))

    def service_runner(self) -> AzureServiceRunner:
        """Services as KubeRay RayServices on the same AKS clusters (``azure.services``)."""
        from rayplane.providers.azure.services import AzureServiceRunner  # it imports this module

        return AzureServiceRunner(self)

    def kube_for(self, cloud_config: dict[str, Any]) -> Kube:
        """The Kubernetes API of the cloud's AKS cluster (its kubeconfig cached in memory)."""
        return self._kube(self.handle(cloud_config))

    def _ensure(self, target: ClusterTarget, state: dict[str, Any]) -> dict[str, Any]:
        prepared = self.prepare(target, state)
        if prepared is None:
            return state
        kube, effective = prepared
        namespace, name = manifests.resource_name(target)
        replicas = {g.name: g.count for g in effective.groups}
        obj = manifests.ray_cluster(effective, replicas=replicas, suspend=False)
        secrets = [manifests.auth_secret(target), *self.gcs_secret(kube, target)]
        shipped = observability.ship(self.settings, self.handle(target.cloud_config), target, namespace, state, obj)
        if shipped is None:
            return state  # the logs' storage account is being created: look again next pass
        obj, secrets = shipped[0], secrets + shipped[1]
        # The digest covers the Secrets too (the token's is a one-way hash of 32 random bytes):
        # they are written before the RayCluster that names them, and again if they change.
        digest = hashlib.sha256(json.dumps([obj, *secrets], sort_keys=True).encode()).hexdigest()[:16]
        if state.get("applied") != digest or state.get("suspended"):
            kube.apply(manifests.namespace(target))
            for secret in secrets:
                kube.apply(secret)
            kube.apply(obj)
            state["applied"], state["suspended"] = digest, False
        for group in state.pop("recycle", []):
            kube.delete_pods(namespace, f"ray.io/cluster={name},ray.io/group={group}")
        state.update(namespace=namespace, name=name, server=kube.server)
        state["dashboard"] = kube.proxy_url(namespace, f"{name}-head-svc", "dashboard")
        return state

    @staticmethod
    def gcs_secret(kube: Kube, target: ClusterTarget) -> list[dict[str, Any]]:
        """A fault-tolerant cluster's copy of the operator's GCS Redis password Secret."""
        if not target.gcs_fault_tolerance:
            return []
        try:
            config = manifests.gcs_redis(target)
        except ValueError as exc:
            raise TerminalError(str(exc), code="GcsRedisNotConfigured") from exc
        ns, name = config.get("password_secret_namespace") or "kuberay-system", str(config["password_secret"])
        key = str(config.get("password_key") or "password")
        found = kube.get("v1", "Secret", name, ns)
        value = ((found or {}).get("data") or {}).get(key)
        if not value:
            raise RetriableError(
                f"the GCS Redis password Secret {ns}/{name} (key {key!r}) is missing in the AKS cluster",
                code="GcsRedisSecretMissing",
            )
        return [manifests.gcs_redis_secret(target, str(value))]

    def observe(self, target: ClusterTarget, state: dict[str, Any]) -> Observation:
        if not state.get("applied"):
            return Observation(head_alive=False, dashboard_url=None, nodes={})
        kube = self._kube(self.handle(target.cloud_config))
        return self.observe_raycluster(kube, state["namespace"], state["name"], state.get("dashboard"))

    def observe_raycluster(self, kube: Kube, namespace: str, name: str, dashboard: str | None) -> Observation:
        """What one RayCluster runs, from its status and its pods (a RayService's clusters
        too, by the names KubeRay gave them); ``dashboard`` is reported while the head is up."""
        rc = kube.get("ray.io/v1", "RayCluster", name, namespace)
        if rc is None:
            return Observation(head_alive=False, dashboard_url=None, nodes={}, messages=("the RayCluster is missing",))
        status = rc.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions", [])}
        head_ready = (conditions.get("HeadPodReady") or {}).get("status") == "True"
        nodes: dict[str, int] = {}
        details: list[NodeInfo] = []
        pods = kube.pods(namespace, f"ray.io/cluster={name}")
        for pod in pods:
            labels = pod.get("metadata", {}).get("labels", {})
            ready = pod.get("status", {}).get("phase") == "Running" and all(
                c.get("ready") for c in pod.get("status", {}).get("containerStatuses", []) or [{"ready": True}]
            )
            group = "head" if labels.get("ray.io/node-type") == "head" else labels.get("ray.io/group", "")
            details.append(NodeInfo(pod["metadata"]["name"], group, ready))
            if ready and group != "head":
                nodes[group] = nodes.get(group, 0) + 1
        messages = tuple(
            f"{c.get('type')}: {c.get('message') or c.get('reason')}"
            for c in conditions.values()
            if c.get("type") == "ReplicaFailure" and c.get("status") == "True"
        )
        # Pods the scheduler cannot place: why, from its condition and the autoscaler's events
        # (read only then, so a healthy cluster costs no extra call).
        pending = scheduling.unschedulable(pods)
        found = scheduling.causes(pending, kube.events(namespace) if pending else ())
        fatal = found.fatal or scheduling.first_no_room(kube, pods, pending)
        return Observation(
            head_alive=head_ready,
            dashboard_url=dashboard if head_ready else None,
            nodes=nodes,
            node_details=tuple(details),
            messages=messages + found.messages,
            events=found.events + scheduling.gpus_unregistered(kube, pods, pending) + podfaults.pod_faults(pods),
            fatal=fatal,
        )

    def stop(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        state = json.loads(json.dumps(state))
        if state.get("applied"):
            kube = self._kube(self.handle(target.cloud_config))
            obj = manifests.ray_cluster(
                self._effective(target, state), replicas={g.name: g.count for g in target.groups}, suspend=True
            )
            kube.apply(obj)
            state["suspended"] = True
        return Step(state)

    def teardown(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        if state.get("namespace"):
            kube = self._kube(self.handle(target.cloud_config))
            kube.delete("ray.io/v1", "RayCluster", state["name"], state["namespace"])
            if target.gcs_fault_tolerance and kube.get("ray.io/v1", "RayCluster", state["name"], state["namespace"]):
                # KubeRay's finalizer runs a Job in this namespace that deletes the cluster's
                # GCS keys from Redis: the namespace goes once the RayCluster has.
                raise RetriableError("waiting for KubeRay to delete the head's GCS keys", code="GcsCleanupPending")
            kube.delete("v1", "Namespace", state["namespace"])
            observability.remove(self.settings, self.handle(target.cloud_config), state["namespace"], state)
        return Step({})

    def jobs_endpoint(self, state: dict[str, Any]) -> str | None:
        url = state.get("dashboard")
        return str(url) if url and not state.get("suspended") else None

    def jobs_auth(self, cloud_config: dict[str, Any]) -> tuple[dict[str, str], str | bool]:
        """(headers, verify) for calls through the service proxy: the kubeconfig's bearer
        token and the API server's CA."""
        kube = self._kube(self.handle(cloud_config))
        return {"Authorization": f"Bearer {kube.token}"}, kube.ca_file or True

    def ray_versions(self, cloud_config: dict[str, Any]) -> list[str]:
        return list(access.RAY_VERSIONS)

    def check_access(self, cloud_config: dict[str, Any]) -> AccessCheck:
        return access.check_access(self.settings, cloud_config)

    # -- shared pools (cloud level) -------------------------------------------------------------
    shares_node_pools = True

    def collect_unused_pools(
        self,
        cloud_config: dict[str, Any],
        demand: Mapping[str, int],
        memo: dict[str, Any],
        *,
        grace_seconds: int,
        now: datetime,
    ) -> tuple[list[str], dict[str, Any]]:
        existing = self.managed_pools(cloud_config)

        def delete(name: str, token: str | None) -> str | None:
            return self.delete_pool(cloud_config, name, token)

        return pools.collect(existing, demand, memo, delete, grace_seconds=grace_seconds, now=now)

    def managed_pools(self, cloud_config: dict[str, Any]) -> list[str]:
        """Names of the node pools Rayplane created in the cloud's AKS cluster (one ARM list)."""
        h = self.handle(cloud_config)
        found = []
        for pool in h.aks.list_pools(h.resource_group, h.cluster):
            labels = _props(pool).get("nodeLabels") or {}
            if labels.get(manifests.MANAGED_LABEL) == "true":
                found.append(str(pool.get("name")))
        return found

    def delete_pool(self, cloud_config: dict[str, Any], name: str, token: str | None) -> str | None:
        """Start or resume deleting a pool; the LRO token while under way, None once gone."""
        h = self.handle(cloud_config)
        h.pools.pop(name, None)
        st = h.aks.delete_pool(h.resource_group, h.cluster, name, token)
        return None if st.done else st.token
