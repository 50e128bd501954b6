"""From catalog node shapes to the resources each local Ray node announces.

A local cloud has a *capacity* (``cloud_config["capacity"]``: cpus, memory_gib, gpus),
by default this machine's. A cluster is sized so that its largest possible footprint
(the head plus every group at ``max_nodes``) fits that capacity: CPUs and memory are
scaled down by one factor each (never up), with floors so every node stays usable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from rayplane.providers.base import ClusterTarget, NodeShape

GIB = 1024**3
MIB = 1024**2
# The custom resource that names a node's group: ``rayplane_group_<group name>`` on every
# worker of that group, ``rayplane_group_head`` on the head (``head`` is not a valid group
# name, see rayplane.clusters.validation). Tasks may pin themselves to a group with it.
GROUP_RESOURCE_PREFIX = "rayplane_group_"
HEAD_GROUP = "head"
HEAD_RESOURCE = GROUP_RESOURCE_PREFIX + HEAD_GROUP
MIN_NODE_MEMORY_BYTES = 512 * MIB
# Ray's object store is sized from the node's memory (Ray's default is 30% of the
# machine's RAM per node, far too much when many nodes share one machine).
OBJECT_STORE_FRACTION = 0.3
MIN_OBJECT_STORE_BYTES = 80 * MIB  # Ray refuses less than 75 MiB


def group_resource(group: str) -> str:
    return GROUP_RESOURCE_PREFIX + group


@dataclass(frozen=True)
class Capacity:
    cpus: int
    memory_gib: float
    gpus: int = 0


@dataclass(frozen=True)
class NodeResources:
    """What one ``ray start`` announces: --num-cpus, --memory, --num-gpus, ..."""

    num_cpus: int
    memory_bytes: int
    num_gpus: int
    object_store_bytes: int

    def as_ray_resources(self, group: str) -> dict[str, float]:
        """The node's resources under Ray's names, as demand is matched against them."""
        return {
            "CPU": float(self.num_cpus),
            "GPU": float(self.num_gpus),
            "memory": float(self.memory_bytes),
            "object_store_memory": float(self.object_store_bytes),
            group_resource(group): 1.0,
        }

    def to_dict(self) -> dict[str, int]:
        return {
            "num_cpus": self.num_cpus,
            "memory_bytes": self.memory_bytes,
            "num_gpus": self.num_gpus,
            "object_store_bytes": self.object_store_bytes,
        }


def machine_capacity() -> Capacity:
    cpus = os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return Capacity(cpus=cpus, memory_gib=round(memory, 1), gpus=0)


def capacity_from_config(cloud_config: dict[str, Any], default: Capacity | None = None) -> Capacity:
    """The cloud's capacity; each missing (or empty) field falls back to ``default``."""
    base = default or machine_capacity()
    raw = cloud_config.get("capacity") or {}
    cpus = raw.get("cpus")
    memory = raw.get("memory_gib")
    gpus = raw.get("gpus")
    return Capacity(
        cpus=int(cpus) if cpus else base.cpus,
        memory_gib=float(memory) if memory else base.memory_gib,
        gpus=int(gpus) if gpus is not None else base.gpus,
    )


def _round_half_up(value: float) -> int:
    return int(value + 0.5)


def scale_node(shape: NodeShape, f_cpu: float, f_mem: float, capacity: Capacity) -> NodeResources:
    memory = max(MIN_NODE_MEMORY_BYTES, int(shape.memory_gib * f_mem * GIB))
    return NodeResources(
        num_cpus=max(1, _round_half_up(shape.vcpus * f_cpu)),
        memory_bytes=memory,
        num_gpus=max(0, min(shape.gpus, capacity.gpus)),
        object_store_bytes=max(MIN_OBJECT_STORE_BYTES, int(memory * OBJECT_STORE_FRACTION)),
    )


def scale_factors(target: ClusterTarget, capacity: Capacity) -> tuple[float, float]:
    """(f_cpu, f_mem): capacity over the cluster's footprint at max size, capped at 1."""
    vcpus = target.head.vcpus + sum(g.shape.vcpus * g.max_nodes for g in target.groups)
    memory = target.head.memory_gib + sum(g.shape.memory_gib * g.max_nodes for g in target.groups)
    f_cpu = min(1.0, capacity.cpus / vcpus) if vcpus > 0 else 1.0
    f_mem = min(1.0, capacity.memory_gib / memory) if memory > 0 else 1.0
    return f_cpu, f_mem


def node_resources(target: ClusterTarget, capacity: Capacity | None = None) -> dict[str, NodeResources]:
    """Resources of one node per group, keyed by group name, the head under ``"head"``."""
    cap = capacity or capacity_from_config(target.cloud_config)
    f_cpu, f_mem = scale_factors(target, cap)
    out = {HEAD_GROUP: scale_node(target.head, f_cpu, f_mem, cap)}
    for group in target.groups:
        out[group.name] = scale_node(group.shape, f_cpu, f_mem, cap)
    return out
