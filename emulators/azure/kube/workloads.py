"""Pods and Deployments of one emulated cluster: scheduler, kubelet, pod GC, deployment controller.

:meth:`Workloads.pods` is one pass of what the control plane and the kubelets do to pods:

* **node loss** -- a pod bound to a node that no longer exists (spot eviction, scale-down)
  turns ``Failed`` with reason ``Evicted`` (the node was evicted) or ``NodeLost``, a
  ``DisruptionTarget`` condition and a terminated container; the pod GC deletes it after
  ``orphan_pod_gc_seconds`` unless a controller (KubeRay, the Deployment) deleted it first;
* **scheduling** -- pending pods, oldest first, bind to a feasible node
  (:mod:`emulators.azure.kube.scheduler`) or get ``PodScheduled=False``/``Unschedulable``,
  with the scheduler's ``Scheduled`` / ``FailedScheduling`` events
  (:mod:`emulators.azure.kube.events`; the kubelet's Pulling/Pulled/Created/Started too, and
  each node's lifecycle events -- joined, Ready, removed -- once per node);
* **kubelet** -- a bound pod runs (phase ``Running``, every condition ``True``, a pod IP)
  ``container_start_seconds`` after binding, once :attr:`Workloads.gate` lets its init
  containers finish (a Ray worker waits for its head, as KubeRay's ``wait-gcs-ready`` does).
  Binding times are kept in memory; after a restart a bound pending pod starts one delay later;
* **cluster autoscaler input** -- :func:`scheduler.pool_demand` for the unschedulable pods,
  handed to :meth:`Fleet.set_demand` per pool; a pod no pool's new node could take gets the
  autoscaler's ``NotTriggerScaleUp`` event (once per message), as cluster-autoscaler writes it.

Every node's room is its allocatable minus what AKS's DaemonSet pods request on it
(``aksnode.daemonset_requests`` and the ``KubeConfig`` knobs), and a GPU node advertises its
GPUs only while a device plugin targets it (:mod:`emulators.azure.kube.deviceplugin`).

:meth:`Workloads.deployments` keeps ``spec.replicas`` pods of each Deployment's current
template (``pod-template-hash`` label; pods of an older template are replaced at once, as
with ``Recreate``; no ReplicaSet objects are kept) and writes its status with the
``Available`` and ``Progressing`` conditions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from emulators.azure import aksnode
from emulators.azure.fleet import Fleet, Node, Pool, PoolSpec
from emulators.azure.kube import deviceplugin, kubelet_faults, nodeedits
from emulators.azure.kube import resources as res
from emulators.azure.kube.api import KubeAPI
from emulators.azure.kube.config import KubeConfig
from emulators.azure.kube.events import EventRecorder
from emulators.azure.kube.kuberay import is_ready, is_terminal
from emulators.azure.kube.nodes import node_ip, node_uid
from emulators.azure.kube.objects import now_iso
from emulators.azure.kube.scheduler import (
    NodeView,
    Resources,
    choose_node,
    node_view,
    pod_requests,
    pool_demand,
    pool_template,
    scale_up_refusal,
)

Obj = dict[str, Any]
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _copy(pod: Obj) -> Obj:
    """A pod to write: new top-level, metadata, spec and status dicts (the only levels the
    kubelet and scheduler change); deeper structures are shared with the stored snapshot,
    which is never mutated, so this is safe and far cheaper than a deep copy."""
    return {
        **pod,
        "metadata": dict(pod.get("metadata") or {}),
        "spec": dict(pod.get("spec") or {}),
        "status": dict(pod.get("status") or {}),
    }


def _cond(kind: str, status: str, now: str, reason: str = "", message: str = "") -> Obj:
    out: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:10])


class Workloads:
    """Pod lifecycle and Deployments; see the module docstring."""

    def __init__(self, api: KubeAPI, fleet: Fleet, config: KubeConfig) -> None:
        self.api = api
        self.objects = api.objects
        self.fleet = fleet
        self.config = config
        self.bound_at: dict[str, float] = {}
        self.lost_at: dict[str, float] = {}
        # Whether a bound pod's init containers can complete (KubeRay's wait-gcs-ready).
        self.gate: Callable[[str, Obj], bool] = lambda cluster, pod: True
        self.events: EventRecorder | None = None
        self.node_states: dict[str, dict[str, str]] = {}  # cluster -> node -> joined|ready (events sent)

    def _node_events(self, cluster: str, nodes: list[Node], now: float) -> None:
        """Node lifecycle events (joined, Ready, removed), once per node and state."""
        if self.events is None:
            return
        known = self.node_states.setdefault(cluster, {})
        for node in nodes:
            state = "ready" if node.ready(now) else "joined"
            if known.get(node.name) in (state, "ready"):
                continue
            rendered = nodeedits.render(self.objects, cluster, node, self.config.missing_images)
            if node.name not in known:
                self.events.node_lifecycle(cluster, rendered, "joined")
            if state == "ready":
                self.events.node_lifecycle(cluster, rendered, "ready")
            known[node.name] = state
        present = {n.name for n in nodes}
        for name in [n for n in known if n not in present]:
            del known[name]
            gone = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "uid": node_uid(cluster, name)}}
            self.events.node_lifecycle(cluster, gone, "removed")

    def _delete(self, cluster: str, pod: Obj) -> None:
        m = pod["metadata"]
        self.objects.delete(cluster, res.PODS.key, m.get("namespace", ""), m["name"])
        self.bound_at.pop(m.get("uid", ""), None)
        self.lost_at.pop(m.get("uid", ""), None)

    # -- pods --------------------------------------------------------------------------------
    def pods(self, cluster: str, nodes: list[Node], evicted: set[str], now: float) -> float | None:
        """One pass over the cluster's pods; returns when the next timed change is due."""
        pools = self.fleet.pools(cluster)
        reserved = {p.spec.name: self._reserved(p.spec) for p in pools}
        plugins = deviceplugin.plugins(self.objects, cluster, self.config.missing_images)
        views = {
            n.name: node_view(n, n.ready(now), reserved.get(n.pool), deviceplugin.advertised_gpus(n, plugins))
            for n in nodes
        }
        for one in views.values():
            nodeedits.adjust_view(self.objects, cluster, one)
        nodeedits.forget_missing(self.objects, cluster, set(views))
        self._node_events(cluster, nodes, now)
        due: list[float] = [n.ready_at for n in nodes if not n.ready(now)]
        pending: list[Obj] = []
        for pod in list(self.objects.iter_type(cluster, res.PODS.key)):
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            uid, phase, node = pod["metadata"]["uid"], status.get("phase"), spec.get("nodeName")
            if node and node not in views:
                if not is_terminal(pod):
                    self._lose(cluster, pod, node, node in evicted, now)
                    self.lost_at[uid] = now
                lost = self.lost_at.setdefault(uid, now)
                if lost + self.config.orphan_pod_gc_seconds <= now:
                    self._delete(cluster, pod)
                else:
                    due.append(lost + self.config.orphan_pod_gc_seconds)
                continue
            if node:
                if not is_terminal(pod):
                    views[node].free = views[node].free - pod_requests(spec)
                    views[node].pods.append(pod["metadata"]["name"])
                if phase == "Pending":
                    start = self.bound_at.setdefault(uid, now) + self.config.container_start_seconds
                    if start > now:
                        due.append(start)
                    elif self.gate(cluster, pod) and not kubelet_faults.pull_refused(self, cluster, pod, now, due):
                        self._start(cluster, pod, node, now)
                    # else: held in Init; a change to what it waits for makes the cluster dirty
            elif phase == "Pending":
                pending.append(pod)
        pending.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
        unschedulable = []
        refused: list[Obj] = []
        for pod in pending:
            spec = pod.get("spec") or {}
            req = pod_requests(spec)
            view, message = choose_node(spec, req, list(views.values()))
            if view is not None:
                self._bind(cluster, pod, view, now)
                view.free = view.free - req
                view.pods.append(pod["metadata"]["name"])
                due.append(now + self.config.container_start_seconds)
            else:
                self._unschedulable(cluster, pod, message)
                unschedulable.append((spec, req))
                refused.append(pod)
        templates = {p.spec.name: self._template(p, reserved[p.spec.name], plugins) for p in pools}
        stuck: list[Mapping[str, Any]] = []
        demand = pool_demand(pools, views, unschedulable, templates, stuck)
        for pod in refused:
            spec = pod.get("spec") or {}
            blocked = any(s is spec for s in stuck)
            why = scale_up_refusal(spec, pod_requests(spec), list(templates.values()), blocked=blocked)
            if why is not None and self.events is not None:
                self.events.record(
                    cluster, pod, "Normal", "NotTriggerScaleUp", why, component="cluster-autoscaler", once=True
                )
        for name, (needed, busy) in demand.items():
            self.fleet.set_demand(cluster, name, needed, busy)
        return min(due) if due else None

    def _reserved(self, spec: PoolSpec) -> Resources:
        """What AKS's DaemonSet pods request on a node of the pool (``KubeConfig`` knobs)."""
        if not self.config.system_daemonsets:
            cpu_m, mem_mib, pods = 0, 0, 0
        else:
            cpu_m, mem_mib, pods = aksnode.daemonset_requests(spec)
        cpu_m += self.config.extra_daemonset_cpu_m
        mem_mib += self.config.extra_daemonset_memory_mib
        return Resources(cpu_m, mem_mib * 2**20, 0, pods)

    @staticmethod
    def _template(pool: Pool, reserved: Resources, plugins: list[Obj]) -> NodeView:
        """The node the autoscaler expects from ``pool``: GPUs advertised when a device
        plugin would run on it (cluster-autoscaler's template node runs the DaemonSets)."""
        base = pool_template(pool, reserved)
        if not pool.spec.gpus or pool.spec.gpu_managed or not plugins:
            return base  # no GPUs, or already in its allocatable
        if any(deviceplugin.runs_on(p, base.labels, base.taints) for p in plugins):
            base.allocatable.gpu += pool.spec.gpus
            base.free.gpu += pool.spec.gpus
        return base

    def _bind(self, cluster: str, pod: Obj, view: NodeView, now: float) -> None:
        new = _copy(pod)
        stamp = now_iso(now)
        new["spec"]["nodeName"] = view.name
        containers = [c.get("name", "") for c in new["spec"].get("containers") or []]
        inits = [c.get("name", "") for c in new["spec"].get("initContainers") or []]
        unready = f"containers with unready status: [{' '.join(containers)}]"
        status = new.setdefault("status", {})
        initialized = (
            _cond(
                "Initialized",
                "False",
                stamp,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(inits)}]",
            )
            if inits
            else _cond("Initialized", "True", stamp)
        )
        if inits:
            status["initContainerStatuses"] = [
                {
                    "name": n,
                    "image": "",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": stamp}},
                }
                for n in inits
            ]
        status["conditions"] = [
            _cond("PodReadyToStartContainers", "False", stamp),
            initialized,
            _cond("Ready", "False", stamp, "ContainersNotReady", unready),
            _cond("ContainersReady", "False", stamp, "ContainersNotReady", unready),
            _cond("PodScheduled", "True", stamp),
        ]
        ip = node_ip(cluster, view.name)
        status.update({"hostIP": ip, "hostIPs": [{"ip": ip}], "startTime": stamp})
        status["containerStatuses"] = [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
            }
            for c in new["spec"].get("containers") or []
        ]
        self.bound_at[pod["metadata"]["uid"]] = now
        self.objects.put(cluster, res.PODS.key, new)
        if self.events is not None:
            self.events.scheduled(cluster, new, view.name)
            self.events.containers_started(cluster, new, view.name, init=True)

    def _unschedulable(self, cluster: str, pod: Obj, message: str) -> None:
        current = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"]
        if current and current[0].get("message") == message:
            return
        new = _copy(pod)
        new.setdefault("status", {})["conditions"] = [
            _cond("PodScheduled", "False", now_iso(), "Unschedulable", message)
        ]
        self.objects.put(cluster, res.PODS.key, new)
        if self.events is not None:
            self.events.failed_scheduling(cluster, new, message)

    def _start(self, cluster: str, pod: Obj, node: str, now: float) -> None:
        new = _copy(pod)
        stamp = now_iso(now)
        status = new.setdefault("status", {})
        ip = self.api.ips.allocate(cluster, "pod")
        status.update({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]})
        status["conditions"] = [
            _cond(kind, "True", stamp)
            for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        ]
        uid_hex = hashlib.sha256(pod["metadata"]["uid"].encode()).hexdigest()
        if status.get("initContainerStatuses"):
            status["initContainerStatuses"] = [
                {
                    **s,
                    "ready": True,
                    "started": False,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": stamp}},
                }
                for s in status["initContainerStatuses"]
            ]
        status["containerStatuses"] = [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": f"{c.get('image', '')}@sha256:{hashlib.sha256(str(c.get('image')).encode()).hexdigest()}",
                "containerID": f"containerd://{uid_hex[:48]}{i:016x}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
                "lastState": {},
            }
            for i, c in enumerate(new["spec"].get("containers") or [])
        ]
        self.objects.put(cluster, res.PODS.key, new)
        if self.events is not None:
            self.events.containers_started(cluster, new, node, init=False)

    def _lose(self, cluster: str, pod: Obj, node: str, evicted: bool, now: float) -> None:
        new = _copy(pod)
        stamp = now_iso(now)
        status = new.setdefault("status", {})
        if evicted:
            reason, message = "Evicted", f"The node {node} was deleted by a Spot VM eviction."
        else:
            reason, message = "NodeLost", f"Node {node} which was running pod {pod['metadata']['name']} is gone."
        status.update({"phase": "Failed", "reason": reason, "message": message})
        status["conditions"] = [
            _cond("DisruptionTarget", "True", stamp, "DeletionByPodGC", "PodGC: node no longer exists"),
            _cond("Ready", "False", stamp, "PodFailed"),
            _cond("ContainersReady", "False", stamp, "PodFailed"),
            _cond("PodScheduled", "True", stamp),
        ]
        status["containerStatuses"] = [
            {
                **{k: v for k, v in cs.items() if k not in ("state", "ready", "started")},
                "ready": False,
                "started": False,
                "state": {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": stamp}},
            }
            for cs in status.get("containerStatuses") or []
        ]
        self.objects.put(cluster, res.PODS.key, new)

    # -- deployments -------------------------------------------------------------------------
    def deployments(self, cluster: str) -> None:
        for deployment in list(self.objects.iter_type(cluster, res.DEPLOYMENTS.key)):
            self._deployment(cluster, deployment)

    def _deployment(self, cluster: str, d: Obj) -> None:
        spec = d.get("spec") or {}
        template = spec.get("template") or {}
        h = template_hash(template)
        name = d["metadata"]["name"]
        pods = self.objects.dependents(cluster, d["metadata"]["uid"], res.PODS.key)
        for pod in pods:
            if is_terminal(pod) or pod["metadata"].get("labels", {}).get("pod-template-hash") != h:
                self._delete(cluster, pod)
        current = [
            p for p in self.objects.dependents(cluster, d["metadata"]["uid"], res.PODS.key) if not is_terminal(p)
        ]
        replicas = int(spec.get("replicas", 1))
        for _ in range(replicas - len(current)):
            self.api.insert(cluster, res.PODS, self._pod_for(d, template, h))
        if len(current) > replicas:
            # A ReplicaSet removes unready pods first, then the newest.
            order = sorted(
                current, key=lambda p: (is_ready(p), p["metadata"].get("creationTimestamp", "")), reverse=False
            )
            for pod in order[: len(current) - replicas]:
                self._delete(cluster, pod)
        live = [p for p in self.objects.dependents(cluster, d["metadata"]["uid"], res.PODS.key) if not is_terminal(p)]
        ready = sum(1 for p in live if is_ready(p))
        status = self._deployment_status(d, f"{name}-{h}", replicas, len(live), ready)
        if status != d.get("status"):
            new = dict(d)
            new["metadata"] = dict(d["metadata"])
            new["status"] = status
            self.api.write(cluster, res.DEPLOYMENTS.key, new)

    def _pod_for(self, d: Obj, template: Obj, h: str) -> Obj:
        tmeta = template.get("metadata") or {}
        return {
            "metadata": {
                "generateName": f"{d['metadata']['name']}-{h}-",
                "namespace": d["metadata"].get("namespace", "default"),
                "labels": {**(tmeta.get("labels") or {}), "pod-template-hash": h},
                **({"annotations": dict(tmeta["annotations"])} if tmeta.get("annotations") else {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": d["metadata"]["name"],
                        "uid": d["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }

    def _deployment_status(self, d: Obj, rs_name: str, replicas: int, live: int, ready: int) -> Obj:
        old = d.get("status") or {}
        now = now_iso()
        strategy = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _scaled(strategy.get("maxUnavailable", "25%"), replicas)
        available_ok = ready >= replicas - max_unavailable
        done = ready >= replicas and live == replicas
        wanted = [
            (
                "Available",
                "True" if available_ok else "False",
                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available_ok
                else "Deployment does not have minimum availability.",
            ),
            (
                "Progressing",
                "True",
                "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" has successfully progressed.'
                if done
                else f'ReplicaSet "{rs_name}" is progressing.',
            ),
        ]
        conditions = []
        previous = {c.get("type"): c for c in old.get("conditions") or []}
        for kind, status, reason, message in wanted:
            before = previous.get(kind)
            if before and (before.get("status"), before.get("reason"), before.get("message")) == (
                status,
                reason,
                message,
            ):
                conditions.append(before)
                continue
            moved = before is None or before.get("status") != status
            conditions.append(
                {
                    "type": kind,
                    "status": status,
                    "lastUpdateTime": now,
                    "lastTransitionTime": now if moved else before.get("lastTransitionTime", now),  # type: ignore[union-attr]
                    "reason": reason,
                    "message": message,
                }
            )
        out: Obj = {"observedGeneration": int(d["metadata"].get("generation") or 1)}
        for key, value in (
            ("replicas", live),
            ("updatedReplicas", live),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            ("unavailableReplicas", max(0, replicas - ready)),
        ):
            if value:
                out[key] = value
        out["conditions"] = conditions
        return out


def _scaled(value: Any, total: int) -> int:
    """An int-or-percent of ``total``, rounded down (as maxUnavailable is)."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            return math.floor(total * int(value[:-1]) / 100)
        except ValueError:
            return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
