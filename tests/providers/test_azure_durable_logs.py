"""Durable logs on the emulated Azure, through the provider: ensuring a cluster makes, in the
customer's subscription, the storage account (hardened, lifecycle rule at the tenant's
retention), the container, a managed identity with a federated credential for the cluster's
service account (issuer = the AKS cluster's OIDC issuer) and "Storage Blob Data Contributor"
on the container, once (a second pass writes nothing new); the RayCluster's pods carry the
shipper; teardown removes the identity and its role assignment and keeps the account."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.storage import StorageManagementClient
from pydantic import SecretStr

from emulators.azure.kube.testing import wait_for
from emulators.azure.server import EmulatorProcess
from rayplane.providers.azure import logsink, manifests, monitors, shipper, workload
from rayplane.providers.azure.podship import ShipperConfig
from rayplane.providers.azure.provider import AzureProvider
from rayplane.providers.base import ClusterTarget, GroupTarget, NodeShape
from rayplane.settings import Settings
from tests.support.emulators import kube_knobs

APP_ID = str(uuid.uuid4())
RG = "ml"


def _target(config: dict[str, Any], cluster_id: str) -> ClusterTarget:
    shape = NodeShape("Standard_D4s_v5", 4, 16.0)
    group = GroupTarget(name="cpu", shape=shape, count=1, min_nodes=1, max_nodes=2)
    return ClusterTarget(
        cluster_id=cluster_id,
        name="logs",
        ray_version="2.52.0",
        image=None,
        head=shape,
        groups=(group,),
        cloud_config=config,
        ray_token="t" * 43,
        tenant_id="ten_1",
        log_retention_days=9,
    )


@pytest.fixture
def settings(azure_settings: Settings, emulator: EmulatorProcess) -> Settings:
    return azure_settings.model_copy(
        update={
            "azure_client_id": APP_ID,
            "azure_client_secret": SecretStr("emulator-secret"),
            "azure_arm_url": emulator.origin,
        }
    )


def _clients(emulator: EmulatorProcess, config: dict[str, Any]) -> dict[str, Any]:
    cred = ClientSecretCredential(
        config["tenant_id"],
        APP_ID,
        "emulator-secret",
        authority=emulator.authority,
        disable_instance_discovery=True,
        connection_verify=str(emulator.ca_path),
    )
    kw: dict[str, Any] = {"base_url": emulator.origin, "connection_verify": str(emulator.ca_path)}
    sub = config["subscription_id"]
    return {
        "storage": StorageManagementClient(cred, sub, **kw),
        "msi": ManagedServiceIdentityClient(cred, sub, **kw),
        "authz": AuthorizationManagementClient(cred, sub, api_version="2022-04-01", **kw),
        "aks": ContainerServiceClient(cred, sub, **kw),
    }


def test_a_cluster_gets_its_sink_identity_and_shipper_once(settings: Settings, emulator: EmulatorProcess) -> None:
    config = {
        "subscription_id": str(uuid.uuid4()),
        "resource_group": RG,
        "region": "eastus2",
        "tenant_id": str(uuid.uuid4()),
        "auth_mode": "app_consent",
        "aks_mode": "managed",
        "aks_cluster_name": "rayplane",
    }
    before = emulator.request_json("GET", "/_emulator/arm/config")
    emulator.request_json("PUT", "/_emulator/arm/config", {"operation_seconds": 0.2, "retry_after": 0})
    knobs = contextlib.ExitStack()
    try:
        knobs.enter_context(kube_knobs(emulator, node_boot_seconds=0.3))
        provider = AzureProvider(settings)
        target = _target(config, "clu_logs1")
        state: dict[str, Any] = {}

        def applied() -> bool:
            nonlocal state
            state = provider.ensure(target, state).state
            return bool(state.get("applied"))

        wait_for(applied, timeout=60, what="the RayCluster applied")
        c = _clients(emulator, config)
        namespace = state["namespace"]

        # The account: hardened, with the retention rule; one container.
        name = logsink.account_name(config["subscription_id"], RG, "eastus2")
        account = c["storage"].storage_accounts.get_properties(RG, name).as_dict()
        props = account["properties"]
        assert (props["allowSharedKeyAccess"], props["minimumTlsVersion"]) == (False, "TLS1_2")
        assert props["supportsHttpsTrafficOnly"] is True
        assert account["kind"] == "StorageV2"
        assert c["storage"].blob_containers.get(RG, name, logsink.CONTAINER).name == logsink.CONTAINER
        policy = c["storage"].management_policies.get(RG, name, "default").as_dict()
        rule = policy["properties"]["policy"]["rules"][0]
        assert rule["definition"]["actions"]["baseBlob"]["delete"] == {"daysAfterModificationGreaterThan": 9}

        # The identity, its federated credential (AKS's issuer, the namespace's service account)
        # and one role assignment on the container.
        identity = c["msi"].user_assigned_identities.get(RG, workload.identity_name(namespace))
        fics = list(c["msi"].federated_identity_credentials.list(RG, workload.identity_name(namespace)))
        issuer = c["aks"].managed_clusters.get(RG, "rayplane").oidc_issuer_profile.issuer_url
        assert [(f.issuer, f.subject, f.audiences) for f in fics] == [
            (issuer, f"system:serviceaccount:{namespace}:{workload.SERVICE_ACCOUNT}", ["api://AzureADTokenExchange"])
        ]
        scope = f"{account['id']}/blobServices/default/containers/{logsink.CONTAINER}"
        granted = [
            a
            for a in c["authz"].role_assignments.list_for_scope(
                scope, filter=f"principalId eq '{identity.principal_id}'"
            )
            if a.scope == scope
        ]
        assert [a.role_definition_id.rsplit("/", 1)[-1] for a in granted] == [workload.BLOB_DATA_CONTRIBUTOR]
        assert state["logs"]["client_id"] == identity.client_id

        # The pods' objects: service account bound to the identity, the shipper's typed config.
        kube = provider.kube_for(config)
        sa = kube.get("v1", "ServiceAccount", workload.SERVICE_ACCOUNT, namespace)
        assert sa is not None
        assert sa["metadata"]["annotations"][shipper.CLIENT_ID_ANNOTATION] == identity.client_id
        cm = kube.get("v1", "ConfigMap", shipper.CONFIG_MAP, namespace)
        assert cm is not None
        shipped = ShipperConfig.from_json(cm["data"][shipper.CONFIG_KEY])
        assert (shipped.account_url, shipped.container) == (props["primaryEndpoints"]["blob"], logsink.CONTAINER)
        assert (shipped.tenant, shipped.cluster) == ("ten_1", "clu_logs1")
        rc = kube.get("ray.io/v1", "RayCluster", state["name"], namespace)
        assert rc is not None
        for template in [rc["spec"]["headGroupSpec"]["template"], rc["spec"]["workerGroupSpecs"][0]["template"]]:
            assert template["metadata"]["labels"][shipper.USE_LABEL] == "true"
            assert template["spec"]["serviceAccountName"] == workload.SERVICE_ACCOUNT
            assert [x["name"] for x in template["spec"]["containers"]][-1] == shipper.CONTAINER
        pods = wait_for(
            lambda: [p for p in kube.pods(namespace, f"ray.io/cluster={state['name']}") if p["spec"].get("containers")],
            timeout=30,
            what="the RayCluster's pods",
        )
        # The sidecar's requests come off Ray's: the pods are still scheduled on their nodes.
        # (Reconciling on meanwhile, as the workers do: the pool's creation settles with it.)
        wait_for(
            lambda: (
                applied() and all(p["status"].get("phase") == "Running" for p in kube.pods(namespace, "ray.io/cluster"))
            ),
            timeout=90,
            what="the pods running",
        )
        for pod in pods:
            assert pod["metadata"]["labels"][shipper.USE_LABEL] == "true"
            assert shipper.CONTAINER in [x["name"] for x in pod["spec"]["containers"]]

        # A second pass writes nothing new: same identity, one credential, one assignment.
        counts = _counts(emulator)
        state = provider.ensure(target, state).state
        assert _writes(emulator) == _writes_from(counts)
        assert c["msi"].user_assigned_identities.get(RG, workload.identity_name(namespace)).client_id == (
            identity.client_id
        )

        # Managed Prometheus: no PodMonitor until its CRD exists (the addon installs it), then one
        # selecting the cluster's pods and scraping Ray's metrics port.
        assert kube.get(monitors.GROUP_VERSION, "PodMonitor", f"{state['name']}-ray", namespace) is None
        kube.apply(_podmonitor_crd())
        monitors._missing.clear()  # the absence seen above is remembered for 10 minutes
        state = provider.ensure(target, state).state
        monitor = kube.get(monitors.GROUP_VERSION, "PodMonitor", f"{state['name']}-ray", namespace)
        assert monitor is not None
        assert monitor["spec"]["selector"] == {"matchLabels": {"ray.io/cluster": state["name"]}}
        assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
        pod_ports = {p["name"] for c in pods[0]["spec"]["containers"] for p in c.get("ports", [])}
        assert "metrics" in pod_ports

        # Teardown: identity (and its credential) and the role assignment go; the account stays.
        wait_for(lambda: not provider.teardown(target, state).state, timeout=30, what="the teardown")
        with pytest.raises(ResourceNotFoundError):
            c["msi"].user_assigned_identities.get(RG, workload.identity_name(namespace))
        assert [a for a in c["authz"].role_assignments.list_for_scope(scope) if a.scope == scope] == []
        assert c["storage"].storage_accounts.get_properties(RG, name).name == name
        assert manifests.resource_name(target)[0] == namespace
    finally:
        knobs.close()
        emulator.request_json("PUT", "/_emulator/arm/config", before)


def _counts(emulator: EmulatorProcess) -> dict[str, Any]:
    return dict(emulator.request_json("GET", "/_emulator/arm/requests"))


def _writes_from(counts: dict[str, Any]) -> int:
    return sum(int(v) for k, v in counts.get("by_method", {}).items() if k in ("PUT", "POST", "DELETE"))


def _writes(emulator: EmulatorProcess) -> int:
    return _writes_from(_counts(emulator))


def _podmonitor_crd() -> dict[str, Any]:
    """The CRD managed Prometheus installs (its schema kept open here: only the kind matters)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": monitors.CRD},
        "spec": {
            "group": "azmonitoring.coreos.com",
            "names": {
                "kind": "PodMonitor",
                "plural": "podmonitors",
                "singular": "podmonitor",
                "listKind": "PodMonitorList",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
