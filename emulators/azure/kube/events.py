"""core/v1 Events written by the simulated control plane: scheduler, kubelet, KubeRay operator.

What an event looks like follows the core/v1 Event reference
(https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/), and how
repeats fold follows client-go's event recorder, whose correlator counts an identical event
instead of writing another: an event names its ``involvedObject`` (kind, namespace, name, uid,
apiVersion, optional ``fieldPath`` such as ``spec.containers{ray-head}``), a ``reason``, a
``message``, its ``source`` (``component``, ``host``) and ``reportingComponent``/``reportingInstance``,
``type`` ``Normal`` or ``Warning``, ``count`` and ``firstTimestamp``/``lastTimestamp``. The
same event again (same object, type, reason, message, source) increments ``count`` and moves
``lastTimestamp`` instead of adding an object, as the recorder's correlator does. Event names
are ``<object name>.<hex nanoseconds>``; events live in the involved object's namespace
(``default`` for cluster-scoped objects such as nodes).

Bounds: as the API server's ``--event-ttl`` (1 hour by default,
https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/) expires events, an event not
seen again for :data:`EVENT_TTL_SECONDS` is deleted, and each cluster keeps at most
:data:`EVENTS_PER_CLUSTER` events written here (the oldest go first). Both are enforced when
an event is recorded, so an idle cluster keeps its last events.

Races: everything runs on the event loop. Pod deletions are seen through the store's listener
(``Killing`` events), which must not write while the store is notifying: those events are
written by a callback scheduled on the loop (or at once when no loop runs).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emulators.azure.kube import resources as res
from emulators.azure.kube.objects import clone, now_iso

if TYPE_CHECKING:
    from emulators.azure.kube.api import KubeAPI

Obj = dict[str, Any]
EVENT_TTL_SECONDS = 3600.0
EVENTS_PER_CLUSTER = 2000
SCHEDULER = "default-scheduler"
KUBELET = "kubelet"
KUBERAY = "raycluster-controller"
NODE_CONTROLLER = "node-controller"


def reference(obj: Obj, field_path: str = "") -> Obj:
    """An ``ObjectReference`` to ``obj`` (as ``involvedObject``)."""
    m = obj.get("metadata") or {}
    ref: Obj = {
        "kind": obj.get("kind", ""),
        "name": m.get("name", ""),
        "uid": m.get("uid", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": m.get("resourceVersion", ""),
    }
    if m.get("namespace"):
        ref["namespace"] = m["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class EventRecorder:
    """Writes and folds events; see the module docstring."""

    def __init__(
        self,
        api: KubeAPI,
        *,
        ttl: float = EVENT_TTL_SECONDS,
        per_cluster: int = EVENTS_PER_CLUSTER,
        enabled: Callable[[], bool] = lambda: True,
    ) -> None:
        self.api = api
        self.enabled = enabled
        self.objects = api.objects
        self.ttl = ttl
        self.per_cluster = per_cluster
        # cluster -> correlation key -> (namespace, name), oldest-touched first
        self._index: dict[str, OrderedDict[tuple[str, ...], tuple[str, str]]] = {}
        self._touched: dict[str, dict[tuple[str, str], float]] = {}
        self.objects.listeners.append(self._on_change)

    def _cluster_index(self, cluster: str) -> OrderedDict[tuple[str, ...], tuple[str, str]]:
        index = self._index.get(cluster)
        if index is None:
            # After a restart: adopt the stored events written here, oldest first.
            index = self._index[cluster] = OrderedDict()
            touched = self._touched[cluster] = {}
            mine = [e for e in self.objects.iter_type(cluster, res.EVENTS.key) if e.get("reportingComponent")]
            mine.sort(key=lambda e: str(e.get("lastTimestamp") or ""))
            for ev in mine:
                ref = (ev["metadata"].get("namespace", ""), ev["metadata"]["name"])
                index[_key(ev)] = ref
                touched[ref] = time.time()
        return index

    def record(
        self,
        cluster: str,
        involved: Obj,
        kind: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str = "",
        field_path: str = "",
        action: str = "",
        once: bool = False,
    ) -> Obj | None:
        """Write the event (or count a repeat); the stored event, or None when its namespace
        is gone (a pod deleted with its namespace) or events are off (``record_events``).
        With ``once``, an event already recorded is left as it is (not counted again)."""
        if not self.enabled():
            return None
        now = time.time()
        stamp = now_iso(now)
        ref = reference(involved, field_path)
        namespace = ref.get("namespace") or "default"
        if self.objects.get(cluster, res.NAMESPACES.key, "", namespace) is None:
            return None
        event: Obj = {
            "metadata": {"name": f"{ref['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": kind,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
            **({"action": action} if action else {}),
        }
        index = self._cluster_index(cluster)
        key = _key(event)
        found = index.get(key)
        stored = self.objects.get(cluster, res.EVENTS.key, *found) if found else None
        if stored is not None and once:
            return stored
        if stored is not None and found is not None:
            repeat = clone(stored)
            repeat["count"] = int(stored.get("count") or 1) + 1
            repeat["lastTimestamp"] = stamp
            repeat["involvedObject"] = ref
            index.move_to_end(key)
            self._touched[cluster][found] = now
            written = self.objects.put(cluster, res.EVENTS.key, repeat)
        else:
            written = self.api.insert(cluster, res.EVENTS, event)
            name_ref = (namespace, written["metadata"]["name"])
            index[key] = name_ref
            self._touched[cluster][name_ref] = now
        self._prune(cluster, now)
        return written

    def _prune(self, cluster: str, now: float) -> None:
        index, touched = self._index[cluster], self._touched[cluster]
        while index:
            key, ref = next(iter(index.items()))
            if len(index) <= self.per_cluster and touched.get(ref, now) > now - self.ttl:
                break
            del index[key]
            touched.pop(ref, None)
            self.objects.delete(cluster, res.EVENTS.key, *ref)

    # -- what the simulated components report -------------------------------------------------
    def scheduled(self, cluster: str, pod: Obj, node: str) -> None:
        m = pod["metadata"]
        message = f"Successfully assigned {m.get('namespace', '')}/{m['name']} to {node}"
        self.record(cluster, pod, "Normal", "Scheduled", message, component=SCHEDULER)

    def failed_scheduling(self, cluster: str, pod: Obj, message: str) -> None:
        self.record(cluster, pod, "Warning", "FailedScheduling", message, component=SCHEDULER)

    def containers_started(self, cluster: str, pod: Obj, node: str, *, init: bool) -> None:
        """The kubelet's Pulling, Pulled, Created, Started for each (init) container."""
        spec = pod.get("spec") or {}
        field = "initContainers" if init else "containers"
        for c in spec.get(field) or []:
            name, image = c.get("name", ""), c.get("image", "")
            path = f"spec.{field}{{{name}}}"
            for reason, message in (
                ("Pulling", f'Pulling image "{image}"'),
                ("Pulled", f'Successfully pulled image "{image}"'),
                ("Created", f"Created container: {name}"),
                ("Started", f"Started container {name}"),
            ):
                self.record(cluster, pod, "Normal", reason, message, component=KUBELET, host=node, field_path=path)

    def node_lifecycle(self, cluster: str, node: Obj, stage: str) -> None:
        """A node's events as its kubelet and the node controller report them: on joining
        (``stage="joined"``), on turning Ready (``"ready"``), on leaving (``"removed"``). Each
        is recorded once per node, also across restarts of the emulator."""
        name = node["metadata"]["name"]
        wanted: list[tuple[str, str, str]] = []
        if stage == "joined":
            wanted = [
                (KUBELET, "Starting", "Starting kubelet."),
                *(
                    (KUBELET, condition, f"Node {name} status is now: {condition}")
                    for condition in ("NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID")
                ),
                (KUBELET, "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods"),
                (NODE_CONTROLLER, "RegisteredNode", f"Node {name} event: Registered Node {name} in Controller"),
            ]
        elif stage == "ready":
            wanted = [(KUBELET, "NodeReady", f"Node {name} status is now: NodeReady")]
        elif stage == "removed":
            wanted = [(NODE_CONTROLLER, "RemovingNode", f"Node {name} event: Removing Node {name} from Controller")]
        for component, reason, message in wanted:
            host = name if component == KUBELET else ""
            self.record(cluster, node, "Normal", reason, message, component=component, host=host, once=True)

    def node_schedulable(self, cluster: str, node: Obj, *, schedulable: bool) -> None:
        """The kubelet's NodeSchedulable / NodeNotSchedulable after an uncordon / cordon."""
        status = "NodeSchedulable" if schedulable else "NodeNotSchedulable"
        name = node["metadata"]["name"]
        message = f"Node {name} status is now: {status}"
        self.record(cluster, node, "Normal", status, message, component=KUBELET, host=name)

    def operator(self, cluster: str, rc: Obj, kind: str, reason: str, message: str, action: str) -> None:
        """An event of the KubeRay operator about a RayCluster."""
        self.record(cluster, rc, kind, reason, message, component=KUBERAY, action=action)

    def forget(self, cluster: str) -> None:
        self._index.pop(cluster, None)
        self._touched.pop(cluster, None)

    # -- kubelet: Killing --------------------------------------------------------------------
    def _on_change(self, cluster: str, rkey: str, old: Obj | None, new: Obj | None) -> None:
        if not rkey:
            self.forget(cluster)
            return
        if rkey != res.PODS.key or new is not None or old is None:
            return
        running = [
            cs.get("name", "")
            for cs in (old.get("status") or {}).get("containerStatuses") or []
            if (cs.get("state") or {}).get("running") is not None
        ]
        node = (old.get("spec") or {}).get("nodeName") or ""
        if not running or not self.objects.has_cluster(cluster):
            return

        def write() -> None:
            if not self.objects.has_cluster(cluster):
                return
            for name in running:
                self.record(
                    cluster,
                    old,
                    "Normal",
                    "Killing",
                    f"Stopping container {name}",
                    component=KUBELET,
                    host=node,
                    field_path=f"spec.containers{{{name}}}",
                )

        try:
            asyncio.get_running_loop().call_soon(write)
        except RuntimeError:
            write()


