"""Rayplane's sizing of Ray pods against the emulator's own model of an AKS node: for every
catalog size, with and without Container Insights, a pod Rayplane sizes to fill a node must
fit beside AKS's DaemonSets in what the node's kubelet offers. The two sides are written
apart (``rayplane/providers/azure/reservations.py`` and ``emulators/azure/aksnode.py``), so a
margin that shrank, or a DaemonSet the emulator learned about, shows up here."""

from __future__ import annotations

import pytest

from emulators.azure import aksnode
from emulators.azure.fleet import PoolSpec
from emulators.azure.kube.scheduler import parse_quantity
from rayplane import catalog
from rayplane.providers.azure import reservations


def test_rayplanes_margins_cover_the_modelled_daemonsets() -> None:
    cpu = sum(d[1] for d in aksnode.SYSTEM_DAEMONSETS)
    memory = sum(d[2] for d in aksnode.SYSTEM_DAEMONSETS)
    assert reservations.SYSTEM_DAEMONSETS.cpu_m >= cpu
    assert reservations.SYSTEM_DAEMONSETS.memory_mib >= memory
    _, monitoring_cpu, monitoring_memory = aksnode.MONITORING_DAEMONSET
    assert reservations.MONITORING_DAEMONSET.cpu_m >= monitoring_cpu
    assert reservations.MONITORING_DAEMONSET.memory_mib >= monitoring_memory


def _sizes() -> list[object]:
    """Every catalog size; those where Rayplane's own arithmetic leaves a Ray pod less than
    its floor (100m, 256 MiB) are expected to fail -- no Ray pod fits them after AKS's
    reservations, yet Rayplane's catalog offers them (Standard_B1s: 1 vCPU, 1 GiB). Left
    visible here rather than hidden."""
    small = pytest.mark.xfail(strict=True, reason="no Ray pod fits after AKS's reservations")
    return [pytest.param(s, id=s.name, marks=small if _too_small(s) else ()) for s in catalog.all_sizes()]


def _too_small(size: catalog.VmSize) -> bool:
    room = reservations.allocatable(size.vcpus, size.memory_gib).minus(reservations.SYSTEM_DAEMONSETS)
    return room.cpu_m < 100 or room.memory_mib < 256


@pytest.mark.parametrize("monitoring", [False, True], ids=["plain", "container-insights"])
@pytest.mark.parametrize("size", _sizes())
def test_a_ray_pod_fits_beside_aks_daemonsets(size: catalog.VmSize, monitoring: bool) -> None:
    spec = PoolSpec(
        "rp",
        size.name,
        size.vcpus,
        size.memory_gib,
        gpus=size.gpus,
        max_pods=reservations.RAY_POOL_MAX_PODS,
        monitoring=monitoring,
    )
    allocatable = aksnode.allocatable(spec)
    cpu_m, memory_mib, pods = aksnode.daemonset_requests(spec)
    room = reservations.pod_room(size.vcpus, size.memory_gib, monitoring=monitoring)
    assert room.cpu_m + cpu_m <= parse_quantity(allocatable["cpu"]) * 1000, "CPU"
    assert (room.memory_mib + memory_mib) * 2**20 <= parse_quantity(allocatable["memory"]), "memory"
    assert pods + 1 <= int(allocatable["pods"])
