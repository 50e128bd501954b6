"""The emulator's ARM surface, driven by the real azure-mgmt-containerservice over HTTPS.

Every test talks to an emulator subprocess through ``ContainerServiceClient`` with a
``ClientSecretCredential`` from the emulator's own Entra, exactly as Rayplane's azure provider
does; raw HTTP (httpx) only where the point is what the SDK would hide (auth headers,
api-version). Helpers here are reused by ``test_arm_examples.py``.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as m

from emulators.azure.server import EmulatorProcess
from emulators.azure.store import DocumentStore
from tests.emulators.arm_support import (  # noqa: F401 - fixtures, used by name
    ARM_SCOPE,
    FAST,
    RG,
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
    names,
    need,
    pool_model,
    pprops,
    sub,
)


def test_cluster_and_pools_lifecycle(aks: ContainerServiceClient, sub: str) -> None:
    created = aks.managed_clusters.begin_create_or_update(
        RG,
        "c1",
        cluster_model(
            oidcIssuerProfile={"enabled": True},
            securityProfile={"workloadIdentity": {"enabled": True}},
            addonProfiles={"omsagent": {"enabled": True, "config": {"logAnalyticsWorkspaceResourceID": "/x"}}},
        ),
    ).result()
    props = cprops(created)
    assert props.provisioning_state == "Succeeded"
    assert need(props.power_state).code == "Running"
    assert created.e_tag
    assert created.id == cluster_path(sub, "c1")
    assert need(props.oidc_issuer_profile).enabled is True
    assert need(need(props.oidc_issuer_profile).issuer_url).endswith("/")
    assert need(need(props.security_profile).workload_identity).enabled is True
    assert need(props.addon_profiles)["omsagent"].enabled is True
    assert need(props.fqdn).endswith(".hcp.eastus.azmk8s.io")
    assert [(p.name, p.mode, p.provisioning_state) for p in need(props.agent_pool_profiles)] == [
        ("system", "System", "Succeeded")
    ]

    spot = pool_model(
        vmSize="Standard_D8s_v5",
        scaleSetPriority="Spot",
        scaleSetEvictionPolicy="Delete",
        spotMaxPrice=-1,
        enableAutoScaling=True,
        minCount=0,
        maxCount=4,
        count=0,
        nodeLabels={"rayplane.io/group": "workers"},
    )
    pool = aks.agent_pools.begin_create_or_update(RG, "c1", "spotd8", spot).result()
    assert pprops(pool).provisioning_state == "Succeeded"
    assert pprops(pool).scale_set_priority == "Spot"
    assert pprops(pool).e_tag
    assert need(pprops(pool).power_state).code == "Running"

    assert names(aks.agent_pools.list(RG, "c1")) == ["spotd8", "system"]
    got = aks.managed_clusters.get(RG, "c1")
    assert names(need(cprops(got).agent_pool_profiles)) == ["spotd8", "system"]
    assert [c.name for c in aks.managed_clusters.list_by_resource_group(RG)] == ["c1"]
    assert [c.name for c in aks.managed_clusters.list()] == ["c1"]

    aks.agent_pools.begin_delete(RG, "c1", "spotd8").result()
    with pytest.raises(ResourceNotFoundError):
        aks.agent_pools.get(RG, "c1", "spotd8")
    aks.managed_clusters.begin_delete(RG, "c1").result()
    with pytest.raises(ResourceNotFoundError):
        aks.managed_clusters.get(RG, "c1")
    assert list(aks.managed_clusters.list()) == []


def test_put_answers_201_then_200_with_lro_headers(aks: ContainerServiceClient, sub: str) -> None:
    seen: list[tuple[str, int, dict[str, str], Any]] = []

    def hook(response: Any) -> None:
        r = response.http_response
        r.read()  # LRO first answers are streamed
        body = r.text()
        seen.append((r.request.method, r.status_code, {k.lower(): v for k, v in r.headers.items()}, body))

    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model(), raw_response_hook=hook).result()
    method, status, headers, _ = seen[0]
    assert (method, status) == ("PUT", 201)
    op_url = headers["azure-asyncoperation"]
    assert f"/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/eastus/operations/" in op_url
    assert "api-version=2026-08-01" in op_url
    assert headers["retry-after"] == "0"
    statuses = [json.loads(b)["status"] for _, _, _, b in seen[1:-1]]
    assert statuses[-1] == "Succeeded"
    assert seen[-1][0] == "GET"
    assert '"provisioningState":"Succeeded"' in seen[-1][3].replace(" ", "")

    seen.clear()
    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model(), raw_response_hook=hook).result()
    assert (seen[0][0], seen[0][1]) == ("PUT", 200)
    assert '"provisioningState":"Updating"' in seen[0][3].replace(" ", "")

    seen.clear()
    aks.managed_clusters.begin_delete(RG, "c1", raw_response_hook=hook).result()
    method, status, headers, _ = seen[0]
    assert (method, status) == ("DELETE", 202)
    assert "/operationresults/" in headers["location"]
    assert "/operations/" in headers["azure-asyncoperation"]
    seen.clear()
    aks.managed_clusters.begin_delete(RG, "c1", raw_response_hook=hook).result()
    assert [(s[0], s[1]) for s in seen] == [("DELETE", 204)]


def test_operation_status_and_result_documents(emu: EmulatorProcess, aks: ContainerServiceClient) -> None:
    configure(emu, operation_seconds=30, retry_after=7)
    poller = aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model(), polling=False)
    del poller
    got = aks.managed_clusters.get(RG, "c1")
    assert cprops(got).provisioning_state == "Creating"
    seen: list[Any] = []
    aks.managed_clusters.begin_delete(RG, "c1", polling=False, raw_response_hook=lambda r: seen.append(r))
    headers = seen[0].http_response.headers
    token = credential(emu).get_token(ARM_SCOPE).token
    with http(emu) as h:
        status = h.get(headers["Azure-AsyncOperation"], headers={"Authorization": f"Bearer {token}"})
        result = h.get(headers["Location"], headers={"Authorization": f"Bearer {token}"})
    assert status.status_code == 200
    doc = status.json()
    assert doc["status"] == "InProgress"
    assert {"id", "name", "status", "startTime"} <= doc.keys()
    assert status.headers["Retry-After"] == "7"
    assert result.status_code == 202
    assert "operationresults" in result.headers["Location"]


# -- paging --------------------------------------------------------------------------------
def test_lists_follow_next_link(emu: EmulatorProcess, aks: ContainerServiceClient) -> None:
    pools = [
        {"name": f"pool{i}", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System" if i == 0 else "User"}
        for i in range(5)
    ]
    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model(*pools)).result()
    for name, rg in (("c2", RG), ("c3", "rg2")):
        aks.managed_clusters.begin_create_or_update(rg, name, cluster_model()).result()
    configure(emu, page_size=2)
    urls: list[str] = []

    def hook(response: Any) -> None:
        urls.append(response.http_request.url)

    names = [p.name for p in aks.agent_pools.list(RG, "c1", raw_response_hook=hook)]
    assert names == [f"pool{i}" for i in range(5)]
    assert len(urls) == 3
    assert all("$skipToken=" in u or "%24skipToken=" in u for u in urls[1:])
    assert [c.name for c in aks.managed_clusters.list()] == ["c1", "c2", "c3"]
    assert [c.name for c in aks.managed_clusters.list_by_resource_group(RG)] == ["c1", "c2"]
    configure(emu, page_size=100)
    urls.clear()
    assert len(list(aks.agent_pools.list(RG, "c1", raw_response_hook=hook))) == 5
    assert len(urls) == 1


# -- kubeconfig ----------------------------------------------------------------------------
def test_credentials_are_kubeconfigs_for_the_kubernetes_surface(
    emu: EmulatorProcess, aks: ContainerServiceClient, sub: str, cluster: m.ManagedCluster
) -> None:
    user = aks.managed_clusters.list_cluster_user_credentials(RG, "c1")
    again = aks.managed_clusters.list_cluster_user_credentials(RG, "c1")
    admin = aks.managed_clusters.list_cluster_admin_credentials(RG, "c1")
    assert [k.name for k in need(user.kubeconfigs)] == ["clusterUser"]
    assert [k.name for k in need(admin.kubeconfigs)] == ["clusterAdmin"]
    config = yaml.safe_load(need(need(user.kubeconfigs)[0].value))
    entry = config["clusters"][0]["cluster"]
    assert entry["server"] == f"{emu.origin}/kubernetes/{sub}/{RG}/c1"
    assert base64.b64decode(entry["certificate-authority-data"]) == Path(str(emu.ca_path)).read_bytes()
    assert config["current-context"] == config["contexts"][0]["name"]
    token = config["users"][0]["user"]["token"]
    assert need(again.kubeconfigs)[0].value == need(user.kubeconfigs)[0].value
    admin_token = yaml.safe_load(need(need(admin.kubeconfigs)[0].value))["users"][0]["user"]["token"]
    assert admin_token != token

    store = DocumentStore(emu.data_dir / "state.db")
    try:
        key = cluster_path(sub, "c1").lower()
        assert store.get("kube.token", token) == {"cluster": key, "role": "user"}
        assert store.get("kube.token", admin_token) == {"cluster": key, "role": "admin"}
        aks.managed_clusters.begin_delete(RG, "c1").result()
        assert store.get("kube.token", token) is None
        assert store.get("kube.token", admin_token) is None
    finally:
        store.close()


# -- continuation tokens and restarts ------------------------------------------------------
def test_continuation_token_resumes_in_another_client(
    emu: EmulatorProcess, aks: ContainerServiceClient, sub: str, cluster: m.ManagedCluster
) -> None:
    configure(emu, operation_seconds=0.5)
    poller = aks.agent_pools.begin_create_or_update(RG, "c1", "later", pool_model())
    token = poller.continuation_token()
    fresh = client(emu, sub)
    resumed = fresh.agent_pools.begin_create_or_update(RG, "c1", "later", pool_model(), continuation_token=token)
    pool = resumed.result()
    assert pool.name == "later"
    assert pprops(pool).provisioning_state == "Succeeded"


def test_state_and_operations_survive_restart(fresh_emulator: EmulatorProcess) -> None:
    emu = fresh_emulator  # restarted below
    configure(emu, **FAST)
    sub = str(uuid.uuid4())
    aks = client(emu, sub)
    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
    before = aks.agent_pools.begin_create_or_update(RG, "c1", "gpu", pool_model(vmSize="Standard_NC4as_T4_v3")).result()
    configure(emu, operation_seconds=1.0)
    token = aks.agent_pools.begin_create_or_update(RG, "c1", "cpu", pool_model()).continuation_token()
    emu.restart()
    aks = client(emu, sub)
    assert pprops(aks.agent_pools.get(RG, "c1", "gpu")).e_tag == pprops(before).e_tag
    resumed = aks.agent_pools.begin_create_or_update(RG, "c1", "cpu", pool_model(), continuation_token=token)
    assert pprops(resumed.result()).provisioning_state == "Succeeded"
    assert names(aks.agent_pools.list(RG, "c1")) == ["cpu", "gpu", "system"]
    assert emu.request_json("GET", "/_emulator/arm/config")["operation_seconds"] == 1.0


# -- ETags ---------------------------------------------------------------------------------
def test_if_match_and_if_none_match(aks: ContainerServiceClient, cluster: m.ManagedCluster) -> None:
    pool = aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model()).result()
    etag = pprops(pool).e_tag
    updated = aks.agent_pools.begin_create_or_update(
        RG, "c1", "p1", pool_model(count=2), etag=etag, match_condition=MatchConditions.IfNotModified
    ).result()
    assert pprops(updated).e_tag != etag
    assert pprops(updated).count == 2
    with pytest.raises(ResourceModifiedError) as stale:
        aks.agent_pools.begin_create_or_update(
            RG, "c1", "p1", pool_model(count=3), etag=etag, match_condition=MatchConditions.IfNotModified
        )
    assert stale.value.status_code == 412
    assert error_code(stale.value) == "PreconditionFailed"
    with pytest.raises(ResourceExistsError) as exists:
        aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model(), match_condition=MatchConditions.IfMissing)
    assert exists.value.status_code == 412
    with pytest.raises(ResourceNotFoundError):
        aks.agent_pools.begin_create_or_update(RG, "c1", "p9", pool_model(), match_condition=MatchConditions.IfPresent)
    with pytest.raises(ResourceModifiedError):
        aks.managed_clusters.begin_create_or_update(
            RG, "c1", cluster_model(), etag="nope", match_condition=MatchConditions.IfNotModified
        )
    with pytest.raises(ResourceModifiedError):
        aks.agent_pools.begin_delete(RG, "c1", "p1", etag=etag, match_condition=MatchConditions.IfNotModified)
    aks.agent_pools.begin_delete(
        RG, "c1", "p1", etag=pprops(updated).e_tag, match_condition=MatchConditions.IfNotModified
    ).result()


# -- validation ----------------------------------------------------------------------------
INVALID_POOLS: list[tuple[str, dict[str, Any], str]] = [
    ("UPPER", {}, "InvalidParameter"),
    ("waytoolongname1", {}, "InvalidParameter"),
    ("1pool", {}, "InvalidParameter"),
    ("bad-name", {}, "InvalidParameter"),
    ("p1", {"vmSize": "Standard_Imaginary_v9"}, "BadRequest"),
    ("p1", {"vmSize": "Standard_D96s_v5", "count": 3}, "QuotaExceeded"),
    ("p1", {"scaleSetPriority": "Spot", "scaleSetEvictionPolicy": "Delete", "mode": "System"}, "InvalidParameter"),
    ("p1", {"scaleSetPriority": "Spot", "scaleSetEvictionPolicy": "Evaporate"}, "InvalidParameter"),
    ("p1", {"scaleSetEvictionPolicy": "Delete"}, "InvalidParameter"),
    ("p1", {"enableAutoScaling": True, "minCount": 3, "maxCount": 2, "count": 3}, "InvalidParameter"),
    ("p1", {"enableAutoScaling": True, "minCount": 1, "maxCount": 2, "count": 5}, "InvalidParameter"),
    ("p1", {"enableAutoScaling": True, "count": 1}, "InvalidParameter"),
    ("p1", {"count": 1001}, "InvalidParameter"),
    ("p1", {"count": -1}, "InvalidParameter"),
    ("p1", {"mode": "System", "count": 0}, "InvalidParameter"),
    ("p1", {"mode": "Sometimes"}, "InvalidParameter"),
]


@pytest.mark.parametrize(("name", "properties", "code"), INVALID_POOLS)
def test_pool_validation_errors(
    aks: ContainerServiceClient, cluster: m.ManagedCluster, name: str, properties: dict[str, Any], code: str
) -> None:
    with pytest.raises(HttpResponseError) as caught:
        aks.agent_pools.begin_create_or_update(RG, "c1", name, pool_model(**properties))
    assert caught.value.status_code == 400
    assert error_code(caught.value) == code
    with pytest.raises(ResourceNotFoundError):
        aks.agent_pools.get(RG, "c1", name)


def test_unavailable_size_immutable_fields_and_cluster_profiles(
    emu: EmulatorProcess, aks: ContainerServiceClient, cluster: m.ManagedCluster
) -> None:
    configure(emu, unavailable_sizes=["Standard_NC4as_T4_v3"])
    with pytest.raises(HttpResponseError) as sku:
        aks.agent_pools.begin_create_or_update(RG, "c1", "gpu", pool_model(vmSize="Standard_NC4as_T4_v3"))
    assert error_code(sku.value) == "SkuNotAvailable"
    aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model()).result()
    with pytest.raises(HttpResponseError) as change:
        aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model(vmSize="Standard_D8s_v5"))
    assert error_code(change.value) == "PropertyChangeNotAllowed"
    bad_profile = {"name": "Bad_Name", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}
    with pytest.raises(HttpResponseError) as profile:
        aks.managed_clusters.begin_create_or_update(RG, "c2", cluster_model(bad_profile))
    assert error_code(profile.value) == "InvalidParameter"
    with pytest.raises(HttpResponseError) as located:
        aks.managed_clusters.begin_create_or_update(RG, "c3", m.ManagedCluster({"properties": {}}))
    assert error_code(located.value) == "LocationRequired"


def test_quota_counts_the_subscription_region_and_family(emu: EmulatorProcess, aks: ContainerServiceClient) -> None:
    configure(emu, quota_vcpus={"*": 200, "standardDSv5Family": 16})
    aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()  # 2 Dsv5 vCPUs
    aks.agent_pools.begin_create_or_update(RG, "c1", "a", pool_model(count=3)).result()  # 12 more
    with pytest.raises(HttpResponseError) as over:
        aks.agent_pools.begin_create_or_update(RG, "c1", "b", pool_model(count=1))  # 4 more: 18 > 16
    assert error_code(over.value) == "QuotaExceeded"
    assert "Current Limit: 16" in str(over.value)
    # Another family, and the same family in another region, have their own quota.
    aks.agent_pools.begin_create_or_update(RG, "c1", "b", pool_model(vmSize="Standard_D4as_v5")).result()
    west = cluster_model(location="westus")
    aks.managed_clusters.begin_create_or_update(RG, "c2", west).result()
    # Shrinking a pool frees quota.
    aks.agent_pools.begin_create_or_update(RG, "c1", "a", pool_model(count=0)).result()
    aks.agent_pools.begin_create_or_update(RG, "c1", "c", pool_model(count=2)).result()


def test_concurrent_writes_answer_operation_not_allowed(
    emu: EmulatorProcess, aks: ContainerServiceClient, cluster: m.ManagedCluster
) -> None:
    configure(emu, operation_seconds=30)
    aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model(), polling=False)
    with pytest.raises(HttpResponseError) as same_pool:
        aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model(count=2))
    assert same_pool.value.status_code == 409
    assert error_code(same_pool.value) == "OperationNotAllowed"
    assert "p1 - Creating" in str(same_pool.value)
    with pytest.raises(HttpResponseError) as whole_cluster:
        aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model())
    assert error_code(whole_cluster.value) == "OperationNotAllowed"
    # Another pool of the same cluster may change meanwhile.
    aks.agent_pools.begin_create_or_update(RG, "c1", "p2", pool_model(), polling=False)
    aks.managed_clusters.begin_create_or_update(RG, "c2", cluster_model(), polling=False)
    with pytest.raises(HttpResponseError) as pool_of_busy_cluster:
        aks.agent_pools.begin_create_or_update(RG, "c2", "p1", pool_model())
    assert error_code(pool_of_busy_cluster.value) == "OperationNotAllowed"


def test_delete_overrides_a_create_in_progress(
    emu: EmulatorProcess, aks: ContainerServiceClient, cluster: m.ManagedCluster
) -> None:
    configure(emu, operation_seconds=0.5)
    creating = aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model())
    aks.agent_pools.begin_delete(RG, "c1", "p1").result()
    with pytest.raises(HttpResponseError) as canceled:
        creating.result()
    assert error_code(canceled.value) == "OperationCanceled"
    with pytest.raises(ResourceNotFoundError):
        aks.agent_pools.get(RG, "c1", "p1")


# -- fault injection -----------------------------------------------------------------------
