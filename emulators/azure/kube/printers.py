"""Table columns of the built-in kinds, as the real API server prints them for ``kubectl get``.

The columns and cell rules follow the API server's printers (``pkg/printers/internalversion``)
as documented for ``kubectl get`` (https://kubernetes.io/docs/reference/kubectl/generated/kubectl_get/
and https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables):
priority-1 columns are those ``-o wide`` adds; the server always fills every cell (wide
included), the client hides what it does not show. Each row function takes a stored object
and returns its cells in column order. Times are human durations (:func:`tables.since`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Obj = dict[str, Any]
NONE = "<none>"


def col(name: str, kind: str = "string", priority: int = 0, description: str = "", fmt: str = "") -> Obj:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


NAME = col("Name", fmt="name", description="Name must be unique within a namespace.")
AGE = col(
    "Age", description="CreationTimestamp is a timestamp representing the server time when this object was created."
)


@dataclass(frozen=True)
class Printer:
    columns: list[Obj]
    row: Callable[[Obj], list[Any]]


# -- durations ------------------------------------------------------------------------------
def human_duration(seconds: float) -> str:
    """The API server's short duration (``k8s.io/apimachinery/pkg/util/duration``): seconds
    under two minutes, minutes (and seconds under ten), hours, days, years."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(timestamp: Any, now: float | None = None) -> str:
    """``human_duration`` since an RFC 3339 timestamp; ``<unknown>`` when absent or bad."""
    if not timestamp:
        return "<unknown>"
    try:
        at = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "<unknown>"
    return human_duration((time.time() if now is None else now) - at)


def _age(obj: Obj) -> str:
    return since((obj.get("metadata") or {}).get("creationTimestamp"))


_since = since


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


# -- pods -------------------------------------------------------------------------------------
def pod_reason(pod: Obj) -> tuple[str, int, int, int]:
    """(STATUS column, ready containers, containers, restarts) as ``kubectl get pods`` shows."""
    spec, status = _spec(pod), _status(pod)
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    restarts = 0
    ready = 0
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if terminated is not None:
            reason = "Init:" + str(terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}")
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    if not initializing:
        restarts = 0
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated is not None and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif terminated is not None:
                reason = f"ExitCode:{terminated.get('exitCode')}"
            elif cs.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason, ready, len(containers), restarts


def _pod_row(pod: Obj) -> list[Any]:
    reason, ready, total, restarts = pod_reason(pod)
    spec, status = _spec(pod), _status(pod)
    gates = spec.get("readinessGates") or []
    if gates:
        true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gate_cell = f"{sum(1 for g in gates if g.get('conditionType') in true)}/{len(gates)}"
    else:
        gate_cell = NONE
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        str(restarts),
        _age(pod),
        status.get("podIP") or NONE,
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        gate_cell,
    ]


POD = Printer(
    [
        NAME,
        col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        col("Status", description="The aggregate status of the containers in this pod."),
        col("Restarts", description="The number of times the containers in this pod have been restarted."),
        AGE,
        col("IP", priority=1, description="IP address allocated to the pod."),
        col("Node", priority=1, description="NodeName is the name of the node the pod is scheduled on."),
        col("Nominated Node", priority=1, description="nominatedNodeName is set when this pod preempts other pods."),
        col("Readiness Gates", priority=1, description="If specified, all readiness gates will be evaluated."),
    ],
    _pod_row,
)


