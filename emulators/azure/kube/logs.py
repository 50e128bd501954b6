"""``GET .../pods/{name}/log``: what the simulated containers print.

Parameters and answers follow https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#read-log-read-log-of-the-specified-pod
(and ``kubectl logs``):

* ``container`` -- required when the pod has several containers (400 naming them otherwise);
  a name the pod lacks is a 400;
* a container that has not started answers 400 ``container "c" in pod "p" is waiting to
  start: ContainerCreating`` (``PodInitializing`` while init containers run), as the kubelet
  does; a missing pod is a 404;
* ``previous=true`` -- the simulated containers never restart, so it is the kubelet's 400
  ``previous terminated container "c" in pod "p" not found``;
* ``timestamps``, ``tailLines``, ``sinceSeconds``, ``limitBytes`` shape the text;
  ``follow=true`` streams it, then holds the response open until the container stops (the
  pod is deleted or terminal) or the server shuts down, as a followed log does.

Content: a Ray container (the pod's first container, in a pod KubeRay made) prints what
``ray start`` prints for a head or a worker, addressed with the pod's IP and its start
parameters, from its ``startedAt``; the head's ``autoscaler`` sidecar prints its start
lines; ``wait-gcs-ready`` prints the head it waited for. Ray job drivers log into files under
the head's Ray session directory, not to the container's output, so they are not here
(the dashboard's job logs serve them). Any other container has an empty log.
With ``ray_backend: "real"``, a Ray container whose pod has a real Ray node shows what that
``ray start`` really printed (its ``start.log``), stamped from the container's start.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from emulators.azure.kube import errors as err
from emulators.azure.kube import raypods
from emulators.azure.kube.api import Target

if TYPE_CHECKING:
    from emulators.azure.kube.service import KubeService

Obj = dict[str, Any]
_ADDRESS = re.compile(r"--address=(\S+)")


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise err.bad_request(f"invalid {name}: {value!r}") from None


def choose_container(pod: Obj, wanted: str | None) -> tuple[Obj, bool]:
    """(container spec, is an init container) that a log request addresses."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    containers, inits = spec.get("containers") or [], spec.get("initContainers") or []
    if not wanted:
        if len(containers) == 1:
            return containers[0], False
        names = " ".join(c.get("name", "") for c in containers)
        message = f"a container name must be specified for pod {name}, choose one of: [{names}]"
        if inits:
            message += f" or one of the init containers: [{' '.join(c.get('name', '') for c in inits)}]"
        raise err.bad_request(message)
    for c in containers:
        if c.get("name") == wanted:
            return c, False
    for c in inits:
        if c.get("name") == wanted:
            return c, True
    raise err.bad_request(f"container {wanted} is not valid for pod {name}")


def _state(pod: Obj, container: str, init: bool) -> Obj:
    key = "initContainerStatuses" if init else "containerStatuses"
    for cs in (pod.get("status") or {}).get(key) or []:
        if cs.get("name") == container:
            return dict(cs.get("state") or {})
    return {}


def _started(state: Obj) -> str | None:
    for phase in ("running", "terminated"):
        if state.get(phase):
            return str(state[phase].get("startedAt") or state[phase].get("finishedAt") or "") or None
    return None


