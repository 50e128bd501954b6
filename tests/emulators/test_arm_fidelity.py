"""Where the emulated AKS used to differ from AKS in ways that could hide a Rayplane bug:
Kubernetes versions, the Scaling state, the defaults AKS fills into a pool, and the spot
label and taint AKS adds to a spot pool's own properties."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerservice import ContainerServiceClient

from emulators.azure.arm import resources
from tests.emulators.arm_support import (  # noqa: F401 - fixtures, used by name
    RG,
    aks,
    cluster,
    cluster_model,
    cprops,
    emu,
    error_code,
    need,
    pool_model,
    pprops,
    sub,
)


def test_a_minor_version_runs_its_latest_patch_and_an_unoffered_one_is_refused(aks: ContainerServiceClient) -> None:
    created = aks.managed_clusters.begin_create_or_update(RG, "v1", cluster_model(kubernetesVersion="1.32")).result()
    # What was asked stays as asked; what runs is the minor's newest patch.
    assert cprops(created).kubernetes_version == "1.32"
    assert cprops(created).current_kubernetes_version == resources.KUBERNETES_VERSIONS["1.32"][-1]
    pool = aks.agent_pools.begin_create_or_update(RG, "v1", "p1", pool_model(orchestratorVersion="1.32")).result()
    assert pprops(pool).orchestrator_version == "1.32"
    assert pprops(pool).current_orchestrator_version == resources.KUBERNETES_VERSIONS["1.32"][-1]
    for bad in ("1.99.0", "1.99", "1.32.99"):
        with pytest.raises(HttpResponseError) as refused:
            aks.managed_clusters.begin_create_or_update(RG, "v2", cluster_model(kubernetesVersion=bad))
        assert refused.value.status_code == 400
        assert error_code(refused.value) == "AgentPoolK8sVersionNotSupported"
        assert f"Version {bad} is not supported in this region" in str(refused.value)
    with pytest.raises(HttpResponseError) as pool_refused:
        aks.agent_pools.begin_create_or_update(RG, "v1", "p2", pool_model(orchestratorVersion="1.99.0"))
    assert error_code(pool_refused.value) == "AgentPoolK8sVersionNotSupported"


def test_an_update_that_names_no_version_keeps_the_running_one(aks: ContainerServiceClient) -> None:
    aks.managed_clusters.begin_create_or_update(RG, "k1", cluster_model(kubernetesVersion="1.34")).result()
    again = aks.managed_clusters.begin_create_or_update(RG, "k1", cluster_model()).result()
    assert cprops(again).current_kubernetes_version == resources.KUBERNETES_VERSIONS["1.34"][-1]


def test_changing_only_the_count_reports_scaling(aks: ContainerServiceClient, cluster: Any) -> None:
    aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model(count=1)).result()
    seen: list[str] = []

    def hook(response: Any) -> None:
        r = response.http_response
        r.read()
        if r.request.method == "PUT":
            seen.append(r.json()["properties"]["provisioningState"])

    aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model(count=3), raw_response_hook=hook).result()
    aks.agent_pools.begin_create_or_update(
        RG, "c1", "p1", pool_model(count=3, nodeLabels={"team": "a"}), raw_response_hook=hook
    ).result()
    assert seen == ["Scaling", "Updating"]


def test_aks_fills_in_pool_defaults(aks: ContainerServiceClient, cluster: Any) -> None:
    pool = pprops(aks.agent_pools.begin_create_or_update(RG, "c1", "p1", pool_model()).result())
    assert pool.os_sku == "Ubuntu"
    assert pool.os_disk_size_gb == 128
    assert pool.os_disk_type == "Managed"
    assert need(pool.upgrade_settings).max_surge == "10%"


def test_a_spot_pool_carries_aks_spot_label_and_taint_in_its_own_properties(
    aks: ContainerServiceClient, cluster: Any
) -> None:
    sent = pool_model(scaleSetPriority="Spot", nodeLabels={"team": "a"}, nodeTaints=["sku=gpu:NoSchedule"])
    pool = pprops(aks.agent_pools.begin_create_or_update(RG, "c1", "spot1", sent).result())
    assert pool.node_labels == {"team": "a", "kubernetes.azure.com/scalesetpriority": "spot"}
    assert pool.node_taints == ["sku=gpu:NoSchedule", "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"]
    # Writing back what was read changes nothing (no taint added twice).
    again = pprops(
        aks.agent_pools.begin_create_or_update(
            RG,
            "c1",
            "spot1",
            pool_model(scaleSetPriority="Spot", nodeLabels=pool.node_labels, nodeTaints=pool.node_taints),
        ).result()
    )
    assert again.node_taints == pool.node_taints
