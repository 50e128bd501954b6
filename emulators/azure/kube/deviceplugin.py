"""Whether a GPU node advertises ``nvidia.com/gpu``: only once a device plugin runs on it.

On AKS (https://learn.microsoft.com/azure/aks/use-nvidia-gpu) the NVIDIA driver comes with
the node image, but the kubelet learns of the GPUs only from the NVIDIA device plugin, which
the user installs as a DaemonSet (AKS's example: ``nvidia-device-plugin-daemonset`` with the
label ``name: nvidia-device-plugin-ds``, image ``nvcr.io/nvidia/k8s-device-plugin``), or the
NVIDIA GPU Operator installs; or AKS itself on a pool whose
``gpuProfile.nvidia.managementMode`` is ``Managed``
(https://learn.microsoft.com/azure/aks/aks-managed-gpu-nodes, handled in ``aksnode``).

A DaemonSet counts as a device plugin, in any namespace, when its name or its pod template's
``name`` label is ``nvidia-device-plugin-ds`` / starts with ``nvidia-device-plugin``, or a
container's image is the NVIDIA plugin's. It runs on a node when its pod template's node
selector and required affinity match the node's labels and its tolerations cover the node's
``NoSchedule``/``NoExecute`` taints (as the DaemonSet controller decides; a booting node's
``not-ready`` taint aside, which DaemonSet pods tolerate). No pods are made for it: the node
advertises its GPUs from the moment the DaemonSet targets it.

A plugin whose image matches the config's ``missing_images`` (a cluster whose egress cannot
reach ``nvcr.io``, or a mistyped tag) never starts: its pods would sit in
``ImagePullBackOff``, no plugin registers with the kubelet, and the nodes advertise no GPUs --
the scheduler says ``Insufficient nvidia.com/gpu`` and the autoscaler, whose template node runs
the same DaemonSets, refuses to scale a GPU pool up for a GPU pod.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from emulators.azure.fleet import Node
from emulators.azure.kube import resources as res
from emulators.azure.kube.objects import ObjectStore
from emulators.azure.kube.scheduler import selects, untolerated

Obj = dict[str, Any]
PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin"
PLUGIN_NAME = "nvidia-device-plugin"


def is_device_plugin(ds: Mapping[str, Any]) -> bool:
    """Whether the DaemonSet is an NVIDIA device plugin (by its documented name, label or image)."""
    name = str((ds.get("metadata") or {}).get("name") or "")
    template = (ds.get("spec") or {}).get("template") or {}
    label = str(((template.get("metadata") or {}).get("labels") or {}).get("name") or "")
    if name.startswith(PLUGIN_NAME) or label.startswith(PLUGIN_NAME):
        return True
    containers = (template.get("spec") or {}).get("containers") or []
    return any(str(c.get("image") or "").startswith(PLUGIN_IMAGE) for c in containers)


def pulls(pod_spec: Mapping[str, Any], missing: Sequence[str]) -> bool:
    """Whether every container image of ``pod_spec`` can be pulled (none matches ``missing``)."""
    images = [str(c.get("image") or "") for c in pod_spec.get("containers") or []]
    return not any(fnmatch.fnmatchcase(image, p) for image in images for p in missing)


def plugins(objects: ObjectStore, cluster: str, missing: Sequence[str] = ()) -> list[Obj]:
    """The pod specs of the cluster's device-plugin DaemonSets that can run (usually none or
    one): those with an image matching a ``missing`` pattern never start."""
    specs = [
        ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        for ds in objects.iter_type(cluster, res.DAEMONSETS.key)
        if is_device_plugin(ds)
    ]
    return [s for s in specs if pulls(s, missing)]


def runs_on(pod_spec: Mapping[str, Any], labels: Mapping[str, str], taints: Sequence[Mapping[str, Any]]) -> bool:
    return selects(pod_spec, labels) and untolerated(pod_spec, taints) is None


def advertised_gpus(node: Node, specs: Sequence[Mapping[str, Any]]) -> int:
    """GPUs the node advertises beyond its stored allocatable: its VM's, once a plugin of
    ``specs`` (from :func:`plugins`) runs on it; 0 when it has none or already shows them."""
    if not node.gpus or "nvidia.com/gpu" in (node.allocatable or node.capacity):
        return 0
    return node.gpus if any(runs_on(s, node.labels, node.taints) for s in specs) else 0
