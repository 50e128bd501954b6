"""Head fault tolerance on Azure: the RayCluster gets KubeRay v1.7.0's ``gcsFaultToleranceOptions``
(validated against the CRD, made strict), pointing at the cloud's ``gcs_redis`` with the password
from the cluster's copy of the operator's Secret; without a ``gcs_redis`` nothing is generated."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from rayplane.clusters import planning
from rayplane.clusters.spec import ClusterSpec
from rayplane.providers.azure import manifests
from tests.providers.test_azure_manifests import SPEC, _strict

CLUSTER_ID = "clu_01JD3W5Z8K2M4N6P8R0T2V4X6Y"
GCS_REDIS = {
    "address": "rediss://rayplane-gcs.redis.cache.windows.net:6380",
    "password_secret": "gcs-redis",
    "password_secret_namespace": "kuberay-system",
    "password_key": "password",
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(manifests.crd_schema("RayCluster")))


def _target(ft: bool, cloud_config: dict[str, Any]) -> Any:
    head = {**SPEC["head"], **({"gcs_fault_tolerance": True} if ft else {})}
    typed = ClusterSpec.from_json({**SPEC, "head": head})
    targets = planning.group_targets(typed, {})
    return planning.cluster_target(CLUSTER_ID, "train", typed, targets, cloud_config, ray_token="t" * 43)


def test_a_fault_tolerant_cluster_gets_gcs_fault_tolerance_options(validator: jsonschema.Draft7Validator) -> None:
    for config in (GCS_REDIS, {**GCS_REDIS, "username": "rayplane"}):
        target = _target(True, {"gcs_redis": config})
        for suspend in (False, True):
            obj = manifests.ray_cluster(target, replicas={}, suspend=suspend)
            errors = sorted(validator.iter_errors(obj), key=str)
            assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    options = manifests.ray_cluster(_target(True, {"gcs_redis": GCS_REDIS}), replicas={})["spec"][
        "gcsFaultToleranceOptions"
    ]
    assert options == {
        "redisAddress": "rediss://rayplane-gcs.redis.cache.windows.net:6380",
        "redisPassword": {"valueFrom": {"secretKeyRef": {"name": "rayplane-gcs-redis", "key": "password"}}},
        "externalStorageNamespace": f"rayplane-{CLUSTER_ID}",
    }
    user = manifests.gcs_fault_tolerance(_target(True, {"gcs_redis": {**GCS_REDIS, "username": "rayplane"}}))
    assert user["redisUsername"] == {"value": "rayplane"}


def test_a_misspelled_option_is_caught_by_the_strict_schema(validator: jsonschema.Draft7Validator) -> None:
    obj = manifests.ray_cluster(_target(True, {"gcs_redis": GCS_REDIS}), replicas={})
    obj["spec"]["gcsFaultToleranceOptions"]["redisAdress"] = "x:1"
    assert any("redisAdress" in e.message for e in validator.iter_errors(obj))


def test_other_clusters_have_no_options() -> None:
    obj = manifests.ray_cluster(_target(False, {"gcs_redis": GCS_REDIS}), replicas={})
    assert "gcsFaultToleranceOptions" not in obj["spec"]


def test_without_a_gcs_redis_the_manifest_is_refused() -> None:
    with pytest.raises(ValueError, match="gcs_redis"):
        manifests.ray_cluster(_target(True, {}), replicas={})


def test_the_password_secret_copy_lives_in_the_cluster_namespace() -> None:
    target = _target(True, {"gcs_redis": GCS_REDIS})
    secret = manifests.gcs_redis_secret(target, "c2VjcmV0")
    namespace, _ = manifests.resource_name(target)
    assert secret["metadata"]["namespace"] == namespace
    assert secret["metadata"]["name"] == "rayplane-gcs-redis"
    assert secret["data"] == {"password": "c2VjcmV0"}


class FakeKube:
    """Just the read the provider makes of the operator's Secret."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.reads: list[tuple[str, str, str, str | None]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self.reads.append((api_version, kind, name, namespace))
        return self.objects.get((namespace or "", name))


def test_the_provider_copies_the_operators_secret_into_the_cluster_namespace() -> None:
    from rayplane.providers.azure.provider import AzureProvider
    from rayplane.providers.base import RetriableError, TerminalError

    target = _target(True, {"gcs_redis": {**GCS_REDIS, "password_secret_namespace": "ops", "password_key": "key"}})
    kube = FakeKube({("ops", "gcs-redis"): {"data": {"key": "c2VjcmV0", "other": "eA=="}}})
    [secret] = AzureProvider.gcs_secret(kube, target)  # type: ignore[arg-type]
    assert kube.reads == [("v1", "Secret", "gcs-redis", "ops")]
    assert secret == manifests.gcs_redis_secret(target, "c2VjcmV0")
    assert AzureProvider.gcs_secret(FakeKube({}), _target(False, {})) == []  # type: ignore[arg-type]
    with pytest.raises(RetriableError) as missing:
        AzureProvider.gcs_secret(FakeKube({}), target)  # type: ignore[arg-type]
    assert missing.value.code == "GcsRedisSecretMissing"
    assert "ops/gcs-redis" in missing.value.message
    with pytest.raises(TerminalError) as unnamed:
        AzureProvider.gcs_secret(FakeKube({}), _target(True, {}))  # type: ignore[arg-type]
    assert unnamed.value.code == "GcsRedisNotConfigured"
