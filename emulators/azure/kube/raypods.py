"""What the simulated KubeRay operator builds for a RayCluster: pods and the head service.

Modelled on KubeRay v1.7.0 (``ray-operator/controllers/ray/common/pod.go`` and
``service.go``):

* head pod ``<cluster>-head-<5 random>``, worker pods ``<cluster>-<group>-worker-<5 random>``
  (``generateName``), from the group's pod template, with the labels ``ray.io/cluster``,
  ``ray.io/node-type`` (head|worker), ``ray.io/group`` (``headgroup`` for the head),
  ``ray.io/identifier``, ``ray.io/is-ray-node``, ``app.kubernetes.io/name: kuberay``,
  ``app.kubernetes.io/created-by: kuberay-operator``, and a controller ownerReference to the
  RayCluster; the Ray container gets ``ray start`` as its command, and the head an
  ``autoscaler`` sidecar when ``enableInTreeAutoscaling`` is set (500m / 512Mi by default).
  Workers get the ``wait-gcs-ready`` init container (200m / 256Mi), which holds them in
  ``Init`` until the head pod is ready.
* head service ``<cluster>-head-svc`` (or ``headGroupSpec.headService.metadata.name``), with
  the head container's named ports plus the defaults not already used (client 10001,
  dashboard 8265, gcs-server 6379, metrics 8080, serve 8000), selecting the head pod. As in
  KubeRay it is headless (``clusterIP: None``) unless the operator's container sets
  ``ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE=true`` or the head service asks for another type.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Obj = dict[str, Any]
DEFAULT_PORTS = {"client": 10001, "dashboard": 8265, "gcs-server": 6379, "metrics": 8080, "serve": 8000}
HEAD_GROUP = "headgroup"
WAIT_GCS_READY = "wait-gcs-ready"
CLUSTER_LABEL = "ray.io/cluster"
NODE_TYPE_LABEL = "ray.io/node-type"
GROUP_LABEL = "ray.io/group"


def owner_reference(rc: Obj) -> Obj:
    return {
        "apiVersion": rc.get("apiVersion", "ray.io/v1"),
        "kind": "RayCluster",
        "name": rc["metadata"]["name"],
        "uid": rc["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def head_service_name(rc: Obj) -> str:
    head = (rc.get("spec") or {}).get("headGroupSpec") or {}
    custom = ((head.get("headService") or {}).get("metadata") or {}).get("name")
    return str(custom or _check_name(f"{rc['metadata']['name']}-head-svc"))


def _check_name(name: str) -> str:
    """KubeRay's CheckName: keep the last 50 characters, never start with a digit."""
    if len(name) > 50:
        name = name[len(name) - 50 :]
    if name[0].isdigit() or not name[0].isalnum():
        name = "r" + name[1:]
    return name


def _labels(rc: Obj, node_type: str, group: str, template_labels: dict[str, str]) -> dict[str, str]:
    """KubeRay's ``labelPod``: the template's labels override its defaults, except the three
    it selects pods by (cluster, node type, group)."""
    name = rc["metadata"]["name"]
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/identifier": f"{name}-{node_type}"[-63:],
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    labels.update(template_labels)
    if (rc["metadata"].get("labels") or {}).get("ray.io/originated-from-crd") == "RayService":
        # The RayService controller turns the head's label on once its Serve proxy is healthy.
        labels["ray.io/serve"] = "false" if node_type == "head" else "true"
    labels.update({CLUSTER_LABEL: name, NODE_TYPE_LABEL: node_type, GROUP_LABEL: group})
    return labels


def _start_params(params: dict[str, Any]) -> str:
    return " ".join(f"--{k}={v}" if v not in ("", None) else f"--{k}" for k, v in sorted(params.items()))


def _ray_env(rc: Obj, node_type: str, group: str, service: str) -> list[Obj]:
    ns = rc["metadata"].get("namespace", "default")
    fqdn = f"{service}.{ns}.svc.cluster.local"
    env: list[Obj] = [
        {"name": "RAY_CLUSTER_NAME", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{CLUSTER_LABEL}']"}}},
        {"name": "RAY_CLOUD_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "RAY_NODE_TYPE_NAME", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{GROUP_LABEL}']"}}},
        {"name": "KUBERAY_GEN_RAY_START_CMD", "value": "ray start"},
        {"name": "RAY_PORT", "value": "6379"},
        {"name": "RAY_USAGE_STATS_KUBERAY_IN_USE", "value": "1"},
        {"name": "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "value": "1"},
    ]
    if node_type == "head":
        env.append({"name": "RAY_ADDRESS", "value": "127.0.0.1:6379"})
    else:
        env += [{"name": "FQ_RAY_IP", "value": fqdn}, {"name": "RAY_IP", "value": service}]
    return env


