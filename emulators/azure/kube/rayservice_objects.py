"""What the simulated RayService controller builds, as KubeRay v1.7.0 builds it.

* the RayCluster of a RayService (``constructRayClusterForRayService`` in
  ``rayservice_controller.go``): named ``<service>-<5 random characters>``
  (``utils.GenerateRayClusterName``), the RayService's labels plus
  ``ray.io/originated-from-cr-name``/``ray.io/originated-from-crd: RayService``, annotations
  ``ray.io/hash-without-replicas-and-workers-to-delete``, ``ray.io/num-worker-groups`` and
  ``ray.io/kuberay-version``, owned (controller) by the RayService;
* the spec hash (``utils.GenerateHashWithoutReplicasAndWorkersToDelete``): worker groups'
  ``replicas``/``minReplicas``/``maxReplicas``/``workersToDelete``, tolerations and scheduling
  gates, and ``upgradeStrategy`` muted, ``suspend`` dropped (``rayClusterSpecForHashing``).
  It is a SHA-1 of canonical JSON, not byte-identical to Go's but compared only here;
* the head and serve Services (``common/service.go``: ``BuildHeadServiceForRayService``,
  ``BuildServeService``): ``<service>-head-svc``; ``<service>-serve-svc`` (per RayCluster
  ``<cluster>-serve-svc`` with ``NewClusterWithIncrementalUpgrade``) on the head container's
  ``serve``/``serve-*`` ports (8000 by default), selecting ``ray.io/cluster: <cluster>`` and
  ``ray.io/serve: "true"``, of type ``rayClusterConfig.headGroupSpec.serviceType`` unless
  ``spec.serveService`` is given (its metadata, ports and type are kept, the selector not);
* the validation of ``utils.ValidateRayServiceSpec`` (the parts that concern a RayService);
* ``setCondition``, ``shouldPrepareNewCluster``, ``calculateConditions`` with
  ``markFailedOnInitializingTimeout`` (annotation ``ray.io/initializing-timeout``: Go duration
  or seconds) and ``ValidateRayServiceMetadata``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import re
import time
from typing import TYPE_CHECKING, Any

from emulators.azure.kube import raypods
from emulators.azure.kube import resources as res
from emulators.azure.kube.api import random_suffix
from emulators.azure.kube.kuberay import _is_true, is_ready
from emulators.azure.kube.objects import now_iso

if TYPE_CHECKING:
    from emulators.azure.kube.objects import ObjectStore

Obj = dict[str, Any]
KUBERAY_VERSION = "v1.7.0"
ORIGIN_NAME = "ray.io/originated-from-cr-name"
ORIGIN_CRD = "ray.io/originated-from-crd"
SERVE_LABEL = "ray.io/serve"
HASH_KEY = "ray.io/hash-without-replicas-and-workers-to-delete"
NUM_GROUPS_KEY = "ray.io/num-worker-groups"
VERSION_KEY = "ray.io/kuberay-version"
FINALIZER = "ray.io/rayservice-finalizer"
TIMEOUT_ANNOTATION = "ray.io/initializing-timeout"
MAX_NAME_LENGTH = 53 - 6  # MaxRayServiceNameLength
KUBERAY_CONTROLLER = "ray.io/kuberay-operator"
UPGRADE_TYPES = ("NewClusterWithIncrementalUpgrade", "NewCluster", "None")


class Stop(Exception):
    """The pass ends here (KubeRay returns with a requeue)."""


def cluster_name(service: str) -> str:
    return f"{service}-{random_suffix(5)}"


def owner_reference(rs: Obj) -> Obj:
    return {
        "apiVersion": rs.get("apiVersion", "ray.io/v1"),
        "kind": "RayService",
        "name": rs["metadata"]["name"],
        "uid": rs["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def incremental(rs: Obj) -> bool:
    strategy = (rs.get("spec") or {}).get("upgradeStrategy") or {}
    return strategy.get("type") == "NewClusterWithIncrementalUpgrade"


def upgrade_options(rs: Obj) -> Obj:
    return dict(((rs.get("spec") or {}).get("upgradeStrategy") or {}).get("clusterUpgradeOptions") or {})


def zero_downtime(rs: Obj) -> bool:
    """``isZeroDowntimeUpgradeEnabled``: only ``NewCluster`` (the default) and the incremental
    upgrade prepare a new cluster (``ENABLE_ZERO_DOWNTIME`` is not modelled: on)."""
    kind = ((rs.get("spec") or {}).get("upgradeStrategy") or {}).get("type")
    return kind in (None, "NewCluster", "NewClusterWithIncrementalUpgrade")


def spec_for_hashing(cluster_spec: Obj) -> Obj:
    spec = copy.deepcopy(cluster_spec)
    spec.pop("suspend", None)
    spec.pop("upgradeStrategy", None)
    head_pod = (((spec.get("headGroupSpec") or {}).get("template") or {}).get("spec")) or {}
    head_pod.pop("tolerations", None)
    head_pod.pop("schedulingGates", None)
    for group in spec.get("workerGroupSpecs") or []:
        for key in ("replicas", "minReplicas", "maxReplicas"):
            group.pop(key, None)
        (group.get("scaleStrategy") or {}).pop("workersToDelete", None)
        pod = ((group.get("template") or {}).get("spec")) or {}
        pod.pop("tolerations", None)
        pod.pop("schedulingGates", None)
    return spec


def spec_hash(cluster_spec: Obj, groups: int | None = None) -> str:
    spec = spec_for_hashing(cluster_spec)
    if groups is not None:
        spec["workerGroupSpecs"] = (spec.get("workerGroupSpecs") or [])[:groups]
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).digest()
    return base64.b32encode(digest).decode()


def hash_equal(rs: Obj, rc: Obj, *, partial: bool) -> bool:
    """``isClusterSpecHashEqual``."""
    annotations = rc["metadata"].get("annotations") or {}
    goal = (rs.get("spec") or {}).get("rayClusterConfig") or {}
    if not partial:
        return annotations.get(HASH_KEY) == spec_hash(goal)
    try:
        groups = int(annotations.get(NUM_GROUPS_KEY, ""))
    except ValueError:
        return True
    if len(goal.get("workerGroupSpecs") or []) < groups:
        return annotations.get(HASH_KEY) == ""
    return annotations.get(HASH_KEY) == spec_hash(goal, groups)


def build_raycluster(rs: Obj, name: str) -> Obj:
    m = rs["metadata"]
    spec = copy.deepcopy((rs.get("spec") or {}).get("rayClusterConfig") or {})
    labels = {**(m.get("labels") or {}), ORIGIN_NAME: m["name"], ORIGIN_CRD: "RayService"}
    annotations = {
        **(m.get("annotations") or {}),
        HASH_KEY: spec_hash(spec),
        NUM_GROUPS_KEY: str(len(spec.get("workerGroupSpecs") or [])),
        VERSION_KEY: KUBERAY_VERSION,
    }
    if incremental(rs) and ((rs.get("status") or {}).get("activeServiceStatus") or {}).get("rayClusterName"):
        # The pending cluster of an incremental upgrade autoscales from minReplicas.
        for group in spec.get("workerGroupSpecs") or []:
            group.pop("replicas", None)
    return {
        "metadata": {
            "name": name,
            "namespace": m.get("namespace", "default"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(rs)],
        },
        "spec": spec,
    }


def serve_ports(rc: Obj) -> list[Obj]:
    return [
        {"name": p["name"], "port": p["port"], "targetPort": p["port"], "protocol": "TCP"}
        for p in raypods.service_ports(rc)
        if p["name"] == "serve" or p["name"].startswith("serve-")
    ]


def serve_port(rc: Obj) -> int:
    return next((p["port"] for p in serve_ports(rc) if p["name"] == "serve"), 8000)


def build_head_service(rs: Obj, rc: Obj, *, cluster_ip: bool) -> Obj:
    """``BuildHeadServiceForRayService``: the cluster's head service, renamed and relabelled."""
    svc = raypods.build_head_service(rc, cluster_ip=cluster_ip)
    name = rs["metadata"]["name"]
    svc["metadata"] = {
        "name": f"{name}-head-svc",
        "namespace": rs["metadata"].get("namespace", "default"),
        "labels": {
            ORIGIN_NAME: name,
            ORIGIN_CRD: "RayService",
            raypods.NODE_TYPE_LABEL: "head",
            "ray.io/identifier": f"{name}-head"[-63:],
        },
        **({"annotations": svc["metadata"]["annotations"]} if svc["metadata"].get("annotations") else {}),
        "ownerReferences": [owner_reference(rs)],
    }
    return svc


