"""What a kubelet reports when a container cannot run: an image it cannot pull, and a
container the kernel killed for memory.

* **Image pulls.** An image matching one of the ``missing_images`` patterns of the config
  (``fnmatch``, as ``rayproject/ray:nightly-*`` or ``*/private/*``) does not exist for this
  cluster. Its pod stays ``Pending`` on its node: the container waits first with reason
  ``ErrImagePull`` and then, from the next attempt ``IMAGE_BACKOFF_SECONDS`` later, with
  ``ImagePullBackOff``, with the kubelet's ``Pulling``/``Failed``/``BackOff`` events and
  containerd's ``not found`` message, as a real node shows it.
* **OOM kills** (``POST /_emulator/kube/oom``): the container was killed for going over its
  memory limit and restarted in place: ``restartCount`` + 1, ``lastState.terminated`` with
  reason ``OOMKilled`` and exit code 137 (SIGKILL), the pod running again.
"""

from __future__ import annotations

import copy
import fnmatch
from typing import TYPE_CHECKING, Any

from emulators.azure.kube import resources as res
from emulators.azure.kube.objects import ObjectStore, now_iso

if TYPE_CHECKING:
    from emulators.azure.kube.workloads import Workloads

Obj = dict[str, Any]
IMAGE_BACKOFF_SECONDS = 1.0
KUBELET = "kubelet"


def _missing(image: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(image, p) for p in patterns)


def _not_found(image: str) -> str:
    ref = image if "/" in image.split(":", 1)[0] else f"docker.io/library/{image}"
    return (
        f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found'
        if "." in ref.split("/", 1)[0]
        else f'failed to pull and unpack image "docker.io/{ref}": failed to resolve reference '
        f'"docker.io/{ref}": docker.io/{ref}: not found'
    )


def pull_refused(w: Workloads, cluster: str, pod: Obj, now: float, due: list[float]) -> bool:
    """True, and the pod's statuses and events written, when one of its containers' images
    cannot be pulled; ``due`` gets the time of the next attempt while the reason changes."""
    patterns = list(w.config.missing_images or [])
    containers = (pod.get("spec") or {}).get("containers") or []
    if not patterns or not any(_missing(str(c.get("image") or ""), patterns) for c in containers):
        return False
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    seen = {str(s.get("name")): ((s.get("state") or {}).get("waiting") or {}).get("reason") for s in statuses}
    new = copy.deepcopy(pod)
    changed: list[tuple[str, str]] = []
    for cs in new.get("status", {}).get("containerStatuses") or []:
        image = str(cs.get("image") or "")
        if not _missing(image, patterns):
            continue
        before = seen.get(str(cs.get("name")))
        reason = "ImagePullBackOff" if before in ("ErrImagePull", "ImagePullBackOff") else "ErrImagePull"
        if before == reason:
            continue
        error = f"rpc error: code = NotFound desc = {_not_found(image)}"
        # Kubelets since Kubernetes 1.30 keep the pull's error in the back-off message.
        message = f'Back-off pulling image "{image}": ErrImagePull: {error}' if reason == "ImagePullBackOff" else error
        cs["state"] = {"waiting": {"reason": reason, "message": message}}
        changed.append((image, reason))
    if not changed:
        return True
    w.objects.put(cluster, res.PODS.key, new)
    if w.events is not None and w.config.record_events:
        for image, reason in changed:
            if reason == "ErrImagePull":
                w.events.record(cluster, new, "Normal", "Pulling", f'Pulling image "{image}"', component=KUBELET)
                text = f'Failed to pull image "{image}": rpc error: code = NotFound desc = {_not_found(image)}'
                w.events.record(cluster, new, "Warning", "Failed", text, component=KUBELET)
                due.append(now + IMAGE_BACKOFF_SECONDS)
            else:
                w.events.record(
                    cluster, new, "Normal", "BackOff", f'Back-off pulling image "{image}"', component=KUBELET
                )
                w.events.record(cluster, new, "Warning", "Failed", "Error: ImagePullBackOff", component=KUBELET)
    return True


def oom_kill(objects: ObjectStore, cluster: str, namespace: str, name: str, container: str | None) -> Obj | None:
    """The running pod with its container (the first, unless named) OOM-killed and restarted;
    None when there is no such running pod."""
    pod = objects.get(cluster, res.PODS.key, namespace, name)
    if pod is None or (pod.get("status") or {}).get("phase") != "Running":
        return None
    new = copy.deepcopy(pod)
    stamp = now_iso()
    for cs in new["status"].get("containerStatuses") or []:
        if container is not None and cs.get("name") != container:
            continue
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt", stamp)
        terminated = {"exitCode": 137, "reason": "OOMKilled", "startedAt": started, "finishedAt": stamp}
        cs.update(lastState={"terminated": terminated}, state={"running": {"startedAt": stamp}})
        cs["restartCount"] = int(cs.get("restartCount") or 0) + 1
        cs["containerID"] = str(cs.get("containerID", "containerd://")) + "r"
        break
    else:
        return None
    return objects.put(cluster, res.PODS.key, new)
