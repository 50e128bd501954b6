"""The emulator's ARM surface under faults and at its edges: throttling, server errors, operations
ending Failed, latency, request counters, authentication, api-versions, and the fleet behind pools."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
)
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as m

from emulators.azure.server import EmulatorProcess
from emulators.azure.store import DocumentStore
from tests.emulators.arm_support import (  # noqa: F401 - fixtures, used by name
    ARM_SCOPE,
    RG,
    TENANT,
    aks,
    client,
    cluster,
    cluster_model,
    cluster_path,
    configure,
    cprops,
    credential,
    emu,
    error_code,
    http,
    need,
    pool_model,
    pprops,
    sub,
)


def test_sdk_retries_through_throttling_and_server_errors(emu: EmulatorProcess, aks: ContainerServiceClient) -> None:
    configure(emu, rate_429=0.25, rate_5xx=0.15, throttle_retry_after=0)
    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
    for name in ("p1", "p2", "p3"):
        aks.agent_pools.begin_create_or_update(RG, "c1", name, pool_model()).result()
    assert len(list(aks.agent_pools.list(RG, "c1"))) == 4
    aks.agent_pools.begin_delete(RG, "c1", "p3").result()
    faults = emu.request_json("GET", "/_emulator/arm/requests")["faults"]
    assert faults.get("429", 0) > 0
    assert faults.get("5xx", 0) > 0
    configure(emu, rate_429=0, rate_5xx=0)
    assert emu.request_json("GET", "/_emulator/arm/config")["rate_429"] == 0  # admin routes never faulted


def test_throttle_answer_carries_retry_after(emu: EmulatorProcess, sub: str) -> None:
    configure(emu, rate_429=1.0, throttle_retry_after=3)
    token = credential(emu).get_token(ARM_SCOPE).token
    with http(emu) as h:
        answer = h.get(
            f"/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters",
            params={"api-version": "2026-08-01"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.json()["error"]["code"] == "SubscriptionRequestsThrottled"


@pytest.mark.parametrize("code", ["AllocationFailed", "QuotaExceeded", "SkuNotAvailable", "ZonalAllocationFailed"])
def test_fail_next_ends_the_operation_failed(
    emu: EmulatorProcess, aks: ContainerServiceClient, cluster: m.ManagedCluster, code: str
) -> None:
    emu.request_json("POST", "/_emulator/arm/fail-next", {"code": code, "match": "doomed"})
    aks.agent_pools.begin_create_or_update(RG, "c1", "fine", pool_model()).result()  # does not match
    with pytest.raises(HttpResponseError) as failed:
        aks.agent_pools.begin_create_or_update(RG, "c1", "doomed", pool_model()).result()
    assert error_code(failed.value) == code
    assert pprops(aks.agent_pools.get(RG, "c1", "doomed")).provisioning_state == "Failed"
    assert emu.request_json("GET", "/_emulator/arm/fail-next")["rules"] == []
    # The rule was used up: the retry succeeds.
    retried = aks.agent_pools.begin_create_or_update(RG, "c1", "doomed", pool_model()).result()
    assert pprops(retried).provisioning_state == "Succeeded"


def test_fail_next_count_and_cluster_operations(emu: EmulatorProcess, aks: ContainerServiceClient) -> None:
    emu.request_json("POST", "/_emulator/arm/fail-next", {"code": "AKSCapacityError", "count": 2, "message": "full"})
    for _ in range(2):
        with pytest.raises(HttpResponseError) as failed:
            aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
        assert error_code(failed.value) == "AKSCapacityError"
        assert failed.value.error is not None
        assert failed.value.error.message == "full"
    got = aks.managed_clusters.get(RG, "c1")
    assert cprops(got).provisioning_state == "Failed"
    assert need(cprops(got).agent_pool_profiles)[0].provisioning_state == "Failed"
    third = aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
    assert cprops(third).provisioning_state == "Succeeded"


def test_latency_is_added_to_arm_requests_only(emu: EmulatorProcess, aks: ContainerServiceClient) -> None:
    configure(emu, latency_ms=300)
    started = time.monotonic()
    list(aks.managed_clusters.list())
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    emu.request_json("GET", "/_emulator/arm/config")
    assert time.monotonic() - started < 0.3


def test_request_counters(emu: EmulatorProcess, aks: ContainerServiceClient, sub: str) -> None:
    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
    aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model()).result()
    aks.managed_clusters.get(RG, "c1")
    counts = emu.request_json("GET", "/_emulator/arm/requests")
    key = cluster_path(sub, "c1").lower()
    assert counts["writes"] == 2
    assert counts["writes_by_resource"] == {key: 1, f"{key}/agentpools/p1": 1}
    assert counts["by_method"]["PUT"] == 2
    assert counts["by_cluster"][key] == counts["total"]
    assert counts["total"] >= 2 + 2 * 2 + 1  # two PUTs, each >= 1 poll and a final GET, one GET


# -- auth and api-version ------------------------------------------------------------------
def test_requests_without_a_valid_arm_token_get_401(emu: EmulatorProcess, sub: str) -> None:
    path = f"/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters"
    params = {"api-version": "2026-08-01"}
    other = emu.mint_token(TENANT, audience="api://not-arm")
    expired = emu.mint_token(TENANT, lifetime_seconds=-120)
    forged = emu.mint_token(TENANT, untrusted=True)
    with http(emu) as h:
        missing = h.get(path, params=params)
        answers = {
            name: h.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
            for name, token in (("audience", other), ("expired", expired), ("forged", forged), ("junk", "abc"))
        }
        good = h.get(path, params=params, headers={"Authorization": f"Bearer {emu.mint_token(TENANT)}"})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AuthenticationFailed"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    codes = {name: (r.status_code, r.json()["error"]["code"]) for name, r in answers.items()}
    assert codes == {
        "audience": (401, "InvalidAuthenticationTokenAudience"),
        "expired": (401, "ExpiredAuthenticationToken"),
        "forged": (401, "InvalidAuthenticationToken"),
        "junk": (401, "InvalidAuthenticationToken"),
    }
    assert all("WWW-Authenticate" in r.headers for r in answers.values())
    assert good.status_code == 200
    assert good.json() == {"value": []}


def test_sdk_with_a_token_for_another_resource_is_refused(emu: EmulatorProcess, sub: str) -> None:
    wrong = client(emu, sub, credential_scopes=["api://rayplane/.default"])
    with pytest.raises(ClientAuthenticationError) as refused:
        list(wrong.managed_clusters.list())
    assert refused.value.status_code == 401


def test_api_versions(emu: EmulatorProcess, sub: str) -> None:
    old = client(emu, sub, api_version="2020-01-01")
    with pytest.raises(HttpResponseError) as unsupported:
        list(old.managed_clusters.list())
    assert error_code(unsupported.value) == "NoRegisteredProviderFound"
    assert list(client(emu, sub, api_version="2026-07-01").managed_clusters.list()) == []
    token = credential(emu).get_token(ARM_SCOPE).token
    with http(emu) as h:
        path = f"/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters"
        missing = h.get(path, headers={"Authorization": f"Bearer {token}"})
        garbled = h.get(path, params={"api-version": "latest"}, headers={"Authorization": f"Bearer {token}"})
        lower = h.get(path.lower(), params={"api-version": "2026-08-01"}, headers={"Authorization": f"Bearer {token}"})
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    assert garbled.json()["error"]["code"] == "InvalidApiVersionParameter"
    assert lower.status_code == 200  # ARM paths are case-insensitive


# -- the fleet -----------------------------------------------------------------------------
def test_pools_reach_the_fleet_and_report_its_node_count(
    emu: EmulatorProcess, aks: ContainerServiceClient, sub: str, cluster: m.ManagedCluster
) -> None:
    auto = pool_model(vmSize="Standard_NC4as_T4_v3", enableAutoScaling=True, minCount=2, maxCount=5, count=3)
    aks.agent_pools.begin_create_or_update(RG, "c1", "gpu", auto).result()
    # The autoscaler owns an autoscaling pool's size: no pending pods, so it holds minCount.
    assert pprops(aks.agent_pools.get(RG, "c1", "gpu")).count == 2
    store = DocumentStore(emu.data_dir / "state.db")
    try:
        key = cluster_path(sub, "c1").lower()
        fleet_pool = store.get("fleet.pool", f"{key}/gpu")
        assert fleet_pool is not None
        assert fleet_pool["spec"]["gpus"] == 1
        assert fleet_pool["spec"]["autoscale"] is True
        assert len(fleet_pool["nodes"]) == 2
        assert store.get("fleet.pool", f"{key}/system") is not None
        aks.agent_pools.begin_delete(RG, "c1", "gpu").result()
        assert store.get("fleet.pool", f"{key}/gpu") is None
        aks.managed_clusters.begin_delete(RG, "c1").result()
        assert list(store.scan("fleet.pool", key)) == []
    finally:
        store.close()
