"""Helpers for end-to-end tests on the Azure provider: a Stack with the emulated Azure
(``RAYPLANE_DEMO_AZURE=1``), and views of the emulator through the real SDKs."""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from azure.identity import ClientSecretCredential
from azure.mgmt.containerservice import ContainerServiceClient
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from ops.demo_azure import DEMO_APP_ID, DEMO_CLOUD, DEMO_SUBSCRIPTION_ID, DEMO_TENANT_ID
from ops.emulator import RAY_BACKEND_ENV
from tests.e2e.stack import Stack, wait_for
from tests.support.services import scratch_database

RG = DEMO_CLOUD["azure"]["resource_group"]
AKS = DEMO_CLOUD["azure"]["aks_cluster_name"]


@contextmanager
def azure_stack(admin_db_url: str, redis_url: str, **env: str) -> Iterator[Stack]:
    """A whole control plane with the emulated Azure cloud ``azure-demo`` READY."""
    with scratch_database(admin_db_url) as db, tempfile.TemporaryDirectory(prefix="rpa-") as tmp:
        ray_root = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))
        s = Stack(Path(tmp), db, redis_url, ray_root)
        # The emulator's simulated Ray unless a test asks for real Ray nodes (slower to start).
        defaults = {"RAYPLANE_DEMO_AZURE": "1", "RAYPLANE_LOCAL_CLOUDS": "false", RAY_BACKEND_ENV: "simulated"}
        s.env.update({**defaults, **env})
        s.start()
        try:
            wait_for(lambda: cloud_status(s) == "READY", 60, "the azure-demo cloud to be READY")
            yield s
        finally:
            s.stop()


def cloud_status(stack: Stack) -> str | None:
    for cloud in stack.request("GET", "/v1/clouds").json()["items"]:
        if cloud["name"] == "azure-demo":
            return str(cloud["status"]) + (f": {cloud['status_reason']}" if cloud["status"] == "ERROR" else "")
    return None


class EmulatedAzure:
    """The stack's emulator, seen as a customer would: ARM through azure-mgmt-containerservice,
    the cluster through the kubernetes client; plus the emulator's admin API."""

    def __init__(self, stack: Stack) -> None:
        data = stack.workdir / "data" / "azure-emulator"
        self.origin = (data / "origin").read_text().strip()
        self.ca = str(data / "ca.pem")
        cred = ClientSecretCredential(
            DEMO_TENANT_ID,
            DEMO_APP_ID,
            "emulator-secret",
            authority=self.origin.split("://", 1)[1],
            disable_instance_discovery=True,
            connection_verify=self.ca,
        )
        self.arm = ContainerServiceClient(
            cred, DEMO_SUBSCRIPTION_ID, base_url=self.origin, connection_verify=self.ca, polling_interval=0
        )
        self.admin = httpx.Client(base_url=self.origin, verify=ssl.create_default_context(cafile=self.ca), timeout=30)

    def pools(self) -> dict[str, dict[str, Any]]:
        return {str(p.name): p.as_dict() for p in self.arm.agent_pools.list(RG, AKS)}

    def rayplane_pools(self) -> dict[str, dict[str, Any]]:
        return {n: p for n, p in self.pools().items() if n.startswith("rp")}

    def kube(self) -> k8s.ApiClient:
        creds = self.arm.managed_clusters.list_cluster_user_credentials(RG, AKS)
        assert creds.kubeconfigs
        value = creds.kubeconfigs[0].value
        assert value is not None
        raw = value if isinstance(value, bytes) else base64.b64decode(value)
        return k8s_config.new_client_from_config_dict(yaml.safe_load(raw))

    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.kube())

    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.kube())

    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.kube())
