"""Why a Ray pod stays Pending on AKS, from what Kubernetes itself says (no I/O here).

Two sources, as AKS's troubleshooting guides read them
(https://learn.microsoft.com/troubleshoot/azure/azure-kubernetes/availability-performance/cluster-autoscaler-fails-to-scale):

* kube-scheduler sets the pod's ``PodScheduled`` condition to ``False``/``Unschedulable``
  with its ``0/N nodes are available: ...`` message (and a ``FailedScheduling`` event): the
  nodes there now cannot take it. That alone is not final -- the cluster autoscaler may be
  adding a node.
* The cluster autoscaler writes a ``NotTriggerScaleUp`` event on the pod (``pod didn't
  trigger scale-up: 1 Insufficient cpu, ...``) when no node group's new node could take it
  (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md, "My pod is
  pending"). With an ``Insufficient <resource>`` among its reasons the pod is bigger than a node
  of its pool can ever offer after AKS's reservations and DaemonSets: no retry helps, so the
  cluster fails with :data:`UNSCHEDULABLE`. ``Insufficient nvidia.com/gpu`` there means a new
  node of the pool would advertise none of the GPUs its VM size has: Rayplane's pods ask for
  exactly those, so nothing would register them (the NVIDIA device plugin cannot run there, as
  when its image cannot be pulled), which no retry of Rayplane's fixes either -- the event says
  what to check and that a retry of the cluster follows the fix. Other reasons (a group at its
  maximum size, a pool still being created so nothing matches the selector yet) may pass and
  are only reported.
* Without such an event (the autoscaler's events expire after an hour, or it had nothing to
  say because the pool already has a node): ``Insufficient <resource>`` from the scheduler,
  for a pod that asks more CPU or memory than a node of its pool offers once its DaemonSet
  pods have theirs, is final too -- every node of a pool is the same size (:func:`no_room`).
  It is judged from the node's ``allocatable`` and its DaemonSet pods, not from whether the
  node looks empty now, which a scheduler message written a moment earlier may not reflect.
  ``Insufficient nvidia.com/gpu`` from the scheduler alone, with a node of the pool that has
  been Ready for :data:`GPU_REGISTER_SECONDS` and advertises no ``nvidia.com/gpu``, is the
  device plugin not running there (:func:`gpus_unregistered`) -- what an autoscaler that
  takes a new node's GPUs from its VM size shows: it grows the pool and the node comes up
  without them. Reported as an event, not final: the plugin may yet start, and the
  provisioning timeout ends the wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rayplane.providers.azure import manifests
from rayplane.providers.azure.kube import Kube
from rayplane.providers.base import ProviderEvent

UNSCHEDULABLE = "Unschedulable"
EVENT_KIND = "scheduling"
GPU_SHORT = "Insufficient nvidia.com/gpu"
# How long a Ready GPU node may advertise no GPUs before the device plugin counts as not
# running: the plugin registers them within seconds of its pod starting on a new node.
GPU_REGISTER_SECONDS = 60.0
GPU_NOT_ADVERTISED = "GpuNotAdvertised"


@dataclass(frozen=True)
class Causes:
    messages: tuple[str, ...] = ()
    events: tuple[ProviderEvent, ...] = ()
    fatal: ProviderEvent | None = None


def _pending_message(pod: Mapping[str, Any]) -> str | None:
    """The scheduler's message for a pod it could not place, else None."""
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending") or (pod.get("spec") or {}).get("nodeName"):
        return None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == UNSCHEDULABLE:
            return str(cond.get("message") or UNSCHEDULABLE)
    return None