def build_serve_service(rs: Obj, rc: Obj, *, per_cluster: bool = False) -> Obj:
    """``BuildServeService(rayService, rayCluster, isRayService=true)``."""
    name = rc["metadata"]["name"] if incremental(rs) else rs["metadata"]["name"]
    labels = {ORIGIN_NAME: name, ORIGIN_CRD: "RayService", SERVE_LABEL: f"{name}-serve"}
    selector = {raypods.CLUSTER_LABEL: rc["metadata"]["name"], SERVE_LABEL: "true"}
    ports = serve_ports(rc)
    spec = rs.get("spec") or {}
    default_type = ((spec.get("rayClusterConfig") or {}).get("headGroupSpec") or {}).get("serviceType") or "ClusterIP"
    custom = spec.get("serveService")
    owner = raypods.owner_reference(rc) if per_cluster else owner_reference(rs)
    if custom and not incremental(rs):
        svc = copy.deepcopy(custom)
        meta = svc.setdefault("metadata", {})
        body = svc.setdefault("spec", {})
        body["selector"] = selector
        by_name = {p.get("name"): p for p in body.get("ports") or []}
        if ports:
            body["ports"] = [by_name.get(p["name"], p) for p in ports]
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        meta["name"] = meta.get("name") or f"{name}-serve-svc"
        meta["namespace"] = meta.get("namespace") or rs["metadata"].get("namespace", "default")
        body["type"] = body.get("type") or default_type
        meta["ownerReferences"] = [owner]
        return {"apiVersion": "v1", "kind": "Service", **svc}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{name}-serve-svc",
            "namespace": rs["metadata"].get("namespace", "default"),
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": {"selector": selector, "ports": ports, "type": default_type},
    }