def deleted_pod_detail(pod: Obj) -> str:
    """The tail of KubeRay's "Deleted ... Pod" message: phase, restart policy, how Ray ended."""
    status = pod.get("status") or {}
    terminated = next(
        (
            (cs.get("state") or {}).get("terminated")
            for cs in status.get("containerStatuses") or []
            if (cs.get("state") or {}).get("terminated")
        ),
        None,
    )
    ended = (
        "nil"
        if terminated is None
        else "&ContainerStateTerminated{"
        + f"ExitCode:{terminated.get('exitCode', 0)},Reason:{terminated.get('reason', '')}"
        + "}"
    )
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    phase = status.get("phase", "")
    return f"; Pod status: {phase}; Pod restart policy: {policy}; Ray container terminated status: {ended}"


def _key(event: Obj) -> tuple[str, ...]:
    ref = event.get("involvedObject") or {}
    source = event.get("source") or {}
    return (
        str(ref.get("namespace", "")),
        str(ref.get("kind", "")),
        str(ref.get("name", "")),
        str(ref.get("uid", "")),
        str(ref.get("fieldPath", "")),
        str(event.get("type", "")),
        str(event.get("reason", "")),
        str(event.get("message", "")),
        str(source.get("component", "")),
        str(source.get("host", "")),
    )
