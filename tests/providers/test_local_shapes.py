"""Node shape mapping of the local provider: catalog shapes scaled to the cloud's capacity."""

from __future__ import annotations

from rayplane.providers.base import ClusterTarget, GroupTarget, NodeShape
from rayplane.providers.local.shapes import (
    GIB,
    MIB,
    MIN_NODE_MEMORY_BYTES,
    Capacity,
    capacity_from_config,
    group_resource,
    node_resources,
)

D2 = NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=8.0)
D8 = NodeShape("Standard_D8s_v5", vcpus=8, memory_gib=32.0)
NC = NodeShape("Standard_NC4as_T4_v3", vcpus=4, memory_gib=28.0, gpus=1)


def target(
    head: NodeShape, *groups: tuple[str, NodeShape, int], capacity: dict[str, float] | None = None
) -> ClusterTarget:
    return ClusterTarget(
        cluster_id="c1",
        name="t",
        ray_version="2.60.0",
        image=None,
        head=head,
        groups=tuple(GroupTarget(name, shape, 0, 0, max_nodes) for name, shape, max_nodes in groups),
        cloud_config={} if capacity is None else {"capacity": capacity},
    )


def test_two_cpu_machine_gives_one_cpu_per_node() -> None:
    res = node_resources(target(D2, ("cpu", D2, 2), capacity={"cpus": 2, "memory_gib": 8, "gpus": 0}))
    assert res["head"].num_cpus == 1
    assert res["cpu"].num_cpus == 1
    # 8 GiB over 3 nodes of 8 GiB: a third each.
    assert res["cpu"].memory_bytes == int(8 * GIB / 3)
    assert res["head"].num_gpus == 0


def test_no_scaling_up_when_capacity_is_large() -> None:
    res = node_resources(target(D2, ("big", D8, 2), capacity={"cpus": 64, "memory_gib": 512, "gpus": 0}))
    assert (res["head"].num_cpus, res["big"].num_cpus) == (2, 8)
    assert res["big"].memory_bytes == 32 * GIB


def test_scaling_rounds_half_up_and_keeps_at_least_one_cpu() -> None:
    # 2 + 8*2 = 18 vCPUs at max on 3 CPUs: f = 1/6; 2/6 -> 1 (floor of one), 8/6 = 1.33 -> 1.
    res = node_resources(target(D2, ("big", D8, 2), capacity={"cpus": 3, "memory_gib": 64}))
    assert (res["head"].num_cpus, res["big"].num_cpus) == (1, 1)
    # 2 + 8 = 10 vCPUs on 5 CPUs: f = 0.5; 2 -> 1, 8 -> 4.
    res = node_resources(target(D2, ("big", D8, 1), capacity={"cpus": 5, "memory_gib": 64}))
    assert (res["head"].num_cpus, res["big"].num_cpus) == (1, 4)
    # 1.5 rounds up, not to even: 3 vCPU-ish via f = 0.75 on 2 vCPUs.
    res = node_resources(target(D2, ("cpu", D2, 1), capacity={"cpus": 3, "memory_gib": 64}))
    assert res["cpu"].num_cpus == 2


def test_memory_has_a_floor_of_512_mib() -> None:
    res = node_resources(target(D2, ("cpu", D2, 10), capacity={"cpus": 2, "memory_gib": 1}))
    assert res["cpu"].memory_bytes == MIN_NODE_MEMORY_BYTES == 512 * MIB
    assert res["cpu"].object_store_bytes >= 75 * MIB


def test_gpus_are_capped_by_the_capacity() -> None:
    none = node_resources(target(D2, ("gpu", NC, 1), capacity={"cpus": 8, "memory_gib": 64, "gpus": 0}))
    assert none["gpu"].num_gpus == 0
    one = node_resources(target(D2, ("gpu", NC, 1), capacity={"cpus": 8, "memory_gib": 64, "gpus": 4}))
    assert one["gpu"].num_gpus == 1
    assert one["head"].num_gpus == 0


def test_capacity_defaults_to_the_machine_per_field() -> None:
    machine = Capacity(cpus=16, memory_gib=64.0, gpus=2)
    assert capacity_from_config({}, machine) == machine
    assert capacity_from_config({"capacity": {"cpus": 4}}, machine) == Capacity(4, 64.0, 2)
    assert capacity_from_config({"capacity": {"memory_gib": 8.5, "gpus": 0}}, machine) == Capacity(16, 8.5, 0)


def test_missing_capacity_uses_this_machine() -> None:
    res = node_resources(target(D2, ("cpu", D2, 1)))
    assert res["cpu"].num_cpus >= 1


def test_ray_resources_carry_the_group_resource() -> None:
    res = node_resources(target(D2, ("cpu", D2, 1), capacity={"cpus": 8, "memory_gib": 64}))
    ray = res["cpu"].as_ray_resources("cpu")
    assert ray[group_resource("cpu")] == 1.0 == ray["rayplane_group_cpu"]
    assert ray["CPU"] == 2.0
