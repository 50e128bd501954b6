"""Objects the Azure provider generates: pool names and shapes, pod requests, and RayClusters
that validate against KubeRay v1.7.0's CRD schema (made strict: unknown fields are errors)."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import jsonschema
import pytest

from rayplane.clusters import planning
from rayplane.clusters.spec import ClusterSpec
from rayplane.providers.azure import manifests
from rayplane.providers.azure.manifests import PoolKey

SPEC: dict[str, Any] = {
    "ray_version": "2.52.0",
    "head": {"vm_size": "Standard_D4s_v5"},
    "worker_groups": [
        {"name": "cpu", "vm_size": "Standard_D8s_v5", "min_nodes": 1, "max_nodes": 4, "spot": False},
        {"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "min_nodes": 0, "max_nodes": 2, "spot": True},
    ],
}


def _strict(schema: Any) -> Any:
    """The CRD schema with ``additionalProperties: false`` wherever Kubernetes would prune, so a
    misspelled field in a generated object fails the test instead of vanishing on the server."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(manifests.crd_schema("RayCluster")))


def _target(spec: dict[str, Any] = SPEC, name: str = "train") -> Any:
    typed = ClusterSpec.from_json(spec)
    targets = planning.group_targets(typed, {})
    return planning.cluster_target("clu_01JD3W5Z8K2M4N6P8R0T2V4X6Y", name, typed, targets, {})


def test_crds_are_the_v1_7_0_files_named_in_the_provenance() -> None:
    text = (manifests.KUBERAY_DIR / "PROVENANCE.md").read_text()
    for file in manifests.CRD_FILES:
        digest = hashlib.sha256((manifests.KUBERAY_DIR / file).read_bytes()).hexdigest()
        assert f"{digest}  {file}" in text


