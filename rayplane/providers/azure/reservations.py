"""How much of an AKS node a Ray pod may request: the VM's size minus what AKS keeps.

A Ray pod is sized to fill its node (one pod per node, so the cluster autoscaler adds exactly
one node per pending pod). If it asks for a millicore more than the node can give, it stays
Pending forever and the autoscaler never adds a node for it. Three things are kept from it:

1. **Kubelet reservations**, as AKS documents them
   (https://learn.microsoft.com/en-us/azure/aks/node-resource-reservations):
   CPU by core count (60m for 1 core, 100m for 2, 140m for 4, 180m for 8, 260m for 16, 420m
   for 32, 740m for 64); memory, from AKS 1.29, the smaller of 20 MB per pod the node may
   hold plus 50 MB, and 25% of the VM's memory, plus a 100 Mi hard-eviction threshold.
   (Before 1.29 it was a regressive share of memory and a 750 Mi threshold; AKS no longer
   supports those versions, and keeping that much would leave about a quarter of a small
   node's memory unused.)
2. **AKS's own DaemonSets** on every node (the CNI, kube-proxy, the cloud node manager, the
   disk and file CSI drivers, IP masquerading): ``SYSTEM_DAEMONSETS`` is what their requests
   add up to on an AKS cluster with the default network (about 350m / 470Mi), with room to
   spare; the Container Insights agent (ama-logs, 150m / 550Mi) adds ``MONITORING_DAEMONSET``
   where it is enabled. tests/emulators/test_daemonset_margins.py checks both against the
   emulator's own figures (``emulators/azure/aksnode.py``, with their sources) for every
   catalog size. The NVIDIA device plugin Rayplane installs on GPU nodes requests nothing.
3. Nothing else: the pools Rayplane makes carry only Ray pods (``maxPods`` is
   ``RAY_POOL_MAX_PODS``, which also keeps the per-pod memory reservation small).

Core counts between the documented ones take the next documented count up, and counts above
64 add 10m per core (AKS documents none; an assumption that errs towards reserving more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: ``maxPods`` of Rayplane's node pools: one Ray pod and AKS's DaemonSets, with room.
RAY_POOL_MAX_PODS = 30

_CPU_RESERVED_M = ((1, 60), (2, 100), (4, 140), (8, 180), (16, 260), (32, 420), (64, 740))
EVICTION_MIB = 100


@dataclass(frozen=True)
class Room:
    cpu_m: int
    memory_mib: int

    def minus(self, other: Room) -> Room:
        return Room(self.cpu_m - other.cpu_m, self.memory_mib - other.memory_mib)


#: Requests of AKS's per-node DaemonSets, rounded up.
SYSTEM_DAEMONSETS = Room(cpu_m=400, memory_mib=512)
#: The Container Insights agent's DaemonSet, when the cloud enables it.
MONITORING_DAEMONSET = Room(cpu_m=150, memory_mib=600)


def kube_reserved_cpu_m(vcpus: int) -> int:
    for cores, reserved in _CPU_RESERVED_M:
        if vcpus <= cores:
            return reserved
    return 740 + 10 * (vcpus - 64)


def kube_reserved_memory_mib(memory_mib: float, max_pods: int) -> float:
    """Kubelet memory reservation plus the hard-eviction threshold (AKS 1.29 and later)."""
    return min((20 * max_pods + 50) * 1e6 / 2**20, 0.25 * memory_mib) + EVICTION_MIB


def allocatable(vcpus: int, memory_gib: float, *, max_pods: int = RAY_POOL_MAX_PODS) -> Room:
    """What the node's kubelet offers pods (``status.allocatable``), at the least."""
    memory_mib = memory_gib * 1024
    return Room(
        cpu_m=vcpus * 1000 - kube_reserved_cpu_m(vcpus),
        memory_mib=math.floor(memory_mib - kube_reserved_memory_mib(memory_mib, max_pods)),
    )


def pod_room(vcpus: int, memory_gib: float, *, monitoring: bool = False) -> Room:
    """What one Ray pod may request on a node of this size (at least 100m and 256 MiB)."""
    room = allocatable(vcpus, memory_gib).minus(SYSTEM_DAEMONSETS)
    if monitoring:
        room = room.minus(MONITORING_DAEMONSET)
    return Room(max(room.cpu_m, 100), max(room.memory_mib, 256))
