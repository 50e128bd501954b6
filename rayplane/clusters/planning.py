"""Pure decisions of the reconciler: node shapes, group targets, autoscaling, health.

No I/O here: everything takes plain data and returns plain data, so every rule is unit
tested without a database or a cloud.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from rayplane.clusters.spec import ClusterSpec
from rayplane.providers.base import ClusterTarget, GroupTarget, Observation


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def group_targets(spec: ClusterSpec, previous: Mapping[str, int]) -> dict[str, int]:
    """Each group's node count: the previous target kept within the spec's [min, max]."""
    return {g.name: clamp(int(previous.get(g.name, g.min_nodes)), g.min_nodes, g.max_nodes) for g in spec.worker_groups}


def autoscale(spec: ClusterSpec, targets: dict[str, int], observation: Observation) -> tuple[dict[str, int], list[str]]:
    """Grow groups that have pending demand, shrink groups with idle nodes; with reasons.

    Growth is bounded by max and by the demand Ray reports; shrinking only removes idle
    nodes and never goes below min. A group never grows and shrinks in the same pass.
    """
    new = dict(targets)
    reasons: list[str] = []
    for group in spec.worker_groups:
        name, low, high = group.name, group.min_nodes, group.max_nodes
        current = new.get(name, low)
        wanted = observation.pending_demand.get(name, 0)
        idle = observation.idle_nodes.get(name, 0)
        if wanted > 0 and current < high:
            new[name] = clamp(current + wanted, low, high)
            reasons.append(f"group {name}: {current} -> {new[name]} nodes, for pending demand")
        elif idle > 0 and current > low and wanted == 0:
            new[name] = clamp(current - idle, low, high)
            if new[name] != current:
                reasons.append(f"group {name}: {current} -> {new[name]} nodes, idle ones removed")
    return new, reasons


def cluster_target(
    cluster_id: str,
    name: str,
    spec: ClusterSpec,
    targets: Mapping[str, int],
    cloud_config: dict[str, Any],
    pool_demand: Mapping[str, int] | None = None,
    ray_token: str = "",
    tenant_id: str = "",
    log_retention_days: int | None = None,
) -> ClusterTarget:
    """What a provider is asked to make: the spec's shapes with each group's count now."""
    groups = tuple(
        GroupTarget(
            name=g.name,
            shape=g.shape,
            count=targets.get(g.name, g.min_nodes),
            min_nodes=g.min_nodes,
            max_nodes=g.max_nodes,
            fallback_to_on_demand=g.fallback_to_on_demand,
        )
        for g in spec.worker_groups
    )
    return ClusterTarget(
        cluster_id=cluster_id,
        name=name,
        ray_version=spec.ray_version,
        image=spec.image,
        head=spec.head.shape,
        groups=groups,
        cloud_config=cloud_config,
        pool_demand=dict(pool_demand or {}),
        ray_token=ray_token,
        gcs_fault_tolerance=spec.head.gcs_fault_tolerance,
        tenant_id=tenant_id,
        log_retention_days=log_retention_days,
    )


def shortfalls(targets: dict[str, int], observation: Observation) -> list[str]:
    """Human reasons why the observed cluster is below its targets (empty when healthy)."""
    if not observation.head_alive:
        return ["the head node is down"]
    return [
        f"group {name}: {observation.nodes.get(name, 0)} of {want} nodes running"
        for name, want in sorted(targets.items())
        if observation.nodes.get(name, 0) < want
    ]


def backoff(attempt: int, *, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [base, min(cap, base * 2**attempt)]."""
    r = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    high = min(cap, base * (2 ** max(attempt, 0)))
    return r.uniform(base, max(base, high))


def observed_summary(targets: dict[str, int], observation: Observation, observed_at: str) -> dict[str, Any]:
    return {
        "head": {"alive": observation.head_alive},
        "groups": {
            name: {"ready": observation.nodes.get(name, 0), "wanted": want} for name, want in sorted(targets.items())
        },
        "targets": targets,
        "observed_at": observed_at,
        "messages": list(observation.messages),
        # The provider's causes seen by this observation, so the next pass records only new ones.
        "causes": [event.reason for event in observation.events],
    }
