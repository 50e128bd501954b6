"""The simulated KubeRay operator (v1.7.0 semantics) of one emulated cluster.

It acts only while the operator is installed and available in that cluster: a Deployment whose
pod template runs an image containing ``kuberay-operator`` or ``kuberay/operator`` has an
available replica (its pod Running on a Ready node). ``WATCH_NAMESPACE`` in the operator's
container restricts it to those namespaces, and ``ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE=true``
gives head services a cluster IP, as the real operator reads them.

Each pass reconciles every RayCluster as ``raycluster_controller.go`` does:

* suspend (``spec.suspend``): condition ``RayClusterSuspending`` first, then all pods are
  deleted, then ``RayClusterSuspended``; unsuspending clears it and pods come back;
* head service, and the autoscaler's ServiceAccount/Role/RoleBinding with in-tree autoscaling;
* pods: a head pod in a terminal phase is deleted (a new one comes on the next pass); a
  missing one is created; per worker group, terminal pods and ``scaleStrategy.workersToDelete``
  are deleted (nothing is created in a pass that deleted unhealthy workers), then pods are
  created up to ``clamp(replicas, minReplicas, maxReplicas) * numOfHosts``, and surplus pods
  are deleted unless in-tree autoscaling is on;
* status (``calculateStatus``): ``readyWorkerReplicas``, ``availableWorkerReplicas``,
  ``desired/min/maxWorkerReplicas``, ``desiredCPU/Memory/GPU/TPU``, ``state`` (``ready`` /
  ``suspended``, sticky as in KubeRay), conditions ``HeadPodReady``, ``RayClusterProvisioned``,
  ``ReplicaFailure`` (pod create/delete failures, injectable with the ``fail_pod_creation``
  knob), ``RayClusterSuspending``/``RayClusterSuspended``, ``endpoints``, ``head``,
  ``observedGeneration``; ``lastUpdateTime`` moves only when something else changed, so an
  idle cluster causes no writes. Zero counts are omitted, as Go's ``omitempty`` does.
Then its RayServices (:mod:`emulators.azure.kube.rayservice`), in the same namespaces.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulators.azure.kube import raypods
from emulators.azure.kube import resources as res
from emulators.azure.kube.api import KubeAPI
from emulators.azure.kube.config import KubeConfig
from emulators.azure.kube.events import EventRecorder, deleted_pod_detail
from emulators.azure.kube.objects import now_iso
from emulators.azure.kube.scheduler import Resources, format_cpu, format_memory, pod_requests

if TYPE_CHECKING:
    from emulators.azure.kube.rayservice import RayServiceController

Obj = dict[str, Any]
RAYCLUSTERS = "ray.io/rayclusters"
_OPERATOR_IMAGES = ("kuberay-operator", "kuberay/operator")


@dataclass(frozen=True)
class Operator:
    namespaces: frozenset[str] | None  # None: all namespaces
    cluster_ip_service: bool


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def is_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def node_type(pod: Obj) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(raypods.NODE_TYPE_LABEL, ""))


def set_condition(conditions: list[Obj], cond: Obj, now: str) -> None:
    """``meta.SetStatusCondition``: the transition time moves only when the status does."""
    for existing in conditions:
        if existing["type"] == cond["type"]:
            if existing.get("status") != cond["status"]:
                existing["lastTransitionTime"] = now
            existing.update({k: v for k, v in cond.items() if k != "lastTransitionTime"})
            return
    conditions.append(
        {
            "type": cond["type"],
            "status": cond["status"],
            "lastTransitionTime": now,
            "reason": cond.get("reason", ""),
            "message": cond.get("message", ""),
        }
    )


def _is_true(conditions: list[Obj], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def suspend_status(rc: Obj) -> str:
    conditions = (rc.get("status") or {}).get("conditions") or []
    if _is_true(conditions, "RayClusterSuspending"):
        return "RayClusterSuspending"
    if _is_true(conditions, "RayClusterSuspended"):
        return "RayClusterSuspended"
    return ""


def desired_replicas(group: Obj) -> int:
    lo, hi = int(group.get("minReplicas") or 0), int(group.get("maxReplicas", 2**31 - 1))
    replicas = group.get("replicas")
    if lo > hi:
        return hi
    if replicas is None or int(replicas) < lo:
        return lo
    return min(int(replicas), hi)


class ReconcileError(Exception):
    """A failed pass; ``marker`` is the ReplicaFailure reason when it is one."""

    def __init__(self, message: str, marker: str = "") -> None:
        super().__init__(message)
        self.marker = marker


class KubeRayOperator:
    """Reconciles the RayClusters of a cluster; see the module docstring."""

    def __init__(self, api: KubeAPI, config: KubeConfig) -> None:
        self.api = api
        self.objects = api.objects
        self.config = config
        self.events: EventRecorder | None = None
        self.rayservices: RayServiceController | None = None

    def _event(self, cluster: str, rc: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        """An event of the operator's recorder (``raycluster_controller.go``'s reasons)."""
        if self.events is not None:
            action = "Delete" if reason.startswith(("Deleted", "FailedToDelete")) else "Create"
            self.events.operator(cluster, rc, "Warning" if warning else "Normal", reason, message, action)

    def operator(self, cluster: str) -> Operator | None:
        for deployment in self.objects.iter_type(cluster, res.DEPLOYMENTS.key):
            containers = (
                (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
            ) or []
            operator = next(
                (c for c in containers if any(i in str(c.get("image", "")) for i in _OPERATOR_IMAGES)), None
            )
            if operator is None or int((deployment.get("status") or {}).get("availableReplicas") or 0) < 1:
                continue
            env = {e.get("name"): str(e.get("value", "")) for e in operator.get("env") or [] if isinstance(e, dict)}
            watch = env.get("WATCH_NAMESPACE", "").strip()
            namespaces = frozenset(n.strip() for n in watch.split(",") if n.strip()) if watch else None
            return Operator(namespaces, env.get("ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE", "").lower() == "true")
        return None

    def reconcile(self, cluster: str) -> float | None:
        """One pass over every RayCluster the operator watches (nothing without an operator),
        then over its RayServices; when a RayService wants the next pass."""
        operator = self.operator(cluster)
        if operator is None:
            return None
        for rc in list(self.objects.iter_type(cluster, RAYCLUSTERS)):
            if operator.namespaces is None or rc["metadata"].get("namespace") in operator.namespaces:
                self._reconcile(cluster, rc, operator)
        services = self.rayservices
        return services.reconcile(cluster, operator.namespaces, operator.cluster_ip_service) if services else None

    def gcs_ready(self, cluster: str, pod: Obj) -> bool:
        """Whether ``pod`` may start its containers: a Ray worker's ``wait-gcs-ready`` init
        container finishes only once its RayCluster's head pod is ready."""
        init = (pod.get("spec") or {}).get("initContainers") or []
        if not any(c.get("name") == raypods.WAIT_GCS_READY for c in init):
            return True
        for ref in pod["metadata"].get("ownerReferences") or []:
            rc = self.objects.by_uid(cluster, str(ref.get("uid"))) if ref.get("kind") == "RayCluster" else None
            if rc is not None:
                return any(node_type(p) == "head" and is_ready(p) for p in self.pods_of(cluster, rc))
        return False

    def pods_of(self, cluster: str, rc: Obj) -> list[Obj]:
        return self.objects.dependents(cluster, rc["metadata"]["uid"], res.PODS.key)

    def _reconcile(self, cluster: str, rc: Obj, operator: Operator) -> None:
        error: ReconcileError | None = None
        try:
            self._ensure_service(cluster, rc, operator)
            self._ensure_autoscaler_rbac(cluster, rc)
            self._reconcile_pods(cluster, rc)
        except ReconcileError as exc:
            error = exc
        current = self.objects.get(cluster, RAYCLUSTERS, rc["metadata"].get("namespace", ""), rc["metadata"]["name"])
        if current is None:
            return
        status = self._status(cluster, current, error)
        if status != current.get("status"):
            updated = copy.copy(current)
            updated["status"] = status
            self.api.write(cluster, RAYCLUSTERS, updated)

    # -- owned objects ---------------------------------------------------------------------
    def _ensure_service(self, cluster: str, rc: Obj, operator: Operator) -> None:
        ns = rc["metadata"].get("namespace", "default")
        name = raypods.head_service_name(rc)
        if self.objects.get(cluster, res.SERVICES.key, ns, name) is None:
            self.api.insert(
                cluster, res.SERVICES, raypods.build_head_service(rc, cluster_ip=operator.cluster_ip_service)
            )
            self._event(cluster, rc, "CreatedService", f"Created service {ns}/{name}")

    def _ensure_autoscaler_rbac(self, cluster: str, rc: Obj) -> None:
        if not (rc.get("spec") or {}).get("enableInTreeAutoscaling"):
            return
        ns, name = rc["metadata"].get("namespace", "default"), rc["metadata"]["name"]
        meta = {
            "name": name,
            "namespace": ns,
            "labels": {raypods.CLUSTER_LABEL: name},
            "ownerReferences": [raypods.owner_reference(rc)],
        }
        rules = [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
        ]
        wanted: list[tuple[res.ResourceType, Obj]] = [
            (res.SERVICEACCOUNTS, {"metadata": copy.deepcopy(meta)}),
            (res.BY_KEY["rbac.authorization.k8s.io/roles"], {"metadata": copy.deepcopy(meta), "rules": rules}),
            (
                res.BY_KEY["rbac.authorization.k8s.io/rolebindings"],
                {
                    "metadata": copy.deepcopy(meta),
                    "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                },
            ),
        ]
        for rtype, obj in wanted:
            if self.objects.get(cluster, rtype.key, ns, name) is None:
                self.api.insert(cluster, rtype, obj)
                what = {"ServiceAccount": "service account", "Role": "role", "RoleBinding": "role binding"}
                self._event(cluster, rc, f"Created{rtype.kind}", f"Created {what[rtype.kind]} {ns}/{name}")

    def _create_pod(self, cluster: str, rc: Obj, node: str, group: Obj) -> None:
        ns = rc["metadata"].get("namespace", "default")
        if self.config.fail_pod_creation:
            marker = "FailedCreateHeadPod" if node == "head" else "FailedCreateWorkerPod"
            reason = 'pods is forbidden: pod creation rejected (fault injected by the emulator: "fail_pod_creation")'
            if node == "head":
                message = f"Failed to create head Pod {ns}/, {reason}"
            else:
                message = f"Failed to create worker Pod for the cluster {ns}/{rc['metadata']['name']}, {reason}"
            self._event(cluster, rc, f"FailedToCreate{node.capitalize()}Pod", message, warning=True)
            raise ReconcileError(f"{marker}\n{reason}", marker)
        autoscaler = bool((rc.get("spec") or {}).get("enableInTreeAutoscaling"))
        pod = self.api.insert(cluster, res.PODS, raypods.build_pod(rc, node, group, autoscaler=autoscaler))
        which = "head" if node == "head" else "worker"
        self._event(
            cluster, rc, f"Created{which.capitalize()}Pod", f"Created {which} Pod {ns}/{pod['metadata']['name']}"
        )

    def _delete_pod(self, cluster: str, pod: Obj, rc: Obj | None = None, reason: str = "", message: str = "") -> None:
        m = pod["metadata"]
        self.objects.delete(cluster, res.PODS.key, m.get("namespace", ""), m["name"])
        if rc is not None and reason:
            self._event(cluster, rc, reason, message.format(pod=f"{m.get('namespace', '')}/{m['name']}"))

    def _reconcile_pods(self, cluster: str, rc: Obj) -> None:
        spec = rc.get("spec") or {}
        suspending = suspend_status(rc)
        pods = self.pods_of(cluster, rc)
        if suspending == "RayClusterSuspending":
            for pod in pods:
                self._delete_pod(cluster, pod)
            return
        if suspending == "RayClusterSuspended" or spec.get("suspend"):
            return
        heads = [p for p in pods if node_type(p) == "head"]
        if len(heads) == 1 and is_terminal(heads[0]):
            self._delete_pod(
                cluster, heads[0], rc, "DeletedHeadPod", "Deleted head Pod {pod}" + deleted_pod_detail(heads[0])
            )
            phase = heads[0]["status"]["phase"]
            raise ReconcileError(
                f"The head Pod {heads[0]['metadata']['name']} status is {phase} which is a terminal state."
            )
        if not heads:
            self._create_pod(cluster, rc, "head", spec.get("headGroupSpec") or {})
        elif len(heads) > 1:
            healthy = [p for p in heads if (p.get("status") or {}).get("phase") in ("Running", "Pending")][:1]
            for pod in heads:
                if pod not in healthy:
                    self._delete_pod(cluster, pod)
        autoscaling = bool(spec.get("enableInTreeAutoscaling"))
        for group in spec.get("workerGroupSpecs") or []:
            name = group.get("groupName")
            members = [
                p for p in pods if node_type(p) == "worker" and p["metadata"]["labels"].get(raypods.GROUP_LABEL) == name
            ]
            if group.get("suspend"):
                for pod in members:
                    self._delete_pod(cluster, pod)
                if members:
                    ns = rc["metadata"].get("namespace", "default")
                    rc_name = f"{ns}/{rc['metadata']['name']}"
                    message = f"Deleted all pods for suspended worker group {name} in RayCluster {rc_name}"
                    self._event(cluster, rc, "DeletedWorkerPod", message)
                continue
            unhealthy = [p for p in members if is_terminal(p)]
            for pod in unhealthy:
                self._delete_pod(
                    cluster, pod, rc, "DeletedWorkerPod", "Deleted worker Pod {pod}" + deleted_pod_detail(pod)
                )
            if unhealthy:
                raise ReconcileError(f"delete {len(unhealthy)} unhealthy worker Pods")
            doomed = set((group.get("scaleStrategy") or {}).get("workersToDelete") or [])
            for pod in members:
                if pod["metadata"]["name"] in doomed:
                    self._delete_pod(cluster, pod, rc, "DeletedWorkerPod", "Deleted pod {pod}")
            running = [p for p in members if p["metadata"]["name"] not in doomed]
            diff = desired_replicas(group) * max(1, int(group.get("numOfHosts") or 1)) - len(running)
            for _ in range(diff):
                self._create_pod(cluster, rc, "worker", group)
            if diff < 0 and not autoscaling:
                for pod in running[:-diff]:
                    self._delete_pod(cluster, pod, rc, "DeletedWorkerPod", "Deleted Pod {pod}")

    # -- status ----------------------------------------------------------------------------
    def _status(self, cluster: str, rc: Obj, error: ReconcileError | None) -> Obj:
        old = rc.get("status") or {}
        status = copy.deepcopy(old)
        spec = rc.get("spec") or {}
        now = now_iso()
        conditions: list[Obj] = status.get("conditions") or []
        if error is not None and error.marker:
            set_condition(
                conditions,
                {"type": "ReplicaFailure", "status": "True", "reason": error.marker, "message": str(error)},
                now,
            )
        elif error is None:
            conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        pods = self.pods_of(cluster, rc)
        workers = [p for p in pods if node_type(p) == "worker"]
        groups = spec.get("workerGroupSpecs") or []
        desired = sum(desired_replicas(g) for g in groups)
        counts = {
            "readyWorkerReplicas": sum(1 for p in workers if is_ready(p)),
            "availableWorkerReplicas": sum(1 for p in workers if (p.get("status") or {}).get("phase") == "Running"),
            "desiredWorkerReplicas": desired,
            "minWorkerReplicas": sum(int(g.get("minReplicas") or 0) for g in groups),
            "maxWorkerReplicas": sum(int(g.get("maxReplicas", 2**31 - 1)) for g in groups),
            "observedGeneration": int(rc["metadata"].get("generation") or 0),
        }
        for key, value in counts.items():
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        status.update(_desired_resources(spec))
        all_running = bool(pods) and all(is_ready(p) for p in pods)
        if error is None and len(pods) == desired + 1 and all_running:
            status["state"] = "ready"
            status.pop("reason", None)
        heads = [p for p in pods if node_type(p) == "head"]
        head = heads[0] if len(heads) == 1 else None
        if head is None:
            set_condition(
                conditions,
                {
                    "type": "HeadPodReady",
                    "status": "False",
                    "reason": "HeadPodNotFound",
                    "message": "Head Pod not found",
                },
                now,
            )
        else:
            set_condition(conditions, _head_ready(head), now)
        suspend = suspend_status(rc)
        if not _is_true(conditions, "RayClusterProvisioned") and suspend != "RayClusterSuspended":
            if all_running:
                cond = {
                    "status": "True",
                    "reason": "AllPodRunningAndReadyFirstTime",
                    "message": "All Ray Pods are ready for the first time",
                }
            else:
                cond = {
                    "status": "False",
                    "reason": "RayClusterPodsProvisioning",
                    "message": "RayCluster Pods are being provisioned for first time",
                }
            set_condition(conditions, {"type": "RayClusterProvisioned", **cond}, now)
        if suspend == "RayClusterSuspending":
            if not pods:
                set_condition(
                    conditions,
                    {
                        "type": "RayClusterProvisioned",
                        "status": "False",
                        "reason": "RayClusterPodsProvisioning",
                        "message": "RayCluster has been suspended",
                    },
                    now,
                )
                set_condition(
                    conditions,
                    {"type": "RayClusterSuspending", "status": "False", "reason": "RayClusterSuspending"},
                    now,
                )
                set_condition(
                    conditions, {"type": "RayClusterSuspended", "status": "True", "reason": "RayClusterSuspended"}, now
                )
        elif suspend == "RayClusterSuspended":
            # Only an explicit ``suspend: false`` resumes (``Spec.Suspend != nil && !*Spec.Suspend``).
            if spec.get("suspend") is False:
                set_condition(
                    conditions, {"type": "RayClusterSuspended", "status": "False", "reason": "RayClusterSuspended"}, now
                )
        else:
            set_condition(
                conditions, {"type": "RayClusterSuspended", "status": "False", "reason": "RayClusterSuspended"}, now
            )
            wanted = "True" if spec.get("suspend") else "False"
            set_condition(
                conditions, {"type": "RayClusterSuspending", "status": wanted, "reason": "RayClusterSuspending"}, now
            )
        status["conditions"] = conditions
        if spec.get("suspend") and not pods:
            status["state"] = "suspended"
        self._endpoints_and_head(cluster, rc, status, head)
        if _comparable(status) != _comparable(old):
            status["lastUpdateTime"] = now
            if status.get("state") != old.get("state") and status.get("state"):
                status.setdefault("stateTransitionTimes", {})[status["state"]] = now
        return status

    def _endpoints_and_head(self, cluster: str, rc: Obj, status: Obj, head: Obj | None) -> None:
        ns = rc["metadata"].get("namespace", "default")
        service = self.objects.get(cluster, res.SERVICES.key, ns, raypods.head_service_name(rc))
        head_info: Obj = {}
        if head is not None:
            if (head.get("status") or {}).get("podIP"):
                head_info["podIP"] = head["status"]["podIP"]
            head_info["podName"] = head["metadata"]["name"]
        if service is not None:
            endpoints = dict(status.get("endpoints") or {})
            for port in (service.get("spec") or {}).get("ports") or []:
                if port.get("name"):
                    endpoints[port["name"]] = str(port.get("targetPort", port.get("port")))
            if endpoints:
                status["endpoints"] = endpoints
            ip = (service.get("spec") or {}).get("clusterIP")
            ip = ((head or {}).get("status") or {}).get("podIP") if ip == "None" else ip
            if ip:
                head_info["serviceIP"] = ip
            head_info["serviceName"] = service["metadata"]["name"]
        status["head"] = head_info


def _head_ready(head: Obj) -> Obj:
    """``FindHeadPodReadyCondition``: the head pod's Ready condition, as a RayCluster condition."""
    cond = {"type": "HeadPodReady", "status": "False", "reason": "Unknown", "message": ""}
    for c in (head.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            cond["status"] = c.get("status", "False")
            cond["message"] = c.get("message", "")
            reason = c.get("reason") or ("HeadPodRunningAndReady" if c.get("status") == "True" else "")
            if reason:
                cond["reason"] = reason
            break
    return cond


def _desired_resources(spec: Obj) -> Obj:
    """``desiredCPU``/``desiredMemory``/``desiredGPU``/``desiredTPU``: the head plus ``replicas``
    (not clamped, as KubeRay sums them) of each group, requests taking precedence over limits."""
    total = pod_requests(((spec.get("headGroupSpec") or {}).get("template") or {}).get("spec") or {})
    tpu = _tpu(((spec.get("headGroupSpec") or {}).get("template") or {}).get("spec") or {})
    for group in spec.get("workerGroupSpecs") or []:
        one = pod_requests((group.get("template") or {}).get("spec") or {})
        n = int(group.get("replicas") or 0)
        total = total + Resources(one.cpu * n, one.memory * n, one.gpu * n)
        tpu += n * _tpu((group.get("template") or {}).get("spec") or {})
    return {
        "desiredCPU": format_cpu(total.cpu),
        "desiredMemory": format_memory(total.memory),
        "desiredGPU": str(total.gpu),
        "desiredTPU": str(tpu),
    }


def _tpu(spec: Obj) -> int:
    out = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("requests") or {}).get("google.com/tpu") or (res.get("limits") or {}).get("google.com/tpu")
        out += int(value or 0)
    return out


def _comparable(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if k not in ("lastUpdateTime", "stateTransitionTimes")}
