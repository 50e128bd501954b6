"""Plans: the data file's validation, and the quota rules as pure functions."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rayplane.clusters.spec import ClusterSpec
from rayplane.marketplace import plans

GOOD: list[dict[str, Any]] = [
    {
        "id": "tiny",
        "display_name": "Tiny",
        "quotas": {"max_clusters": 1, "max_nodes": 3, "max_gpus": 0, "vm_families": ["Dsv5"], "spot_allowed": False},
        "dimensions": [
            {"id": "vcpu_hours", "unit": "vCPU hour", "description": "d", "price_note": "p", "usd_per_unit": 0.01}
        ],
    }
]


def spec(*groups: dict[str, Any], head: str = "Standard_D2s_v5") -> ClusterSpec:
    return ClusterSpec.from_json({"head": {"vm_size": head}, "worker_groups": list(groups)})


def group(vm_size: str = "Standard_D2s_v5", max_nodes: int = 1, spot: bool = False, name: str = "g") -> dict[str, Any]:
    return {"name": name, "vm_size": vm_size, "min_nodes": 0, "max_nodes": max_nodes, "spot": spot}


def test_the_shipped_plans_are_the_offers_plans() -> None:
    assert [p.id for p in plans.all_plans()] == ["starter", "team", "enterprise"]
    for plan in plans.all_plans():
        assert plan.dimension_ids == {"vcpu_hours", "gpu_hours"}
        assert all(d.unit and d.price_note for d in plan.dimensions)
        fee = {d.id: d.usd_per_unit for d in plan.dimensions}
        assert 0 < fee["vcpu_hours"] < fee["gpu_hours"], plan.id
    starter, team, enterprise = (plans.get(i) for i in ("starter", "team", "enterprise"))
    assert starter is not None
    assert team is not None
    assert enterprise is not None
    assert starter.quotas.max_gpus == 0
    assert not starter.quotas.spot_allowed
    assert starter.quotas.max_clusters < team.quotas.max_clusters < enterprise.quotas.max_clusters
    assert starter.quotas.vm_families < team.quotas.vm_families <= enterprise.quotas.vm_families
    assert plans.get("nope") is None


def test_parse_accepts_a_good_document() -> None:
    parsed = plans.parse_plans(copy.deepcopy(GOOD))
    assert parsed["tiny"].quotas.vm_families == frozenset({"Dsv5"})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.clear(), "non-empty list"),
        (lambda d: d[0].pop("quotas"), "missing quotas"),
        (lambda d: d[0].update(extra=1), "unknown key(s) extra"),
        (lambda d: d[0]["quotas"].update(max_nodes=-1), "quotas.max_nodes must be an integer >= 0"),
        (lambda d: d[0]["quotas"].update(max_gpus=True), "quotas.max_gpus"),
        (lambda d: d[0]["quotas"].update(vm_families=["Dsv9"]), "families the catalog lacks: Dsv9"),
        (lambda d: d[0]["quotas"].update(spot_allowed="yes"), "spot_allowed"),
        (lambda d: d[0].update(dimensions=[]), "dimensions must be a non-empty list"),
        (lambda d: d[0]["dimensions"].append(dict(d[0]["dimensions"][0])), "listed twice"),
        (lambda d: d[0]["dimensions"][0].update(usd_per_unit=-0.5), "usd_per_unit must be a number"),
        (lambda d: d[0]["dimensions"][0].update(usd_per_unit="0.01"), "usd_per_unit must be a number"),
        (lambda d: d[0]["dimensions"][0].pop("usd_per_unit"), "missing usd_per_unit"),
        (lambda d: d.append(copy.deepcopy(d[0])), "duplicate plan id"),
        (lambda d: d[0].update(id=" tiny"), "surrounding spaces"),
    ],
)
def test_parse_names_the_plan_and_the_problem(mutate: Any, message: str) -> None:
    document = copy.deepcopy(GOOD)
    mutate(document)
    with pytest.raises(plans.PlanError) as caught:
        plans.parse_plans(document, origin="plans.yaml")
    assert message in str(caught.value)
    if document:
        assert "plans.yaml" in str(caught.value)


def test_the_file_is_what_the_module_loaded() -> None:
    from importlib import resources

    text = resources.files("rayplane.marketplace").joinpath("plans.yaml").read_text()
    assert set(plans.parse_plans(yaml.safe_load(text))) == {p.id for p in plans.all_plans()}


def test_footprint_counts_nodes_and_gpus_at_max_size() -> None:
    s = spec(group(max_nodes=3), group("Standard_NC4as_T4_v3", max_nodes=2, name="gpu"))
    assert plans.footprint(s) == plans.Footprint(nodes=6, gpus=2)


def test_violations_name_fields_and_plan() -> None:
    starter = plans.get("starter")
    assert starter is not None
    bad = spec(group("Standard_E4s_v5"), group(spot=True, name="s"), head="Standard_NC4as_T4_v3")
    errors = {e.field: e.message for e in plans.violations(starter, bad, [])}
    assert "Esv5" in errors["body.worker_groups.0.vm_size"]
    assert "'starter'" in errors["body.worker_groups.0.vm_size"]
    assert "NCasT4_v3" in errors["body.head.vm_size"]
    assert "spot" in errors["body.worker_groups.1.spot"]
    assert "GPU" in errors["body.worker_groups"]


def test_violations_count_the_other_running_clusters() -> None:
    starter = plans.get("starter")
    assert starter is not None
    small = spec(group(max_nodes=1))  # 2 nodes
    assert plans.violations(starter, small, [small]) == []
    third = plans.violations(starter, small, [small, small])
    assert [e.field for e in third] == ["body.name"]
    assert "allows 2 running cluster(s); 2 already run" in third[0].message
    big = spec(group(max_nodes=6))  # 7 nodes; with one other (2) that is 9 > 8
    over = plans.violations(starter, big, [small], base="spec", name_field="spec")
    assert [e.field for e in over] == ["spec.worker_groups"]
    assert "2 are taken" in over[0].message


def test_fits_explains_a_downgrade_that_does_not() -> None:
    starter, team = plans.get("starter"), plans.get("team")
    assert starter is not None
    assert team is not None
    running = [spec(group(max_nodes=1))] * 3
    assert plans.fits(team, running) == []
    reasons = plans.fits(starter, running)
    assert reasons == ["3 clusters run; plan 'starter' allows 2"]
    assert plans.fits(starter, [spec(group(spot=True))])[0].startswith("running cluster #1:")