def ray_lines(pod: Obj, container: Obj, init: bool) -> list[str]:
    """What the container prints (see the module docstring)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    node_type = labels.get(raypods.NODE_TYPE_LABEL)
    if node_type not in ("head", "worker"):
        return []
    ip = str((pod.get("status") or {}).get("podIP") or "127.0.0.1")
    args = " ".join(str(a) for a in container.get("args") or [])
    if init:
        head = args.split("--address", 1)[-1].split(";")[0].strip() if "--address" in args else "the GCS"
        return [f"Waiting for GCS to be ready at {head}...", "GCS is ready."]
    if container.get("name") == "autoscaler":
        return [
            f"Starting the KubeRay autoscaler for RayCluster {labels.get(raypods.CLUSTER_LABEL, '')}.",
            "Monitor: Started",
        ]
    spec = (pod.get("spec") or {}).get("containers") or []
    if not spec or spec[0].get("name") != container.get("name"):
        return []
    start = args.split(";")[-1].strip() or "ray start"
    lines = [f"+ {start}", f"Local node IP: {ip}", "", "--------------------", "Ray runtime started."]
    lines.append("--------------------")
    if node_type == "head":
        lines += [
            "",
            "Next steps",
            "  To add another node to this Ray cluster, run",
            f"    ray start --address='{ip}:6379'",
            "",
            "  To connect to this Ray cluster:",
            "    import ray",
            "    ray.init()",
            "",
            "  To view the status of the cluster, use",
            "    ray status",
            "",
            "  To monitor and debug Ray, view the dashboard at ",
            f"    {ip}:8265",
        ]
    else:
        found = _ADDRESS.search(args)
        lines += ["", f"Connected to the Ray cluster at {found.group(1) if found else 'its head'}."]
    lines += [
        "",
        "  To terminate the Ray runtime, run",
        "    ray stop",
        "--block",
        "  This command will now block forever until terminated by a signal.",
        "  Running subprocesses are monitored and a message will be printed if any of them terminate unexpectedly.",
    ]
    return lines


def _stamped(lines: list[str], started: str | None) -> list[tuple[datetime, str]]:
    try:
        base = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        base = datetime.fromtimestamp(time.time()).astimezone()
    return [(base + timedelta(milliseconds=3 * i), line) for i, line in enumerate(lines)]


def _render(stamped: list[tuple[datetime, str]], *, timestamps: bool) -> str:
    out = []
    for at, line in stamped:
        prefix = at.strftime("%Y-%m-%dT%H:%M:%S.%f000Z ") if timestamps else ""
        out.append(prefix + line + "\n")
    return "".join(out)


def pod_log(request: Request, svc: KubeService, t: Target) -> Response:
    """The log response (see the module docstring)."""
    q = request.query_params
    pod = svc.api.get(Target(t.cluster, t.rtype, t.version, t.namespace, t.name))
    container, init = choose_container(pod, q.get("container"))
    cname = str(container.get("name", ""))
    state = _state(pod, cname, init)
    if _flag(q.get("previous")):
        raise err.bad_request(f'previous terminated container "{cname}" in pod "{t.name}" not found')
    if not state.get("running") and not state.get("terminated"):
        waiting = str((state.get("waiting") or {}).get("reason") or "ContainerCreating")
        spec = pod.get("spec") or {}
        inits_done = all(
            (cs.get("state") or {}).get("terminated")
            for cs in (pod.get("status") or {}).get("initContainerStatuses") or []
        )
        if not init and spec.get("initContainers") and not inits_done and waiting == "ContainerCreating":
            waiting = "PodInitializing"
        raise err.bad_request(f'container "{cname}" in pod "{t.name}" is waiting to start: {waiting}')
    lines = ray_lines(pod, container, init)
    real = _real_lines(svc, pod, container, init)
    stamped = _stamped(real if real is not None else lines, _started(state))
    since = _int(q.get("sinceSeconds"), "sinceSeconds")
    if since is not None:
        cutoff = time.time() - since
        stamped = [(at, line) for at, line in stamped if at.timestamp() >= cutoff]
    tail = _int(q.get("tailLines"), "tailLines")
    if tail is not None:
        stamped = stamped[-tail:] if tail > 0 else []
    text = _render(stamped, timestamps=_flag(q.get("timestamps")))
    limit = _int(q.get("limitBytes"), "limitBytes")
    if limit is not None and limit > 0:
        text = text.encode()[:limit].decode(errors="ignore")
    if not _flag(q.get("follow")):
        return PlainTextResponse(text)
    return StreamingResponse(_follow(svc, t, pod["metadata"].get("uid", ""), text), media_type="text/plain")


def _real_lines(svc: KubeService, pod: Obj, container: Obj, init: bool) -> list[str] | None:
    """The real ``ray start`` output of the pod's Ray container, if it runs a real node."""
    first = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    if init or container.get("name") != first.get("name"):
        return None
    path = svc.raynodes.log_path(str(pod["metadata"].get("uid", "")))
    try:
        return path.read_text(errors="replace").splitlines() if path is not None else None
    except OSError:
        return None


async def _follow(svc: KubeService, t: Target, uid: str, text: str) -> AsyncIterator[bytes]:
    """The text, then nothing until the container stops or the server shuts down."""
    if text:
        yield text.encode()
    while not svc.feed.closed:
        current = svc.objects.get(t.cluster, t.rtype.key, t.namespace, t.name)
        if current is None or current["metadata"].get("uid") != uid:
            return
        if (current.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        await svc.feed.wait(t.cluster, 5.0)