def unschedulable(pods: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Pod name -> (Ray group, scheduler's message) of the pods the scheduler could not place."""
    out: dict[str, tuple[str, str]] = {}
    for pod in pods:
        message = _pending_message(pod)
        if message is None:
            continue
        labels = (pod.get("metadata") or {}).get("labels") or {}
        group = "head" if labels.get("ray.io/node-type") == "head" else str(labels.get("ray.io/group", ""))
        out[str(pod["metadata"]["name"])] = (group, message)
    return out


def causes(pending: Mapping[str, tuple[str, str]], events: Iterable[Mapping[str, Any]]) -> Causes:
    """What to report for the ``pending`` pods (from :func:`unschedulable`) given the
    namespace's ``events``: one message per distinct (group, cause), an event for each that
    the autoscaler refused to scale up for, and the fatal event when it ruled out every node
    group for want of resources."""
    refusals: dict[str, str] = {}
    # Newest last; a refusal for want of resources outranks an older or passing one (a pod
    # first refused while its pool was still being created, then for want of room).
    for event in sorted(events, key=lambda e: str(e.get("lastTimestamp") or "")):
        involved = event.get("involvedObject") or {}
        if event.get("reason") == "NotTriggerScaleUp" and involved.get("kind", "Pod") == "Pod":
            name, message = str(involved.get("name")), str(event.get("message") or "")
            if "Insufficient" in message or "Insufficient" not in refusals.get(name, ""):
                refusals[name] = message
    seen: dict[tuple[str, str, str], None] = {}
    for name, (group, message) in sorted(pending.items()):
        seen[(group, message, refusals.get(name, ""))] = None
    messages: list[str] = []
    found: list[ProviderEvent] = []
    fatal: ProviderEvent | None = None
    for group, message, refusal in seen:
        text = f"the {group} pods cannot be scheduled: {message}"
        if refusal:
            text += f" The cluster autoscaler: {refusal}"
        text += advice(f"{message} {refusal}")
        messages.append(text)
        if refusal:
            # Only then an event: every scale-up from zero starts with pods the scheduler
            # cannot place yet, which is worth showing but not worth the cluster's history.
            found.append(ProviderEvent(EVENT_KIND, text, "NotTriggerScaleUp"))
        if fatal is None and "Insufficient" in refusal:
            fatal = ProviderEvent(
                EVENT_KIND,
                f"the {group} pods can never be scheduled: {_why_never(refusal)} ({refusal}; the scheduler: "
                f"{message})." + advice(refusal),
                UNSCHEDULABLE,
            )
    return Causes(tuple(messages), tuple(found), fatal)


def _why_never(refusal: str) -> str:
    """What the autoscaler's ``Insufficient`` refusal means for the pool: a new node would lack
    the GPUs (its template node advertises none: the device plugin would not run there), or
    room after AKS's reservations and DaemonSets."""
    short_of_room = "Insufficient cpu" in refusal or "Insufficient memory" in refusal
    if GPU_SHORT in refusal and not short_of_room:
        return "no node of their pool would advertise the GPUs they ask for"
    return "no node of their pool has room for them after AKS's reservations and DaemonSets"


def advice(said: str) -> str:
    """What to do about what the scheduler and the autoscaler ``said``, as a sentence to
    append ("" when there is nothing better to say than their own words).

    A pool at its maximum size comes first: then "Insufficient nvidia.com/gpu" from the
    scheduler only means the GPUs of the nodes there are taken. Otherwise a GPU shortage is the
    device plugin's: Rayplane's pods ask for exactly the GPUs their VM size has
    (``manifests``), so a node of the pool lacks them only when nothing registers them."""
    if "max node group size reached" in said:
        return " What to do: the pool is at its maximum node count; raise the group's max_nodes."
    if GPU_SHORT in said:
        return (
            " What to do: the group's VM size has GPUs, but the nodes of its pool advertise no nvidia.com/gpu: "
            f"the NVIDIA device plugin that Rayplane installs (DaemonSet kube-system/{manifests.DEVICE_PLUGIN_NAME}) "
            "is not running on them. `kubectl -n kube-system get pods -l name=nvidia-device-plugin-ds` shows why; "
            f"ImagePullBackOff means the nodes cannot pull {manifests.DEVICE_PLUGIN_IMAGE.split(':')[0]} (allow the "
            "cluster's egress to nvcr.io, or import the image into a registry it can read). Once it runs, retry "
            "the cluster."
        )
    if "Insufficient cpu" in said or "Insufficient memory" in said:
        return (
            " What to do: each Ray pod takes one node of its group's VM size, less what AKS reserves; "
            "a larger VM size, or fewer DaemonSets on the nodes, makes room."
        )
    return ""


_SUFFIX = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
}  # fmt: skip


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (``3500m``, ``16Gi``, ``2``) as a number; 0 when unreadable."""
    text = str(value).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "m", "k", "M", "G", "T"):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], _SUFFIX[suffix]
            break
    else:
        factor = Decimal(1)
    try:
        return Decimal(text) * factor
    except InvalidOperation:
        return Decimal(0)


_ROOM = ("cpu", "memory")  # not GPUs: a new node's device plugin registers them a little later


def requests(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    """What the scheduler counts for a pod: its containers' requests (limits where a request is
    absent), init containers as their maximum."""
    spec = pod.get("spec") or {}

    def of(container: Mapping[str, Any]) -> dict[str, Decimal]:
        res = container.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: quantity(merged[k]) for k in _ROOM if k in merged}

    total = {k: Decimal(0) for k in _ROOM}
    for c in spec.get("containers") or []:
        for k, v in of(c).items():
            total[k] += v
    for c in spec.get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total[k], v)
    return total


def _daemonset_pod(pod: Mapping[str, Any]) -> bool:
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return any(o.get("kind") == "DaemonSet" for o in (pod.get("metadata") or {}).get("ownerReferences") or [])


def no_room(
    pod: Mapping[str, Any],
    group: str,
    message: str,
    node: Mapping[str, Any],
    pods_on_node: Iterable[Mapping[str, Any]],
) -> ProviderEvent | None:
    """The fatal event when the scheduler found ``Insufficient`` room for ``pod`` and a node
    of its pool, ``node``, cannot hold it even empty: its allocatable minus its DaemonSet
    pods' requests is less than the pod asks (every node of a pool is the same size)."""
    if "Insufficient" not in message:
        return None
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    free = {k: quantity(allocatable.get(k, 0)) for k in _ROOM}
    for other in pods_on_node:
        if _daemonset_pod(other):
            for k, v in requests(other).items():
                free[k] -= v
    want = requests(pod)
    short = [k for k in _ROOM if want[k] > free[k]]
    if not short:
        return None
    name = (node.get("metadata") or {}).get("name")
    return ProviderEvent(
        EVENT_KIND,
        f"the {group} pods can never be scheduled: even an empty node of their pool ({name}) lacks "
        f"{' and '.join(short)} for them after AKS's reservations and DaemonSets (the scheduler: {message})",
        UNSCHEDULABLE,
    )


