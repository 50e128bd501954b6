"""What an AKS node of a pool looks like to Kubernetes: its reserved labels and what its
kubelet keeps for itself. The emulator's own reading of AKS's documentation, written apart
from Rayplane's sizing (``rayplane/providers/azure/reservations.py``) so that each checks the
other.

Labels (https://learn.microsoft.com/en-us/azure/aks/use-labels, "Reserved system labels"):
``kubernetes.azure.com/agentpool`` and ``agentpool``, ``kubernetes.io/arch`` / ``os`` /
``hostname``, ``node.kubernetes.io/instance-type``, ``topology.kubernetes.io/region`` and
``zone`` (a non-zonal node's zone is its fault domain, ``0`` here), the ``beta.`` and
``failure-domain.beta.`` forms older selectors use, ``kubernetes.azure.com/cluster`` (the node
resource group), ``mode``, ``role``, ``os-sku``, ``node-image-version``, ``storageprofile`` and,
on GPU sizes, ``accelerator=nvidia``.

Allocatable (https://learn.microsoft.com/en-us/azure/aks/node-resource-reservations, AKS 1.29
and later): CPU minus the kube-reserved millicores of the documented table (60m for 1 core up
to 740m for 64; between two documented counts the larger one is kept, and above 64 cores the
64-core figure, as nothing larger is documented); memory minus the smaller of 20 MB per pod the
node may hold plus 50 MB, and 25% of the VM's memory, and minus the 100 Mi hard-eviction
threshold; pods the pool's ``maxPods``.

GPUs (https://learn.microsoft.com/azure/aks/use-nvidia-gpu and
https://learn.microsoft.com/azure/aks/aks-managed-gpu-nodes): AKS installs the NVIDIA driver
on a GPU node, but the kubelet advertises ``nvidia.com/gpu`` only once a device plugin runs on
it -- a DaemonSet the user installs, or the one AKS installs itself when the pool's
``gpuProfile.nvidia.managementMode`` is ``Managed`` (preview). So :func:`capacity` and
:func:`allocatable` carry the GPUs only for such pools; for the others the Kubernetes surface
adds them while a device-plugin DaemonSet targets the node
(:mod:`emulators.azure.kube.deviceplugin`).

AKS's own DaemonSets (:data:`SYSTEM_DAEMONSETS`, and :data:`MONITORING_DAEMONSET` when the
cluster's ``omsagent`` addon -- Container Insights -- is enabled) run a pod on every Linux
node, and their requests come out of what the node's allocatable leaves for other pods.
Each figure's source is beside it; where no published manifest gives one, the figure is what
``kubectl describe node`` on AKS shows in the cited issue threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulators.azure.fleet import PoolSpec

_CPU_RESERVED_M = ((1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740))
EVICTION_MIB = 100
SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"

#: (pod name prefix, CPU millicores, memory MiB) of AKS's per-node DaemonSets with the default
#: network (Azure CNI with its CNS) and storage drivers, summed over each pod's containers.
SYSTEM_DAEMONSETS: tuple[tuple[str, int, int], ...] = (
    # kube-proxy: 100m CPU, no memory request ("kubectl describe node", Azure/AKS#1558).
    ("kube-proxy", 100, 0),
    # azure-cns: about 250 Mi with azure-npm's 300 Mi making "550 MB for azure-cns and
    # azure-npm" (Azure/AKS#3525); 40m CPU as AKS nodes show it (not in a public manifest).
    ("azure-cns", 40, 250),
    # cloud-node-manager: 50m / 50Mi ("kubectl describe node", Azure/AKS#5251).
    ("cloud-node-manager", 50, 50),
    # csi-azuredisk-node and csi-azurefile-node: three containers (liveness-probe,
    # node-driver-registrar, the driver) of 10m / 20Mi each (azuredisk: Azure/AKS#5251;
    # the CSI drivers' charts give each sidecar the same).
    ("csi-azuredisk-node", 30, 60),
    ("csi-azurefile-node", 30, 60),
    # azure-ip-masq-agent: 100m / 50Mi ("kubectl describe node", Azure/AKS#1558).
    ("azure-ip-masq-agent", 100, 50),
)
#: Container Insights' ama-logs DaemonSet: the agent (75m / 325Mi) and its prometheus sidecar
#: (75m / 225Mi), from microsoft/Docker-Provider charts/azuremonitor-containers/values.yaml
#: (``resources.daemonsetlinux`` and ``daemonsetlinuxsidecar``).
MONITORING_DAEMONSET: tuple[str, int, int] = ("ama-logs", 150, 550)
POOL_LABEL = "kubernetes.azure.com/agentpool"


def reserved_cpu_m(vcpus: int) -> int:
    for cores, reserved in _CPU_RESERVED_M:
        if vcpus <= cores:
            return reserved
    return _CPU_RESERVED_M[-1][1]


def reserved_memory_mib(memory_mib: float, max_pods: int) -> float:
    """kube-reserved memory plus the hard-eviction threshold."""
    kube_reserved = min((20 * max_pods + 50) * 1_000_000 / 2**20, 0.25 * memory_mib)
    return kube_reserved + EVICTION_MIB


def daemonsets(spec: PoolSpec) -> list[tuple[str, int, int]]:
    """AKS's DaemonSet pods on a node of this pool: (name prefix, CPU m, memory MiB)."""
    out = list(SYSTEM_DAEMONSETS)
    if spec.monitoring:
        out.append(MONITORING_DAEMONSET)
    return out


