"""Pure reconciler decisions: targets, autoscaling, health, backoff."""

from __future__ import annotations

import random

from rayplane.clusters import planning
from rayplane.clusters.spec import ClusterSpec
from rayplane.providers.base import Observation

SPEC = ClusterSpec.from_json(
    {
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [
            {"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 1, "max_nodes": 3},
            {"name": "big", "vm_size": "Standard_D4s_v5", "min_nodes": 0, "max_nodes": 2},
        ],
    }
)


def obs(**kw: object) -> Observation:
    base: dict[str, object] = {"head_alive": True, "dashboard_url": "http://x", "nodes": {}}
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def test_targets_start_at_min_and_stay_within_bounds() -> None:
    assert planning.group_targets(SPEC, {}) == {"cpu": 1, "big": 0}
    assert planning.group_targets(SPEC, {"cpu": 9, "big": -1}) == {"cpu": 3, "big": 0}


def test_scale_up_for_demand_bounded_by_max() -> None:
    new, reasons = planning.autoscale(SPEC, {"cpu": 1, "big": 0}, obs(pending_demand={"cpu": 5}))
    assert new == {"cpu": 3, "big": 0}
    assert reasons == ["group cpu: 1 -> 3 nodes, for pending demand"]


def test_scale_down_idle_nodes_but_not_below_min() -> None:
    new, reasons = planning.autoscale(SPEC, {"cpu": 3, "big": 2}, obs(idle_nodes={"cpu": 5, "big": 1}))
    assert new == {"cpu": 1, "big": 1}
    assert len(reasons) == 2


def test_no_scale_down_while_demand_waits() -> None:
    new, _ = planning.autoscale(SPEC, {"cpu": 3, "big": 0}, obs(idle_nodes={"cpu": 1}, pending_demand={"cpu": 1}))
    assert new["cpu"] == 3


def test_shortfalls_name_what_is_missing() -> None:
    assert planning.shortfalls({"cpu": 1}, obs(nodes={"cpu": 1})) == []
    assert planning.shortfalls({"cpu": 2}, obs(nodes={"cpu": 1})) == ["group cpu: 1 of 2 nodes running"]
    assert planning.shortfalls({"cpu": 1}, obs(head_alive=False)) == ["the head node is down"]


def test_node_shapes_come_from_the_catalog() -> None:
    target = planning.cluster_target("cls_x", "x", SPEC, {"cpu": 2, "big": 0}, {})
    assert target.head.vcpus == 2
    assert [(g.name, g.count, g.shape.vcpus) for g in target.groups] == [("cpu", 2, 2), ("big", 0, 4)]


def test_backoff_grows_and_is_capped_with_jitter() -> None:
    rng = random.Random(7)
    samples = [planning.backoff(n, base=1.0, cap=60.0, rng=rng) for n in range(12)]
    assert all(1.0 <= s <= 60.0 for s in samples)
    assert max(samples[8:]) > max(samples[:3])
    highs = {planning.backoff(3, rng=random.Random(i)) for i in range(20)}
    assert len(highs) > 1  # jittered
