"""Rules a cluster spec must meet against data: the catalog, the cloud, and quotas.

``validate_spec`` returns every problem at once (``FieldError`` with the same dotted paths
the API reports, e.g. ``body.worker_groups.1.vm_size``) so a user fixes a spec in one round
trip; the service adds the tenant's plan violations to the same list before answering. It
reads nothing itself: the caller passes the cloud and the tenant's current usage, so it is a
pure function and tested as one. Sizes were resolved from the catalog when the spec was
built; an unresolved one is reported here, with the closest names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rayplane import catalog
from rayplane.clouds.models import Cloud
from rayplane.clusters.spec import HEAD_GROUP, ClusterSpec
from rayplane.common.errors import FieldError

MIN_NODE_MEMORY_GIB = 0.5


@dataclass(frozen=True)
class Usage:
    """What the tenant's other live clusters hold at their maximum size."""

    vcpus: int
    clusters: int

    @classmethod
    def of(cls, specs: list[ClusterSpec]) -> Usage:
        return cls(vcpus=sum(s.max_vcpus for s in specs), clusters=len(specs))


@dataclass(frozen=True)
class Quotas:
    vcpus: int
    clusters: int


def size_error(name: str) -> str:
    """The message for a VM size the catalog lacks, with the closest names."""
    hint = catalog.suggest(name)
    return f"unknown VM size {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else "")


def shape_errors(spec: ClusterSpec, base: str = "body", *, no_gpus_on: str | None = None) -> list[FieldError]:
    """What is wrong with the spec on its own (unknown sizes, group names, node ranges), in
    the order a user reads the spec. With ``no_gpus_on`` (the name of a cloud without GPUs), a GPU size is
    refused as that cloud having none."""
    errors: list[FieldError] = []

    def check_size(path: str, name: str, size: catalog.VmSize | None) -> None:
        if size is None:
            errors.append(FieldError(path, size_error(name)))
        elif size.gpus and no_gpus_on is not None:
            errors.append(FieldError(path, f"{size.name} has {size.gpus} GPU(s) but cloud {no_gpus_on!r} has none"))

    check_size(f"{base}.head.vm_size", spec.head.vm_size, spec.head.size)
    seen: set[str] = set()
    for i, group in enumerate(spec.worker_groups):
        at = f"{base}.worker_groups.{i}"
        if group.name in seen:
            errors.append(FieldError(f"{at}.name", f"group name {group.name!r} is used twice"))
        seen.add(group.name)
        if group.name == HEAD_GROUP:
            errors.append(FieldError(f"{at}.name", "'head' names the head node; pick another name"))
        check_size(f"{at}.vm_size", group.vm_size, group.size)
        if group.min_nodes > group.max_nodes:
            errors.append(
                FieldError(f"{at}.min_nodes", f"min_nodes {group.min_nodes} is above max_nodes {group.max_nodes}")
            )
        if group.fallback_to_on_demand and not group.spot:
            errors.append(FieldError(f"{at}.fallback_to_on_demand", "only meaningful for spot groups"))
    return errors


GCS_FT_FIELD = "body.head.gcs_fault_tolerance"


def gcs_errors(cloud: Cloud, *, local_gcs_redis: bool) -> list[FieldError]:
    """Why ``cloud`` cannot run a head with GCS fault tolerance (a Redis to keep it in)."""
    if cloud.provider == "local" and not local_gcs_redis:
        return [
            FieldError(
                GCS_FT_FIELD,
                "local heads keep their GCS in a TCP Redis and this control plane has none (Ray cannot use "
                "a unix socket): the operator sets RAYPLANE_LOCAL_GCS_REDIS_URL to a redis:// address "
                "(`rayplane dev` starts one of its own)",
            )
        ]
    if cloud.provider == "azure" and not cloud.config.get("gcs_redis"):
        return [
            FieldError(
                GCS_FT_FIELD,
                f"cloud {cloud.name!r} names no Redis for the head's GCS: its config needs gcs_redis "
                "(address, and the Kubernetes Secret holding the password); see docs/operations.md",
            )
        ]
    return []


def validate_spec(
    spec: ClusterSpec,
    cloud: Cloud,
    *,
    usage: Usage,
    quotas: Quotas,
    new_cluster: bool,
    capacity: dict[str, Any] | None = None,
    local_gcs_redis: bool = True,
) -> list[FieldError]:
    """Every problem with ``spec`` on ``cloud``; ``capacity`` overrides the cloud's stored
    one (the service passes it narrowed to the operator's limits). ``local_gcs_redis``: the
    control plane has a TCP Redis for local heads' GCS (``Settings.gcs_redis_url``)."""
    errors: list[FieldError] = []
    if spec.head.gcs_fault_tolerance:
        errors += gcs_errors(cloud, local_gcs_redis=local_gcs_redis)
    if capacity is None:
        capacity = dict(cloud.config.get("capacity", {}))
    local = cloud.provider == "local"
    if cloud.ray_versions and spec.ray_version not in cloud.ray_versions:
        errors.append(FieldError("body.ray_version", f"cloud {cloud.name!r} runs Ray {', '.join(cloud.ray_versions)}"))
    elif not cloud.ray_versions:
        errors.append(FieldError("body.cloud", f"cloud {cloud.name!r} cannot run Ray here (install the 'local' extra)"))
    no_gpus = local and int(capacity.get("gpus", 0)) == 0
    errors += shape_errors(spec, no_gpus_on=cloud.name if no_gpus else None)
    if errors:
        return errors

    nodes_at_max = spec.nodes_at_max
    max_nodes = int(capacity.get("max_nodes", nodes_at_max))
    if local and nodes_at_max > max_nodes:
        errors.append(
            FieldError("body.worker_groups", f"{nodes_at_max} nodes at max size; cloud {cloud.name!r} fits {max_nodes}")
        )
    memory = float(capacity.get("memory_gib", 0) or 0)
    if local and memory and nodes_at_max * MIN_NODE_MEMORY_GIB > memory:
        errors.append(
            FieldError("body.worker_groups", f"{nodes_at_max} nodes need more memory than cloud {cloud.name!r} has")
        )
    wanted = spec.max_vcpus
    if usage.vcpus + wanted > quotas.vcpus:
        errors.append(
            FieldError(
                "body.worker_groups",
                f"{wanted} vCPUs at max size; the tenant's quota leaves {max(quotas.vcpus - usage.vcpus, 0)}",
            )
        )
    if new_cluster and usage.clusters + 1 > quotas.clusters:
        errors.append(FieldError("body.name", f"the tenant's quota allows {quotas.clusters} live clusters"))
    return errors
