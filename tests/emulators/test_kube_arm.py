"""The contract between the ARM and Kubernetes surfaces: the kubeconfig ARM hands out reaches the
cluster's API server, agent pools ARM creates are the nodes pods land on (and the autoscaler
grows them), and deleting the managed cluster drops its Kubernetes objects."""

from __future__ import annotations

import uuid
from pathlib import Path

import kubernetes
import yaml
from azure.identity import ClientSecretCredential
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as m

from emulators.azure.kube.testing import condition, load_yaml, operator_deployment, small_raycluster, wait_for
from emulators.azure.server import EmulatorProcess

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
SPOT = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}


def _aks(emu: EmulatorProcess, subscription: str) -> ContainerServiceClient:
    credential = ClientSecretCredential(
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        "emulator-secret",
        authority=emu.authority,
        disable_instance_discovery=True,
        connection_verify=str(emu.ca_path),
    )
    return ContainerServiceClient(
        credential, subscription, base_url=emu.origin, connection_verify=str(emu.ca_path), polling_interval=0.05
    )


def test_arm_kubeconfig_pools_and_cluster_deletion(emulator: EmulatorProcess) -> None:
    aks = _aks(emulator, str(uuid.uuid4()))
    system = {"name": "system", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}
    body = {"location": "eastus", "properties": {"dnsPrefix": "rp", "agentPoolProfiles": [system]}}
    aks.managed_clusters.begin_create_or_update("rg", "c1", m.ManagedCluster(body)).result()
    spot = {
        "vmSize": "Standard_D4s_v5",
        "mode": "User",
        "count": 0,
        "scaleSetPriority": "Spot",
        "scaleSetEvictionPolicy": "Delete",
        "spotMaxPrice": -1,
        "enableAutoScaling": True,
        "minCount": 0,
        "maxCount": 3,
    }
    aks.agent_pools.begin_create_or_update("rg", "c1", "spot", m.AgentPool({"properties": spot})).result()
    credentials = aks.managed_clusters.list_cluster_user_credentials("rg", "c1")
    assert credentials.kubeconfigs
    config = yaml.safe_load(credentials.kubeconfigs[0].value or "")
    api = kubernetes.config.new_client_from_config_dict(config)
    core = kubernetes.client.CoreV1Api(api)
    assert [n.metadata.labels["agentpool"] for n in core.list_node().items] == ["system"]

    # Plain call_api: the typed client spends seconds turning a 1 MB CRD back into models.
    _, code, _ = api.call_api(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "POST",
        body=load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0],
        auth_settings=["BearerToken"],
        header_params={"Content-Type": "application/json"},
        _preload_content=False,
    )
    assert code == 201
    core.create_namespace({"metadata": {"name": "kuberay-system"}})
    kubernetes.client.AppsV1Api(api).create_namespaced_deployment("kuberay-system", operator_deployment())
    co = kubernetes.client.CustomObjectsApi(api)
    rc = small_raycluster("rc", pool="spot", head_pool="system", tolerations=[SPOT])
    co.create_namespaced_custom_object("ray.io", "v1", "default", "rayclusters", rc)

    def provisioned() -> dict[str, object] | None:
        obj: dict[str, object] = co.get_namespaced_custom_object("ray.io", "v1", "default", "rayclusters", "rc")
        return obj if condition(obj, "RayClusterProvisioned") == "True" else None

    wait_for(provisioned, timeout=30, what="the RayCluster on the ARM-made spot pool")
    pool = aks.agent_pools.get("rg", "c1", "spot")
    assert pool.properties is not None
    assert pool.properties.count == 1  # the autoscaler grew the pool for the worker

    aks.managed_clusters.begin_delete("rg", "c1").result()
    clusters = emulator.request_json("GET", "/_emulator/kube/clusters")["clusters"]
    assert all(not c["cluster"].endswith("/managedclusters/c1") for c in clusters)


def test_api_server_and_kubelets_report_the_version_arm_resolved(emulator: EmulatorProcess) -> None:
    # `kubectl version` and node kubeletVersion follow the cluster's currentKubernetesVersion
    # ("1.32" runs the newest 1.32 patch), not a fixed version.
    aks = _aks(emulator, str(uuid.uuid4()))
    system = {"name": "system", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}
    body = {
        "location": "eastus",
        "properties": {"dnsPrefix": "rp", "kubernetesVersion": "1.32", "agentPoolProfiles": [system]},
    }
    created = aks.managed_clusters.begin_create_or_update("rg", "v1", m.ManagedCluster(body)).result()
    current = created.properties.current_kubernetes_version if created.properties else None
    assert current is not None
    assert current.startswith("1.32.")
    kubeconfigs = aks.managed_clusters.list_cluster_user_credentials("rg", "v1").kubeconfigs or []
    config = yaml.safe_load(kubeconfigs[0].value or "")
    api = kubernetes.config.new_client_from_config_dict(config)
    version = kubernetes.client.VersionApi(api).get_code()
    assert (version.git_version, version.major, version.minor) == (f"v{current}", "1", "32")
    nodes = kubernetes.client.CoreV1Api(api).list_node().items
    assert [n.status.node_info.kubelet_version for n in nodes] == [f"v{current}"]
