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
  cluster fails with :data:`UNSCHEDULABLE`. Other reasons (a group at its maximum size, a pool
  still being created so nothing matches the selector yet) may pass and are only reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rayplane.providers.base import ProviderEvent

UNSCHEDULABLE = "Unschedulable"
EVENT_KIND = "scheduling"


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
        messages.append(text)
        if refusal:
            # Only then an event: every scale-up from zero starts with pods the scheduler
            # cannot place yet, which is worth showing but not worth the cluster's history.
            found.append(ProviderEvent(EVENT_KIND, text, "NotTriggerScaleUp"))
        if fatal is None and "Insufficient" in refusal:
            fatal = ProviderEvent(
                EVENT_KIND,
                f"the {group} pods can never be scheduled: no node of their pool has room for them after AKS's "
                f"reservations and DaemonSets ({refusal}; the scheduler: {message})",
                UNSCHEDULABLE,
            )
    return Causes(tuple(messages), tuple(found), fatal)