def test_generated_rayclusters_validate_against_the_crd(validator: jsonschema.Draft7Validator) -> None:
    variants = [SPEC, {**SPEC, "worker_groups": []}, {**SPEC, "image": "myacr.azurecr.io/ray:2.52.0"}]
    for spec in variants:
        for suspend in (False, True):
            obj = manifests.ray_cluster(_target(spec), replicas={}, suspend=suspend)
            errors = sorted(validator.iter_errors(obj), key=str)
            assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_a_misspelled_field_is_caught_by_the_strict_schema(validator: jsonschema.Draft7Validator) -> None:
    obj = manifests.ray_cluster(_target(), replicas={})
    bad = copy.deepcopy(obj)
    bad["spec"]["workerGroupSpecs"][0]["replica"] = 2
    assert any("replica" in e.message for e in validator.iter_errors(bad))
    bad = copy.deepcopy(obj)
    bad["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert list(validator.iter_errors(bad))


def test_pods_are_pinned_to_their_pool_with_requests_from_the_catalog_minus_the_reserve() -> None:
    obj = manifests.ray_cluster(_target(), replicas={"cpu": 3})
    cpu, gpu = obj["spec"]["workerGroupSpecs"]
    assert cpu["replicas"] == 3
    assert (cpu["minReplicas"], cpu["maxReplicas"]) == (1, 4)
    assert obj["spec"]["enableInTreeAutoscaling"] is True
    cpu_pod = cpu["template"]["spec"]
    assert cpu_pod["nodeSelector"] == {manifests.POOL_LABEL: PoolKey("Standard_D8s_v5", False).name}
    requests = cpu_pod["containers"][0]["resources"]["requests"]
    # D8s_v5: 8 vCPU, 32 GiB. 8000m - 180m kubelet - 400m AKS DaemonSets; memory less the
    # kubelet's 20 MB x 30 pods + 50 MB (AKS 1.29+), the 100 Mi eviction threshold and 512 Mi
    # of DaemonSets.
    assert requests == {"cpu": "7420m", "memory": f"{int(32768 - 650 * 1e6 / 2**20 - 100) - 512}Mi"}
    assert "tolerations" not in cpu_pod
    gpu_pod = gpu["template"]["spec"]
    assert gpu_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["rayStartParams"]["num-gpus"] == "1"
    assert {"key": manifests.SPOT_TAINT_KEY, "operator": "Equal", "value": "spot", "effect": "NoSchedule"} in gpu_pod[
        "tolerations"
    ]
    assert gpu_pod["containers"][0]["image"] == "rayproject/ray:2.52.0-gpu"
    head = obj["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["template"]["spec"]["nodeSelector"] == {manifests.POOL_LABEL: PoolKey("Standard_D4s_v5", False).name}


def test_replicas_are_clamped_into_the_group_bounds() -> None:
    obj = manifests.ray_cluster(_target(), replicas={"cpu": 99, "gpu": -1})
    assert [g["replicas"] for g in obj["spec"]["workerGroupSpecs"]] == [4, 0]


def test_pool_names_are_valid_aks_names_and_stable() -> None:
    names = {
        PoolKey(size, spot).name
        for size in ("Standard_D4s_v5", "standard_d4s_v5", "Standard_NC4as_T4_v3")
        for spot in (False, True)
    }
    assert len(names) == 4  # case of the size does not matter; priority does
    assert all(re.fullmatch(r"[a-z][a-z0-9]{0,11}", n) for n in names)


def test_spot_and_gpu_pool_properties() -> None:
    spot = manifests.pool_properties(
        PoolKey("Standard_NC4as_T4_v3", True), gpus=1, max_count=8, orchestrator_version=None
    )
    assert spot["scaleSetPriority"] == "Spot"
    assert spot["scaleSetEvictionPolicy"] == "Delete"
    assert spot["spotMaxPrice"] == -1
    assert spot["mode"] == "User"
    assert (spot["enableAutoScaling"], spot["minCount"], spot["maxCount"]) == (True, 0, 8)
    assert spot["gpuProfile"] == {"driver": "Install"}
    regular = manifests.pool_properties(
        PoolKey("Standard_D4s_v5", False), gpus=0, max_count=4, orchestrator_version="1.33"
    )
    assert regular["scaleSetPriority"] == "Regular"
    assert "spotMaxPrice" not in regular
    assert "gpuProfile" not in regular


@pytest.mark.parametrize(
    ("needed", "step"), [(0, 8), (1, 8), (4, 8), (5, 16), (9, 32), (200, 512), (400, 1000), (900, 1000)]
)
def test_pool_capacity_leaves_room_for_as_many_again_within_the_aks_limit(needed: int, step: int) -> None:
    assert manifests.pool_capacity_step(needed) == step


def test_kuberay_objects_install_crds_before_the_operator() -> None:
    kinds = [o["kind"] for o in manifests.kuberay_objects()]
    assert kinds[:3] == ["CustomResourceDefinition"] * 3
    assert kinds[-1] == "Deployment"
    assert "ClusterRoleBinding" in kinds
    deployment = manifests.kuberay_objects()[-1]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "quay.io/kuberay/operator:v1.7.0"


def test_rayclusters_run_with_token_auth_from_rayplanes_secret(validator: jsonschema.Draft7Validator) -> None:
    """KubeRay v1.7.0's ``authOptions``: token mode, the token from the Secret Rayplane
    writes (key ``auth_token``), valid against the strict CRD schema."""
    typed = ClusterSpec.from_json(SPEC)
    target = planning.cluster_target(
        "clu_01JD3W5Z8K2M4N6P8R0T2V4X6Y", "train", typed, planning.group_targets(typed, {}), {}, None, "tok-123"
    )
    obj = manifests.ray_cluster(target, replicas={})
    assert obj["spec"]["authOptions"] == {"mode": "token", "secretName": manifests.AUTH_SECRET}
    assert list(validator.iter_errors(obj)) == []
    secret = manifests.auth_secret(target)
    assert secret["metadata"] == {
        "name": manifests.AUTH_SECRET,
        "namespace": obj["metadata"]["namespace"],
        "labels": {manifests.MANAGED_LABEL: "true"},
    }
    assert secret["data"] == {"auth_token": "dG9rLTEyMw=="}  # base64 of the token
    assert "tok-123" not in repr(target)  # targets are logged; the token is not
    with pytest.raises(ValueError, match="Ray token"):
        manifests.auth_secret(_target())
