"""Head fault tolerance without Ray: the spec field, its validation, and the local provider's
Redis settings for Ray's GCS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rayplane.clouds.models import Cloud
from rayplane.clouds.schemas import AzureCloud
from rayplane.clusters import planning
from rayplane.clusters.schemas import ClusterCreate, ClusterPatch
from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.validation import Quotas, Usage, validate_spec
from rayplane.providers.base import TerminalError, gcs_storage_namespace
from rayplane.providers.local import gcs
from rayplane.providers.local.store import ClusterFile

OLD_ROW: dict[str, Any] = {
    "ray_version": "2.60.0",
    "image": None,
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [
        {
            "name": "cpu",
            "vm_size": "Standard_D2s_v5",
            "min_nodes": 1,
            "max_nodes": 2,
            "spot": False,
            "fallback_to_on_demand": False,
        }
    ],
    "idle_timeout_minutes": None,
}
FT_ROW: dict[str, Any] = {**OLD_ROW, "head": {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True}}


def test_an_existing_row_reads_without_it_and_writes_back_unchanged() -> None:
    spec = ClusterSpec.from_json(OLD_ROW)
    assert spec.head.gcs_fault_tolerance is False
    assert spec.to_json() == OLD_ROW  # the key is left out while false


def test_it_round_trips_when_true() -> None:
    spec = ClusterSpec.from_json(FT_ROW)
    assert spec.head.gcs_fault_tolerance is True
    assert spec.to_json() == FT_ROW
    assert ClusterSpec.from_json(spec.to_json()) == spec


def test_only_a_true_boolean_turns_it_on_in_a_stored_row() -> None:
    for value in ("true", 1, None, False):
        row = {**OLD_ROW, "head": {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": value}}
        assert ClusterSpec.from_json(row).head.gcs_fault_tolerance is False


def test_with_changes_turns_it_on_and_off_and_keeps_the_rest() -> None:
    spec = ClusterSpec.from_json(OLD_ROW)
    on = spec.with_changes(gcs_fault_tolerance=True)
    assert on.head.gcs_fault_tolerance is True
    assert on.head.vm_size == spec.head.vm_size
    assert on.worker_groups == spec.worker_groups
    assert on.with_changes(gcs_fault_tolerance=False) == spec
    assert on.with_changes(idle_timeout_minutes=5).head.gcs_fault_tolerance is True


def test_the_provider_target_carries_it() -> None:
    spec = ClusterSpec.from_json(FT_ROW)
    target = planning.cluster_target("cls_x", "x", spec, planning.group_targets(spec, {}), {})
    assert target.gcs_fault_tolerance is True
    off = ClusterSpec.from_json(OLD_ROW)
    assert planning.cluster_target("cls_x", "x", off, {}, {}).gcs_fault_tolerance is False


def test_the_wire_schema_takes_a_strict_boolean() -> None:
    body = {"name": "ft", "head": {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True}}
    assert ClusterCreate.model_validate(body).head.gcs_fault_tolerance is True
    assert ClusterCreate.model_validate({"name": "ft"}).head.gcs_fault_tolerance is False
    with pytest.raises(ValidationError) as err:
        ClusterCreate.model_validate({"name": "ft", "head": {"gcs_fault_tolerance": "yes"}})
    assert err.value.errors()[0]["loc"] == ("head", "gcs_fault_tolerance")
    assert ClusterPatch.model_validate({"head": {"gcs_fault_tolerance": False}}).head is not None
    with pytest.raises(ValidationError):
        ClusterPatch.model_validate({"head": {"vm_size": "Standard_D4s_v5"}})  # the size stays


def _cloud(provider: str, config: dict[str, Any]) -> Cloud:
    return Cloud(id="cld_x", tenant_id="ten_x", name="c1", provider=provider, config=config, ray_versions=["2.60.0"])


def _errors(spec: ClusterSpec, cloud: Cloud, **kw: Any) -> list[tuple[str, str]]:
    found = validate_spec(
        spec, cloud, usage=Usage(vcpus=0, clusters=0), quotas=Quotas(vcpus=1000, clusters=10), new_cluster=True, **kw
    )
    return [(e.field, e.message) for e in found]


GCS_REDIS = {"address": "rediss://gcs.redis.cache.windows.net:6380", "password_secret": "gcs-redis"}


def test_an_azure_cloud_without_a_redis_refuses_it_and_says_what_to_configure() -> None:
    spec = ClusterSpec.from_json(FT_ROW)
    errors = _errors(spec, _cloud("azure", {"region": "eastus2"}))
    assert [field for field, _ in errors] == ["body.head.gcs_fault_tolerance"]
    assert "gcs_redis" in errors[0][1]
    assert "c1" in errors[0][1]
    assert _errors(spec, _cloud("azure", {"region": "eastus2", "gcs_redis": GCS_REDIS})) == []
    assert _errors(ClusterSpec.from_json(OLD_ROW), _cloud("azure", {"region": "eastus2"})) == []


def test_a_local_cloud_needs_a_tcp_redis() -> None:
    spec = ClusterSpec.from_json(FT_ROW)
    local = _cloud("local", {"capacity": {"cpus": 8, "memory_gib": 32}})
    assert _errors(spec, local) == []
    errors = _errors(spec, local, local_gcs_redis=False)
    assert [field for field, _ in errors] == ["body.head.gcs_fault_tolerance"]
    assert "RAYPLANE_LOCAL_GCS_REDIS_URL" in errors[0][1]


def test_an_azure_cloud_stores_gcs_redis_only_when_given() -> None:
    base = {
        "subscription_id": "00000000-0000-0000-0000-000000000001",
        "resource_group": "ml",
        "region": "eastus2",
        "tenant_id": "00000000-0000-0000-0000-000000000002",
    }
    assert "gcs_redis" not in AzureCloud.model_validate(base).config()
    stored = AzureCloud.model_validate({**base, "gcs_redis": GCS_REDIS}).config()["gcs_redis"]
    assert stored == {**GCS_REDIS, "password_secret_namespace": "kuberay-system", "password_key": "password"}
    with pytest.raises(ValidationError):
        AzureCloud.model_validate({**base, "gcs_redis": {**GCS_REDIS, "address": "no port"}})


# -- the local provider's Redis settings for Ray -------------------------------------------------


def test_a_redis_url_becomes_rays_address_and_credentials() -> None:
    ep = gcs.endpoint("redis://127.0.0.1:6379/7")  # the database number is not Ray's to use
    assert (ep.ray_address, ep.username, ep.password) == ("127.0.0.1:6379", "", "")
    assert gcs.head_args(ep) == []
    tls = gcs.endpoint("rediss://rp:s%40cret@cache.example.com:6380/0")
    assert tls.ray_address == "rediss://cache.example.com:6380"
    assert gcs.head_args(tls) == ["--redis-username=rp", "--redis-password=s@cret"]
    assert "s@cret" not in repr(tls)
    assert gcs.endpoint("redis://localhost").port == 6379


def test_a_unix_socket_redis_cannot_hold_the_gcs() -> None:
    for url in ("redis+socket:///tmp/r.sock", "unix:///tmp/r.sock", None, ""):
        with pytest.raises(TerminalError) as err:
            gcs.endpoint(url)
        assert err.value.code == "GcsRedisUnavailable"
        assert gcs.problem(url) is not None
    assert gcs.problem("redis://127.0.0.1:6379/1") is None


def test_the_head_and_worker_environments() -> None:
    ep = gcs.endpoint("redis://127.0.0.1:6379/1")
    assert gcs.head_env(ep, "cls_01abc") == {
        "RAY_REDIS_ADDRESS": "127.0.0.1:6379",
        "RAY_external_storage_namespace": "rayplane-cls_01abc",
    }
    assert gcs.head_env(None, "cls_01abc") == {}
    assert gcs.head_args(None) == []
    assert gcs.worker_env() == {"RAY_gcs_rpc_server_reconnect_timeout_s": "600"}


def test_the_namespace_and_its_key_pattern() -> None:
    ns = gcs_storage_namespace("cls_01abc")
    assert ns == "rayplane-cls_01abc"
    assert "@" not in ns
    assert gcs.key_pattern(ns) == "RAYrayplane-cls_01abc@*"
    assert gcs.key_pattern("a*b?[c]") == "RAYa\\*b\\?\\[c\\]@*"


def test_a_restarted_head_keeps_its_gcs_port_while_workers_live(tmp_path: Path) -> None:
    from rayplane.providers.base import RetriableError
    from rayplane.providers.local.processes import NodeRecord

    cf = ClusterFile(cluster_id="cls_x", head_ports={"gcs": 21000})
    (tmp_path / gcs.RAY_ADDRESS_FILE).write_text("192.0.2.2:21000")
    gcs.prepare_head(cf, 21001, tmp_path)  # no workers: any port will do
    assert not (tmp_path / gcs.RAY_ADDRESS_FILE).exists()
    cf.nodes["cpu-1"] = NodeRecord("cpu-1", "cpu", 1, 1, 0.0, "", "", {}, {}, 0.0)
    gcs.prepare_head(cf, 21000, tmp_path)
    with pytest.raises(RetriableError) as err:
        gcs.prepare_head(cf, 21001, tmp_path)
    assert err.value.code == "GcsPortTaken"


def test_the_cli_shows_it_beside_the_head_size() -> None:
    from cli.views import head_cell

    assert head_cell({"vm_size": "Standard_D2s_v5"}) == "Standard_D2s_v5"
    assert head_cell({"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True}) == (
        "Standard_D2s_v5  fault tolerant (GCS in Redis)"
    )