def daemonset_requests(spec: PoolSpec) -> tuple[int, int, int]:
    """(CPU m, memory MiB, pods) AKS's DaemonSets take on every node of this pool."""
    found = daemonsets(spec)
    return sum(d[1] for d in found), sum(d[2] for d in found), len(found)


def capacity(spec: PoolSpec) -> dict[str, str]:
    out = {"cpu": str(spec.vcpus), "memory": f"{int(spec.memory_gib * 1024 * 1024)}Ki", "pods": str(spec.max_pods)}
    if spec.gpus and spec.gpu_managed:
        out["nvidia.com/gpu"] = str(spec.gpus)
    return out


def allocatable(spec: PoolSpec) -> dict[str, str]:
    memory_mib = spec.memory_gib * 1024
    out = {
        "cpu": f"{spec.vcpus * 1000 - reserved_cpu_m(spec.vcpus)}m",
        "memory": f"{int((memory_mib - reserved_memory_mib(memory_mib, spec.max_pods)) * 1024)}Ki",
        "pods": str(spec.max_pods),
    }
    if spec.gpus and spec.gpu_managed:
        out["nvidia.com/gpu"] = str(spec.gpus)
    return out


def labels(spec: PoolSpec, node_name: str) -> dict[str, str]:
    """The node's labels: the pool's ``nodeLabels`` under AKS's reserved ones."""
    region = spec.region or "eastus"
    out = {
        **spec.labels,
        POOL_LABEL: spec.name,
        "agentpool": spec.name,
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/hostname": node_name,
        "node.kubernetes.io/instance-type": spec.vm_size,
        "beta.kubernetes.io/instance-type": spec.vm_size,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": "0",
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": "0",
        "kubernetes.azure.com/cluster": spec.node_resource_group or f"MC_emulated_{spec.name}_{region}",
        "kubernetes.azure.com/mode": spec.mode.lower(),
        "kubernetes.azure.com/role": "agent",
        "kubernetes.azure.com/os-sku": spec.os_sku,
        "kubernetes.azure.com/storageprofile": "managed",
    }
    if spec.node_image_version:
        out["kubernetes.azure.com/node-image-version"] = spec.node_image_version
    if spec.gpus:
        out["accelerator"] = "nvidia"
        out["kubernetes.azure.com/accelerator"] = "nvidia"
    if spec.spot:
        out[SPOT_LABEL] = "spot"
    return out