def validate(rs: Obj) -> str:
    """``ValidateRayServiceSpec``'s message, or "" when the RayService is valid."""
    spec = rs.get("spec") or {}
    cluster = spec.get("rayClusterConfig") or {}
    prefix = "The RayService spec is invalid: "
    if (cluster.get("authOptions") or {}).get("mode") == "k8s":
        return prefix + "K8s token auth mode is currently not supported for RayService"
    head = cluster.get("headGroupSpec") or {}
    if not (((head.get("template") or {}).get("spec") or {}).get("containers")):
        return prefix + "headGroupSpec should have at least one container"
    if ((head.get("headService") or {}).get("metadata") or {}).get("name"):
        return prefix + "spec.rayClusterConfig.headGroupSpec.headService.metadata.name should not be set"
    kind = (spec.get("upgradeStrategy") or {}).get("type")
    if kind is not None and kind not in UPGRADE_TYPES:
        return (
            prefix + f"Spec.UpgradeStrategy.Type value {kind} is invalid, valid options are "
            "NewClusterWithIncrementalUpgrade, NewCluster, or None"
        )
    delay = spec.get("rayClusterDeletionDelaySeconds")
    if delay is not None and int(delay) < 0:
        return prefix + f"Spec.RayClusterDeletionDelaySeconds should be a non-negative integer, got {delay}"
    if incremental(rs):
        if not cluster.get("enableInTreeAutoscaling"):
            return prefix + "Ray Autoscaler is required for NewClusterWithIncrementalUpgrade"
        options = (spec.get("upgradeStrategy") or {}).get("clusterUpgradeOptions")
        if options is None:
            return prefix + "ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade"
        surge, step = int(options.get("maxSurgePercent", 100)), options.get("stepSizePercent")
        if not 0 <= surge <= 100:
            return prefix + "maxSurgePercent must be between 0 and 100"
        if step is None or not 0 <= int(step) <= 100:
            return prefix + "stepSizePercent must be between 0 and 100"
        if int(step) > surge:
            return prefix + "stepSizePercent must be less than or equal to maxSurgePercent"
        if int(options.get("intervalSeconds") or 0) <= 0:
            return prefix + "intervalSeconds must be greater than 0"
        if not options.get("gatewayClassName"):
            return prefix + "gatewayClassName is required for NewClusterWithIncrementalUpgrade"
    return ""


def set_condition(status: Obj, kind: str, value: str, reason: str, message: str) -> None:
    """``setCondition``: ``meta.SetStatusCondition`` with the status's observedGeneration."""
    conditions = status.setdefault("conditions", [])
    cond = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": int(status.get("observedGeneration") or 0),
    }
    for existing in conditions:
        if existing["type"] == kind:
            if existing.get("status") != value:
                existing["lastTransitionTime"] = now_iso()
            existing.update(cond)
            return
    conditions.append({**cond, "lastTransitionTime": now_iso()})


def condition_true(status: Obj, kind: str) -> bool:
    return _is_true(status.get("conditions") or [], kind)


def should_prepare(rs: Obj, active: Obj | None, pending: Obj | None, serving_pending: bool) -> bool:
    """``shouldPrepareNewCluster``."""
    if serving_pending or condition_true(rs.get("status") or {}, "RollbackInProgress"):
        return False
    if active is None and pending is None:
        return True
    rc = pending if pending is not None else active
    assert rc is not None
    if hash_equal(rs, rc, partial=False) or hash_equal(rs, rc, partial=True):
        return False
    return zero_downtime(rs)


