"""Rules a cluster spec must meet against data: the catalog, the cloud, and quotas.

``validate_spec`` returns every problem at once (``FieldError`` with the same dotted
paths the API reports, e.g. ``body.worker_groups.1.vm_size``) so a user fixes a spec in
one round trip. It reads nothing itself: the caller passes the cloud and the tenant's
current usage, so it is a pure function and tested as one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rayplane import catalog
from rayplane.clouds.models import Cloud
from rayplane.common.errors import FieldError

MIN_NODE_MEMORY_GIB = 0.5


@dataclass(frozen=True)
class Usage:
    """What the tenant's other live clusters hold at their maximum size."""

    vcpus: int
    clusters: int


def _size_error(name: str) -> str:
    hint = catalog.suggest(name)
    return f"unknown VM size {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else "")


def max_vcpus(spec: dict[str, Any]) -> int:
    """vCPUs of the head plus every group at its max (unknown sizes count as 0)."""
    total = 0
    head = catalog.get(spec["head"]["vm_size"])
    total += head.vcpus if head else 0
    for group in spec.get("worker_groups", []):
        size = catalog.get(group["vm_size"])
        total += (size.vcpus if size else 0) * int(group["max_nodes"])
    return total


def validate_spec(
    spec: dict[str, Any],
    cloud: Cloud,
    *,
    usage: Usage,
    quota_vcpus: int,
    quota_clusters: int,
    new_cluster: bool,
) -> list[FieldError]:
    errors: list[FieldError] = []
    capacity: dict[str, Any] = cloud.config.get("capacity", {})
    cloud_gpus = int(capacity.get("gpus", 0))

    def check_size(path: str, name: str) -> None:
        size = catalog.get(name)
        if size is None:
            errors.append(FieldError(path, _size_error(name)))
        elif size.gpus and cloud_gpus == 0 and cloud.provider == "local":
            errors.append(FieldError(path, f"{size.name} has {size.gpus} GPU(s) but cloud {cloud.name!r} has none"))

    if cloud.ray_versions and spec["ray_version"] not in cloud.ray_versions:
        errors.append(FieldError("body.ray_version", f"cloud {cloud.name!r} runs Ray {', '.join(cloud.ray_versions)}"))
    elif not cloud.ray_versions:
        errors.append(FieldError("body.cloud", f"cloud {cloud.name!r} cannot run Ray here (install the 'local' extra)"))
    check_size("body.head.vm_size", spec["head"]["vm_size"])
    seen: set[str] = set()
    for i, group in enumerate(spec.get("worker_groups", [])):
        base = f"body.worker_groups.{i}"
        if group["name"] in seen:
            errors.append(FieldError(f"{base}.name", f"group name {group['name']!r} is used twice"))
        seen.add(group["name"])
        if group["name"] == "head":
            errors.append(FieldError(f"{base}.name", "'head' names the head node; pick another name"))
        check_size(f"{base}.vm_size", group["vm_size"])
        if group["min_nodes"] > group["max_nodes"]:
            errors.append(
                FieldError(
                    f"{base}.min_nodes", f"min_nodes {group['min_nodes']} is above max_nodes {group['max_nodes']}"
                )
            )
        if group.get("fallback_to_on_demand") and not group.get("spot"):
            errors.append(FieldError(f"{base}.fallback_to_on_demand", "only meaningful for spot groups"))
    if errors:
        return errors

    nodes_at_max = 1 + sum(int(g["max_nodes"]) for g in spec.get("worker_groups", []))
    max_nodes = int(capacity.get("max_nodes", nodes_at_max))
    if cloud.provider == "local" and nodes_at_max > max_nodes:
        errors.append(
            FieldError("body.worker_groups", f"{nodes_at_max} nodes at max size; cloud {cloud.name!r} fits {max_nodes}")
        )
    memory = float(capacity.get("memory_gib", 0) or 0)
    if cloud.provider == "local" and memory and nodes_at_max * MIN_NODE_MEMORY_GIB > memory:
        errors.append(
            FieldError("body.worker_groups", f"{nodes_at_max} nodes need more memory than cloud {cloud.name!r} has")
        )
    wanted = max_vcpus(spec)
    if usage.vcpus + wanted > quota_vcpus:
        errors.append(
            FieldError(
                "body.worker_groups",
                f"{wanted} vCPUs at max size; the tenant's quota leaves {max(quota_vcpus - usage.vcpus, 0)}",
            )
        )
    if new_cluster and usage.clusters + 1 > quota_clusters:
        errors.append(FieldError("body.name", f"the tenant's quota allows {quota_clusters} live clusters"))
    return errors
