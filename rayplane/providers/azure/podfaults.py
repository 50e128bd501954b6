"""Why a Ray pod on AKS is not running or keeps restarting, said plainly (no I/O here).

The kubelet writes the cause into the pod's status, where :func:`pod_faults` reads it:

* ``state.waiting.reason`` ``ErrImagePull`` / ``ImagePullBackOff`` / ``InvalidImageName``:
  the node cannot pull the container's image (a wrong name or tag, or a private registry the
  cluster may not read). Nothing else fixes it, so the event says what to change.
* ``lastState.terminated.reason`` ``OOMKilled`` (or the current state's): the container went
  over its memory limit and the kernel killed it; the kubelet restarts it. Each restart is a
  new event (its count is in the text), since every one may have cost a job its work.
* ``state.waiting.reason`` ``CrashLoopBackOff``: the container keeps exiting for another
  reason; its exit code is said, and the logs hold the rest.
* ``status.reason`` ``Evicted`` / ``NodeLost`` of a failed pod: the VM under it went away
  (a Spot eviction, or a node removed); Rayplane replaces the node, Ray retries the tasks.

The reconciler records each event once while it lasts (the text is the key, so it names the
pod and holds nothing that changes from one pass to the next, such as a timestamp).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from rayplane.providers.base import ProviderEvent

EVENT_KIND = "node_fault"
IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
_BACKOFF = re.compile(r'^Back-off pulling image "[^"]*"(: )?(ErrImagePull: )?')


def _who(pod: Mapping[str, Any]) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    name = (pod.get("metadata") or {}).get("name", "")
    if labels.get("ray.io/node-type") == "head":
        return f"the head ({name})"
    return f"a node of group {labels.get('ray.io/group', '?')!r} ({name})"


def _image_pull(who: str, cs: Mapping[str, Any], waiting: Mapping[str, Any]) -> ProviderEvent:
    image = cs.get("image") or "?"
    # The same text for the first failure and the back-off after it (one event, not two):
    # the back-off message ends with the pull's error (kubelets since Kubernetes 1.30).
    detail = _BACKOFF.sub("", str(waiting.get("message") or waiting.get("reason")))
    return ProviderEvent(
        EVENT_KIND,
        f"{who} cannot start: its image {image!r} cannot be pulled ({detail}). Check the image name and "
        "tag; an image in a private registry needs the AKS cluster to have pull access to it (for Azure "
        "Container Registry, `az aks update --attach-acr <registry>`).",
        "ImagePullFailed",
    )


def _oom(who: str, cs: Mapping[str, Any]) -> ProviderEvent:
    restarts = int(cs.get("restartCount") or 0)
    return ProviderEvent(
        EVENT_KIND,
        f"{who} ran out of memory and was killed by the kernel (OOMKilled, restart {restarts}); the tasks "
        "and actors on it were lost or retried. Give the group a VM size with more memory, or make its "
        "work use less (fewer concurrent tasks, a `memory` request in the tasks' resources).",
        "OutOfMemory",
    )


def _crash_loop(who: str, cs: Mapping[str, Any]) -> ProviderEvent:
    last = (cs.get("lastState") or {}).get("terminated") or {}
    code = last.get("exitCode")
    why = f"exit code {code}" + (f", {last['reason']}" if last.get("reason") else "") if code is not None else "?"
    return ProviderEvent(
        EVENT_KIND,
        f"{who} keeps exiting ({why}) and Kubernetes is backing off before starting it again; "
        "the node's Ray logs say why (a bad image or start command, or Ray failing to join its head).",
        "CrashLoop",
    )


def _lost(who: str, status: Mapping[str, Any]) -> ProviderEvent:
    reason = str(status.get("reason"))
    text = (
        f"{who} was lost with its VM ({reason}: {status.get('message') or 'the node went away'}). "
        "Rayplane replaces the node; Ray retries its tasks, and actors come back where they allow restarts."
    )
    return ProviderEvent(EVENT_KIND, text, "NodeEvicted" if reason == "Evicted" else "NodeLost")


def pod_faults(pods: Iterable[Mapping[str, Any]]) -> tuple[ProviderEvent, ...]:
    """One event per pod and cause, in pod order (see the module doc): a head's containers
    (Ray's and the autoscaler's) share an image, and its failure is said once."""
    found: dict[ProviderEvent, None] = {}
    for pod in pods:
        who, status = _who(pod), pod.get("status") or {}
        if status.get("phase") == "Failed" and status.get("reason") in ("Evicted", "NodeLost"):
            found[_lost(who, status)] = None
            continue
        for cs in status.get("containerStatuses") or []:
            state, last = cs.get("state") or {}, cs.get("lastState") or {}
            waiting = state.get("waiting") or {}
            killed = (state.get("terminated") or {}).get("reason") == "OOMKilled"
            if waiting.get("reason") in IMAGE_PULL:
                found[_image_pull(who, cs, waiting)] = None
            elif killed or (last.get("terminated") or {}).get("reason") == "OOMKilled":
                found[_oom(who, cs)] = None
            elif waiting.get("reason") == "CrashLoopBackOff":
                found[_crash_loop(who, cs)] = None
    return tuple(found)