def conditions(status: Obj, timeout: float | None = None) -> str:
    """``calculateConditions``, with ``markFailedOnInitializingTimeout`` for a ``timeout`` (the
    ``ray.io/initializing-timeout`` annotation, seconds); the Warning event's message when the
    timeout fired, else ""."""
    fired = ""
    if not status.get("conditions"):
        message = "RayService is initializing"
        set_condition(status, "Ready", "False", "Initializing", message)
        set_condition(status, "UpgradeInProgress", "False", "Initializing", message)
    if int(status.get("numServeEndpoints") or 0) > 0:
        set_condition(status, "Ready", "True", "NonZeroServeEndpoints", "Number of serve endpoints is greater than 0")
    elif condition_true(status, "Ready"):
        set_condition(status, "Ready", "False", "ZeroServeEndpoints", "Number of serve endpoints dropped to 0")
    elif timeout is not None:
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        since = _seconds(str((ready or {}).get("lastTransitionTime") or ""))
        if ready is not None and ready.get("reason") == "Initializing" and since is not None:
            spent = time.time() - since
            if spent >= timeout:
                for side in ("activeServiceStatus", "pendingServiceStatus"):
                    status.setdefault(side, {}).pop("rayClusterName", None)
                fired = (
                    f"RayService failed to become ready within the configured timeout of {_go_duration(timeout)}. "
                    f"Time spent initializing: {_go_duration(spent)}"
                )
                set_condition(status, "Ready", "False", "InitializingTimeout", fired)
                fired = (
                    f"RayService initializing timeout exceeded after {_go_duration(spent)} "
                    f"(configured timeout: {_go_duration(timeout)})"
                )
    active = (status.get("activeServiceStatus") or {}).get("rayClusterName")
    pending = (status.get("pendingServiceStatus") or {}).get("rayClusterName")
    if active and pending:
        set_condition(
            status,
            "UpgradeInProgress",
            "True",
            "BothActivePendingClustersExist",
            "Both active and pending Ray clusters exist",
        )
    elif active:
        set_condition(
            status,
            "UpgradeInProgress",
            "False",
            "NoPendingCluster",
            "Active Ray cluster exists and no pending Ray cluster",
        )
    else:
        cond = next((c for c in status.get("conditions") or [] if c["type"] == "UpgradeInProgress"), None)
        if cond is None or cond.get("reason") not in ("Initializing", "InitializingTimeout"):
            set_condition(
                status,
                "UpgradeInProgress",
                "Unknown",
                "NoActiveCluster",
                "No active Ray cluster exists, and the RayService is not initializing. Please open a "
                "GitHub issue in the KubeRay repository.",
            )
    return fired


def timed_out(status: Obj) -> bool:
    """``isInitializingTimeout``: a terminal failure until the RayService is recreated."""
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
    return ready is not None and ready.get("status") == "False" and ready.get("reason") == "InitializingTimeout"


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_timeout(text: str) -> float | None:
    """``ray.io/initializing-timeout``: a Go duration (``5m``, ``1h30m``) or integer seconds."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return float(int(text))
    if text and re.fullmatch(f"(?:{_DURATION.pattern})+", text):
        return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    return None


def _go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` (to the millisecond)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{int(hours)}h" if hours else ""
    out += f"{int(minutes)}m" if hours or minutes else ""
    return out + f"{round(secs, 3):g}s"


def _seconds(stamp: str) -> float | None:
    if not stamp:
        return None
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def validate_metadata(rs: Obj) -> str:
    """``ValidateRayServiceMetadata``'s message, or "" when valid."""
    name = str(rs["metadata"].get("name", ""))
    prefix = "The RayService metadata is invalid: "
    if len(name) > MAX_NAME_LENGTH:
        return prefix + f"RayService name should be no more than {MAX_NAME_LENGTH} characters"
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        return prefix + (
            "RayService name should be a valid DNS1035 label: [a DNS-1035 label must consist of lower case "
            "alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
            "character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]"
        )
    text = str((rs["metadata"].get("annotations") or {}).get(TIMEOUT_ANNOTATION) or "")
    if text:
        value = parse_timeout(text)
        bad = prefix + f"RayService annotations is invalid: annotation {TIMEOUT_ANNOTATION} "
        if value is None:
            return bad + (
                f"has invalid format: {text}. "
                "Expected Go duration format (e.g., '5m', '1h') or positive integer seconds"
            )
        if value <= 0:
            kind = "positive integer (seconds)" if re.fullmatch(r"[+-]?\d+", text.strip()) else "positive duration"
            return bad + f"must be a {kind}, got: {text}"
    return ""


def ready_endpoints(objects: ObjectStore, cluster: str, ns: str, name: str) -> int:
    """``calculateNumServeEndpointsFromSlices``: the Ready pods the Service ``name`` selects
    (KubeRay counts ready EndpointSlice endpoints, one per pod)."""
    svc = objects.get(cluster, res.SERVICES.key, ns, name)
    selector = ((svc or {}).get("spec") or {}).get("selector") or {}
    if not selector:
        return 0
    return sum(
        1
        for p in objects.iter_type(cluster, res.PODS.key)
        if p["metadata"].get("namespace") == ns
        and is_ready(p)
        and all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
    )