def build_pod(rc: Obj, node_type: str, group_spec: Obj, *, autoscaler: bool) -> Obj:
    """A new head (``node_type="head"``) or worker pod for ``rc`` (no name yet: generateName)."""
    name = rc["metadata"]["name"]
    group = HEAD_GROUP if node_type == "head" else str(group_spec.get("groupName", ""))
    template = copy.deepcopy(group_spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    spec: Obj = template.get("spec") or {}
    prefix = name if node_type == "head" else f"{name}-{group}"
    service = head_service_name(rc)
    params = dict(group_spec.get("rayStartParams") or {})
    if node_type == "head":
        params.setdefault("dashboard-host", "0.0.0.0")  # noqa: S104 - a ray start flag, not a bind here
        params.setdefault("metrics-export-port", "8080")
        command = f"ulimit -n 65536; ray start --head {_start_params(params)} --block"
    else:
        params.setdefault("address", f"{service}.{rc['metadata'].get('namespace', 'default')}.svc.cluster.local:6379")
        params.setdefault("metrics-export-port", "8080")
        command = f"ulimit -n 65536; ray start {_start_params(params)} --block"
    containers = spec.get("containers") or []
    if containers:
        ray = containers[0]
        ray.setdefault("command", ["/bin/bash", "-c", "--"])
        ray.setdefault("args", [command])
        ray["env"] = [*(ray.get("env") or []), *_ray_env(rc, node_type, group, service)]
        if not any(p.get("name") == "metrics" for p in ray.get("ports") or []):
            ray["ports"] = [*(ray.get("ports") or []), {"containerPort": 8080, "name": "metrics"}]
        if node_type == "worker":
            # The worker waits for the head's GCS before Ray starts (the kubelet here holds
            # the pod in Init until the head pod is ready).
            wait = {
                "name": WAIT_GCS_READY,
                "image": ray.get("image", ""),
                "command": ["/bin/bash", "-lc", "--"],
                "args": [f"until ray health-check --address {service}:6379; do sleep 5; done"],
                "resources": {
                    "limits": {"cpu": "200m", "memory": "256Mi"},
                    "requests": {"cpu": "200m", "memory": "256Mi"},
                },
            }
            spec["initContainers"] = [*(spec.get("initContainers") or []), wait]
    if node_type == "head" and autoscaler:
        options = (rc.get("spec") or {}).get("autoscalerOptions") or {}
        resources = options.get("resources") or {
            "limits": {"cpu": "500m", "memory": "512Mi"},
            "requests": {"cpu": "500m", "memory": "512Mi"},
        }
        containers.append(
            {
                "name": "autoscaler",
                "image": options.get("image") or (containers[0].get("image") if containers else "rayproject/ray"),
                "command": ["/bin/bash", "-lc", "--"],
                "args": [
                    "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
                    "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)"
                ],
                "resources": resources,
            }
        )
    annotations = {**(tmeta.get("annotations") or {}), "ray.io/ft-enabled": json.dumps(_ft_enabled(rc))}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{prefix[:50]}-{node_type}-".lower(),
            "namespace": rc["metadata"].get("namespace", "default"),
            "labels": _labels(rc, node_type, group, dict(tmeta.get("labels") or {})),
            "annotations": annotations,
            "ownerReferences": [owner_reference(rc)],
        },
        "spec": spec,
    }


def _ft_enabled(rc: Obj) -> bool:
    spec = rc.get("spec") or {}
    annotations = (rc.get("metadata") or {}).get("annotations") or {}
    return bool(spec.get("gcsFaultToleranceOptions")) or annotations.get("ray.io/ft-enabled") == "true"


def service_ports(rc: Obj) -> list[Obj]:
    head = ((rc.get("spec") or {}).get("headGroupSpec") or {}).get("template") or {}
    containers = (head.get("spec") or {}).get("containers") or []
    ports: dict[str, int] = {}
    for port in (containers[0].get("ports") if containers else None) or []:
        if isinstance(port.get("containerPort"), int):
            ports[port.get("name") or f"{port['containerPort']}-port"] = port["containerPort"]
    used = set(ports.values())
    for name, number in DEFAULT_PORTS.items():
        if name not in ports and number not in used:
            ports[name] = number
            used.add(number)
    return [
        {"name": n, "port": p, "targetPort": p, "protocol": "TCP", "appProtocol": "tcp"}
        for n, p in sorted(ports.items())
    ]


def build_head_service(rc: Obj, *, cluster_ip: bool) -> Obj:
    name = rc["metadata"]["name"]
    head = (rc.get("spec") or {}).get("headGroupSpec") or {}
    custom = copy.deepcopy(head.get("headService") or {})
    cmeta = custom.get("metadata") or {}
    spec: Obj = custom.get("spec") or {}
    service_type = spec.get("type") or head.get("serviceType") or "ClusterIP"
    labels = {
        **(cmeta.get("labels") or {}),
        CLUSTER_LABEL: name,
        NODE_TYPE_LABEL: "head",
        "ray.io/identifier": f"{name}-head"[-63:],
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    annotations = {**(cmeta.get("annotations") or {}), **((rc.get("spec") or {}).get("headServiceAnnotations") or {})}
    spec.update(
        {
            "type": service_type,
            "selector": {CLUSTER_LABEL: name, NODE_TYPE_LABEL: "head"},
            "ports": spec.get("ports") or service_ports(rc),
        }
    )
    if service_type == "ClusterIP" and not cluster_ip and "clusterIP" not in spec:
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": head_service_name(rc),
            "namespace": rc["metadata"].get("namespace", "default"),
            "labels": labels,
            **({"annotations": annotations} if annotations else {}),
            "ownerReferences": [owner_reference(rc)],
        },
        "spec": spec,
    }