def first_no_room(kube: Kube, pods: list[dict[str, Any]], pending: dict[str, tuple[str, str]]) -> ProviderEvent | None:
    """``scheduling.no_room`` for one pod per pool the scheduler found short of room, on a
    node of the pool and the pods on it (calls made only for such pods)."""
    by_name = {p["metadata"]["name"]: p for p in pods}
    checked: set[str] = set()
    for name, (group, message) in sorted(pending.items()):
        pool = ((by_name[name].get("spec") or {}).get("nodeSelector") or {}).get(manifests.POOL_LABEL)
        if "Insufficient" not in message or not pool or pool in checked:
            continue
        checked.add(pool)
        # The pool's nodes are alike: one tells.
        nodes = kube.list_items("/api/v1/nodes", [("labelSelector", f"{manifests.POOL_LABEL}={pool}")])
        if not nodes:
            continue
        node = nodes[0]
        on = kube.list_items("/api/v1/pods", [("fieldSelector", f"spec.nodeName={node['metadata']['name']}")])
        fatal = no_room(by_name[name], group, message, node, on)
        if fatal is not None:
            return fatal
    return None


def _ready_since(node: Mapping[str, Any]) -> datetime | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            try:
                return datetime.fromisoformat(str(cond.get("lastTransitionTime")).replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


def no_gpus(group: str, message: str, node: Mapping[str, Any], now: datetime) -> ProviderEvent | None:
    """The event when the scheduler found ``Insufficient nvidia.com/gpu`` for the ``group``'s
    pods and ``node``, of their pool, has been Ready for :data:`GPU_REGISTER_SECONDS` without
    advertising any: nothing registered its GPUs (the text names the node, nothing that changes
    from one pass to the next)."""
    if GPU_SHORT not in message:
        return None
    if quantity(((node.get("status") or {}).get("allocatable") or {}).get("nvidia.com/gpu", 0)) > 0:
        return None
    since = _ready_since(node)
    if since is None or (now - since).total_seconds() < GPU_REGISTER_SECONDS:
        return None
    name = (node.get("metadata") or {}).get("name")
    return ProviderEvent(
        EVENT_KIND,
        f"the {group} pods cannot be scheduled: node {name} of their pool has been Ready since "
        f"{since.isoformat()} but advertises no nvidia.com/gpu (the scheduler: {message})." + advice(GPU_SHORT),
        GPU_NOT_ADVERTISED,
    )


def gpus_unregistered(
    kube: Kube, pods: list[dict[str, Any]], pending: dict[str, tuple[str, str]], now: datetime | None = None
) -> tuple[ProviderEvent, ...]:
    """:func:`no_gpus` for the nodes of each pool whose pods the scheduler found short of GPUs
    (a node list per such pool, none otherwise): one event per node without its GPUs."""
    now = now or datetime.now(UTC)
    by_name = {p["metadata"]["name"]: p for p in pods}
    found: dict[ProviderEvent, None] = {}
    checked: set[str] = set()
    for name, (group, message) in sorted(pending.items()):
        pool = ((by_name[name].get("spec") or {}).get("nodeSelector") or {}).get(manifests.POOL_LABEL)
        if GPU_SHORT not in message or not pool or pool in checked:
            continue
        checked.add(pool)
        for node in kube.list_items("/api/v1/nodes", [("labelSelector", f"{manifests.POOL_LABEL}={pool}")]):
            event = no_gpus(group, message, node, now)
            if event is not None:
                found[event] = None
    return tuple(found)
