"""Ray pod sizing against AKS's documented node reservations
(https://learn.microsoft.com/en-us/azure/aks/node-resource-reservations)."""

from __future__ import annotations

import pytest

from rayplane import catalog
from rayplane.providers.azure import manifests, reservations
from rayplane.providers.azure.reservations import Room


def test_cpu_reservations_follow_the_documented_table() -> None:
    documented = {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}
    assert {n: reservations.kube_reserved_cpu_m(n) for n in documented} == documented
    # Between documented counts, the next count up (more reserved, never less).
    assert reservations.kube_reserved_cpu_m(20) == 420
    assert reservations.kube_reserved_cpu_m(96) > 740


def test_memory_reservations_match_the_documented_examples() -> None:
    # 8 GB and at most 30 pods: 20 MB x 30 + 50 MB = 650 MB kube-reserved, plus 100 Mi.
    mib_per_mb = 1e6 / 2**20
    assert reservations.kube_reserved_memory_mib(8000 / 1.048576, 30) == pytest.approx(650 * mib_per_mb + 100)
    # 4 GB and at most 70 pods: 25% (1,000 MB) is less than 20 x 70 + 50 = 1,450 MB.
    assert reservations.kube_reserved_memory_mib(4000 / 1.048576, 70) == pytest.approx(1000 * mib_per_mb + 100)


@pytest.mark.parametrize("size", catalog.all_sizes(), ids=lambda s: s.name)
@pytest.mark.parametrize("monitoring", [False, True])
def test_every_catalog_size_leaves_room_for_aks_and_its_daemonsets(size: catalog.VmSize, monitoring: bool) -> None:
    node = reservations.allocatable(size.vcpus, size.memory_gib)
    room = reservations.pod_room(size.vcpus, size.memory_gib, monitoring=monitoring)
    daemonsets = reservations.SYSTEM_DAEMONSETS
    if monitoring:
        daemonsets = Room(daemonsets.cpu_m + reservations.MONITORING_DAEMONSET.cpu_m,
                          daemonsets.memory_mib + reservations.MONITORING_DAEMONSET.memory_mib)  # fmt: skip
    if node.cpu_m - daemonsets.cpu_m >= 100 and node.memory_mib - daemonsets.memory_mib >= 256:
        assert room.cpu_m + daemonsets.cpu_m <= node.cpu_m
        assert room.memory_mib + daemonsets.memory_mib <= node.memory_mib


def test_ray_pools_cap_pods_per_node_and_pods_request_the_room() -> None:
    key = manifests.PoolKey("Standard_D4s_v5", spot=False)
    props = manifests.pool_properties(key, gpus=0, max_count=8, orchestrator_version=None)
    assert props["maxPods"] == reservations.RAY_POOL_MAX_PODS
    room = reservations.pod_room(4, 16)
    assert room == Room(4000 - 140 - 400, int(16384 - (20 * 30 + 50) * 1e6 / 2**20 - 100) - 512)
