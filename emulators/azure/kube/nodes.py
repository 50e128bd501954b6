"""Node objects rendered from the fleet's simulated VMs (``emulators.azure.fleet.Node``).

Nodes are never stored: every read renders them from :meth:`Fleet.nodes`, so a node that
the autoscaler removed or a spot eviction took is gone from the API at once. A node is
``Ready`` once it has booted; until then it carries the ``node.kubernetes.io/not-ready``
taint, as a real booting node does, so nothing schedules onto it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
import uuid
from typing import Any

from emulators.azure.fleet import Node
from emulators.azure.kube.objects import now_iso

NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
_NODE_CIDR = ipaddress.ip_network("10.224.0.0/16")


def node_ip(cluster: str, name: str) -> str:
    """A stable InternalIP for the node (AKS's default node subnet is 10.224.0.0/16)."""
    digest = int(hashlib.sha256(f"{cluster}/{name}".encode()).hexdigest()[:8], 16)
    return str(ipaddress.ip_address(int(_NODE_CIDR.network_address) + 4 + digest % (_NODE_CIDR.num_addresses - 8)))


def node_uid(cluster: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cluster}/nodes/{name}"))


def node_object(
    cluster: str, node: Node, resource_version: str, now: float | None = None, gpus: int = 0
) -> dict[str, Any]:
    """The ``v1.Node`` of a simulated VM, advertising ``gpus`` more ``nvidia.com/gpu`` (what a
    device plugin running on it reports; :mod:`emulators.azure.kube.deviceplugin`)."""
    at = time.time() if now is None else now
    ready = node.ready(at)
    taints = [dict(t) for t in node.taints]
    for t in taints:
        if not t.get("value"):
            t.pop("value", None)
    if not ready:
        taints.append(dict(NOT_READY_TAINT))
    heartbeat = now_iso(at)
    ready_condition = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": "KubeletReady" if ready else "KubeletNotReady",
        "message": "kubelet is posting ready status" if ready else "container runtime network not ready",
        "lastHeartbeatTime": heartbeat,
        "lastTransitionTime": now_iso(node.ready_at if ready else node.created_at),
    }
    pressure = [
        {
            "type": kind,
            "status": "False",
            "reason": f"KubeletHas{reason}",
            "message": f"kubelet has {message}",
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": now_iso(node.created_at),
        }
        for kind, reason, message in (
            ("MemoryPressure", "SufficientMemory", "sufficient memory available"),
            ("DiskPressure", "NoDiskPressure", "no disk pressure"),
            ("PIDPressure", "SufficientPID", "sufficient PID available"),
        )
    ]
    vmss = node.name.rsplit("vmss", 1)[0] + "vmss"
    instance = int(node.name.rsplit("vmss", 1)[-1] or "0", 16)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "uid": node_uid(cluster, node.name),
            "resourceVersion": resource_version,
            "creationTimestamp": now_iso(node.created_at),
            "labels": dict(node.labels),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "providerID": f"azure:///subscriptions/emulated/resourceGroups/mc_emulated/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{instance}",
            **({"taints": taints} if taints else {}),
        },
        "status": {
            "capacity": {**node.capacity, **({"nvidia.com/gpu": str(gpus)} if gpus else {})},
            "allocatable": {**(node.allocatable or node.capacity), **({"nvidia.com/gpu": str(gpus)} if gpus else {})},
            "conditions": [*pressure, ready_condition],
            "addresses": [
                {"type": "InternalIP", "address": node_ip(cluster, node.name)},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": node_uid(cluster, node.name + "/boot"),
                "containerRuntimeVersion": "containerd://1.7.27-1",
                "kernelVersion": "5.15.0-1089-azure",
                "kubeProxyVersion": "",
                "kubeletVersion": node.kubelet_version or "v1.33.3",
                "machineID": hashlib.md5(node.name.encode(), usedforsecurity=False).hexdigest(),
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS",
                "systemUUID": node_uid(cluster, node.name + "/system"),
            },
        },
    }