# -- nodes ------------------------------------------------------------------------------------
def _node_row(node: Obj) -> list[Any]:
    status, labels = _status(node), (node.get("metadata") or {}).get("labels") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    if _spec(node).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(
        {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        _name(node),
        state,
        ",".join(roles) or NONE,
        _age(node),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or NONE,
        addresses.get("ExternalIP") or NONE,
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


NODE = Printer(
    [
        NAME,
        col("Status", description="The status of the node"),
        col("Roles", description="The roles of the node"),
        AGE,
        col("Version", description="Kubelet Version reported by the node."),
        col("Internal-IP", priority=1, description="List of internal IPs."),
        col("External-IP", priority=1, description="List of external IPs."),
        col("OS-Image", priority=1, description="OS Image reported by the node."),
        col("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
        col("Container-Runtime", priority=1, description="Container Runtime Version reported by the node."),
    ],
    _node_row,
)


# -- workloads --------------------------------------------------------------------------------
def _containers(template_spec: Obj) -> tuple[str, str]:
    containers = template_spec.get("containers") or []
    return ",".join(str(c.get("name", "")) for c in containers), ",".join(str(c.get("image", "")) for c in containers)


def _selector(selector: Obj | None) -> str:
    if not selector:
        return NONE
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, values = str(expr.get("operator", "")), ",".join(expr.get("values") or [])
        key = expr.get("key")
        terms.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": f"{key}"}.get(op, f"!{key}")
        )
    return ",".join(terms) or NONE


def _deployment_row(d: Obj) -> list[Any]:
    spec, status = _spec(d), _status(d)
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [
        _name(d),
        f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas', 1))}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        _age(d),
        names,
        images,
        _selector(spec.get("selector")),
    ]


DEPLOYMENT = Printer(
    [
        NAME,
        col("Ready", description="Number of the pod with ready state"),
        col("Up-to-date", "integer", description="Total number of non-terminated pods targeted by this deployment."),
        col("Available", "integer", description="Total number of available pods targeted by this deployment."),
        AGE,
        col("Containers", priority=1, description="Names of each container in the template."),
        col("Images", priority=1, description="Images referenced by each container in the template."),
        col("Selector", priority=1, description="Label selector for pods."),
    ],
    _deployment_row,
)


def _job_row(job: Obj) -> list[Any]:
    spec, status = _spec(job), _status(job)
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Complete") == "True":
        state = "Complete"
    elif conditions.get("Failed") == "True":
        state = "Failed"
    elif conditions.get("Suspended") == "True":
        state = "Suspended"
    else:
        state = "Running"
    completions = spec.get("completions")
    done = f"{int(status.get('succeeded') or 0)}/{completions if completions is not None else 1}"
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    start, end = status.get("startTime"), status.get("completionTime")
    duration = ""
    if start:
        duration = _since(start) if not end else _duration_between(start, end)
    return [_name(job), state, done, duration, _age(job), names, images, _selector(spec.get("selector"))]


def _duration_between(start: str, end: str) -> str:
    def ts(value: str) -> float:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    try:
        return human_duration(ts(end) - ts(start))
    except ValueError:
        return ""


JOB = Printer(
    [
        NAME,
        col("Status", description="Status of the job."),
        col("Completions", description="The desired number of successfully finished pods the job should be run with."),
        col("Duration", description="Time required to complete the job."),
        AGE,
        col("Containers", priority=1, description="Names of each container in the template."),
        col("Images", priority=1, description="Images referenced by each container in the template."),
        col("Selector", priority=1, description="A label query over pods that should match the pod count."),
    ],
    _job_row,
)


# -- services and config ----------------------------------------------------------------------
def _service_row(svc: Obj) -> list[Any]:
    spec, status = _spec(svc), _status(svc)
    kind = str(spec.get("type") or "ClusterIP")
    ingress = [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    external = [*ingress, *(spec.get("externalIPs") or [])]
    if kind == "ExternalName":
        external_cell = str(spec.get("externalName") or NONE)
    elif external:
        external_cell = ",".join(str(e) for e in external)
    else:
        external_cell = "<pending>" if kind == "LoadBalancer" else NONE
    ports = []
    for p in spec.get("ports") or []:
        node_port = f":{p['nodePort']}" if p.get("nodePort") and kind in ("NodePort", "LoadBalancer") else ""
        ports.append(f"{p.get('port')}{node_port}/{p.get('protocol') or 'TCP'}")
    selector = spec.get("selector") or {}
    return [
        _name(svc),
        kind,
        spec.get("clusterIP") or NONE,
        external_cell,
        ",".join(ports) or NONE,
        _age(svc),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or NONE,
    ]


SERVICE = Printer(
    [
        NAME,
        col("Type", description="The type of the service."),
        col("Cluster-IP", description="The IP address of the service."),
        col("External-IP", description="External IP addresses of the service."),
        col("Port(s)", description="The ports exposed by the service."),
        AGE,
        col("Selector", priority=1, description="Route service traffic to pods with label keys and values."),
    ],
    _service_row,
)
CONFIGMAP = Printer(
    [NAME, col("Data", "integer", description="Number of data entries."), AGE],
    lambda o: [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)],
)
SECRET = Printer(
    [NAME, col("Type", description="The type of the secret"), col("Data", "integer"), AGE],
    lambda o: [_name(o), o.get("type") or "Opaque", len(o.get("data") or {}), _age(o)],
)
SERVICEACCOUNT = Printer(
    [NAME, col("Secrets", "integer", description="Secrets is a list of the secrets used by this account"), AGE],
    lambda o: [_name(o), len(o.get("secrets") or []), _age(o)],
)
NAMESPACE = Printer(
    [NAME, col("Status", description="The status of the namespace"), AGE],
    lambda o: [_name(o), _status(o).get("phase") or "Active", _age(o)],
)


# -- events -----------------------------------------------------------------------------------
def _event_row(ev: Obj) -> list[Any]:
    involved = ev.get("involvedObject") or {}
    first = ev.get("firstTimestamp") or ev.get("eventTime")
    last = ev.get("lastTimestamp") or first
    count = int(ev.get("count") or 0) or 1
    series = ev.get("series") or {}
    if series:
        last, count = series.get("lastObservedTime") or last, int(series.get("count") or count)
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    host = source.get("host") or ev.get("reportingInstance") or ""
    source_cell = f"{component}, {host}" if component and host else component or host
    return [
        _since(last),
        ev.get("type") or "",
        ev.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        source_cell,
        str(ev.get("message") or "").strip(),
        _since(first),
        count,
        _name(ev),
    ]


EVENT = Printer(
    [
        col("Last Seen", description="Time when last event from this source was observed."),
        col("Type", description="Type of this event (Normal, Warning)."),
        col("Reason", description="This should be a short, machine understandable string."),
        col("Object", description="The object that this event is about."),
        col("Subobject", priority=1, description="The field path of the object this event is about."),
        col("Source", priority=1, description="The component reporting this event."),
        col("Message", description="A human-readable description of the status of this operation."),
        col("First Seen", priority=1, description="The time at which the event was first recorded."),
        col("Count", priority=1, description="The number of times this event has occurred."),
        col("Name", priority=1, fmt="name", description="Name must be unique within a namespace."),
    ],
    _event_row,
)
CREATED_AT = Printer(
    [NAME, col("Created At", "date", description="CreationTimestamp of the object.")],
    lambda o: [_name(o), (o.get("metadata") or {}).get("creationTimestamp")],
)
ROLEBINDING = Printer(
    [NAME, col("Role", description="Role of the binding."), AGE],
    lambda o: [_name(o), f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}", _age(o)],
)
LEASE = Printer(
    [NAME, col("Holder", description="The holder of the lease."), AGE],
    lambda o: [_name(o), _spec(o).get("holderIdentity") or "", _age(o)],
)

PRINTERS: dict[str, Printer] = {
    "core/pods": POD,
    "core/nodes": NODE,
    "core/services": SERVICE,
    "core/configmaps": CONFIGMAP,
    "core/secrets": SECRET,
    "core/serviceaccounts": SERVICEACCOUNT,
    "core/namespaces": NAMESPACE,
    "core/events": EVENT,
    "apps/deployments": DEPLOYMENT,
    "batch/jobs": JOB,
    "apiextensions.k8s.io/customresourcedefinitions": CREATED_AT,
    "rbac.authorization.k8s.io/roles": CREATED_AT,
    "rbac.authorization.k8s.io/clusterroles": CREATED_AT,
    "rbac.authorization.k8s.io/rolebindings": ROLEBINDING,
    "rbac.authorization.k8s.io/clusterrolebindings": ROLEBINDING,
    "coordination.k8s.io/leases": LEASE,
}


def row_conditions(rtype: Any, obj: Obj) -> list[Obj]:
    """Row conditions: a finished pod's row is ``Completed``, as the pod printer marks it."""
    if getattr(rtype, "key", "") != "core/pods":
        return []
    phase = _status(obj).get("phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []
