"""Client-side helpers for tests that drive an emulated AKS cluster's Kubernetes API.

Usage::

    emu = EmulatorProcess(tmp_path / "azure").start()
    cluster = KubeTestCluster.register(emu, "sub", "rg", "aks1")      # token + kubeconfig
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    cluster.add_pool("cpu", vcpus=4, memory_gib=16, autoscale=True, max_count=3)
    cluster.http().get("/api/v1/namespaces/default/services/x-head-svc:8265/proxy/api/version")

    env = KubeRayEnv(emu, crd)            # a cluster with the RayCluster CRD, a system pool, KubeRay
    env.cluster.add_pool("cpu", autoscale=True, max_count=3)
    env.create(small_raycluster("rc"))
    env.wait_ready("rc", workers=1)

Everything goes through the emulator's HTTP surface (``/_emulator/kube/...`` for the test
controls), so these helpers work against a subprocess as Rayplane's code would.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kubernetes
import yaml

from emulators.azure.server import EmulatorProcess

T = TypeVar("T")
Obj = dict[str, Any]


def wait_for(predicate: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate!r}; last value {last!r}")


@dataclass
class KubeTestCluster:
    """One registered cluster of an emulator: its key, server URL, token and kubeconfig."""

    emulator: EmulatorProcess
    key: str
    server: str
    token: str
    kubeconfig: dict[str, Any]

    @classmethod
    def register(
        cls, emulator: EmulatorProcess, subscription: str, resource_group: str, name: str, *, role: str = "user"
    ) -> KubeTestCluster:
        body = {"subscription": subscription, "resourceGroup": resource_group, "name": name, "role": role}
        answer = emulator.request_json("POST", "/_emulator/kube/clusters", body)
        return cls(emulator, answer["cluster"], answer["server"], answer["token"], answer["kubeconfig"])

    def api_client(self) -> kubernetes.client.ApiClient:
        """A real ``kubernetes`` client built from the kubeconfig (fresh Configuration)."""
        return kubernetes.config.new_client_from_config_dict(self.kubeconfig)

    def http(self, timeout: float = 30.0) -> httpx.Client:
        """httpx against the API server URL with the kubeconfig's bearer token."""
        return httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.emulator.ssl_context() or False,
            timeout=timeout,
        )

    def add_pool(self, name: str, **spec: Any) -> dict[str, Any]:
        """``Fleet.upsert_pool`` through the admin route (fields of ``PoolRequest``)."""
        pool: dict[str, Any] = self.emulator.request_json(
            "POST", "/_emulator/kube/pools", {"cluster": self.key, "name": name, **spec}
        )
        return pool

    def evict(self, pool: str, count: int = 1) -> list[str]:
        body = {"cluster": self.key, "pool": pool, "count": count}
        evicted: list[str] = self.emulator.request_json("POST", "/_emulator/kube/evict", body)["evicted"]
        return evicted


class KubeRayEnv:
    """A fresh emulated AKS cluster with the RayCluster CRD ``crd`` installed, a 2-vCPU System
    pool ``system`` and the KubeRay operator (unless told otherwise), and typed clients."""

    def __init__(
        self, emu: EmulatorProcess, crd: dict[str, Any], *, operator: bool = True, system_pool: bool = True
    ) -> None:
        self.cluster = KubeTestCluster.register(emu, str(uuid.uuid4()), "rg", f"aks-{uuid.uuid4().hex[:6]}")
        client = self.cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(client)
        self.apps = kubernetes.client.AppsV1Api(client)
        self.co = kubernetes.client.CustomObjectsApi(client)
        with self.cluster.http() as http:
            r = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
            assert r.status_code == 201, r.text
        if system_pool:
            self.cluster.add_pool("system", mode="System", count=1, vcpus=2, memory_gib=8)
        if operator:
            self.install_operator()

    def install_operator(self) -> None:
        self.core.create_namespace({"metadata": {"name": "kuberay-system"}})
        self.apps.create_namespaced_deployment("kuberay-system", operator_deployment())

    def install_device_plugin(self) -> None:
        """The NVIDIA device plugin DaemonSet, so GPU nodes advertise ``nvidia.com/gpu``."""
        self.apps.create_namespaced_daemon_set("kube-system", device_plugin_daemonset())

    def rc(self, name: str) -> Obj:
        obj: Obj = self.co.get_namespaced_custom_object("ray.io", "v1", "default", "rayclusters", name)
        return obj

    def create(self, body: Obj) -> Obj:
        obj: Obj = self.co.create_namespaced_custom_object("ray.io", "v1", "default", "rayclusters", body)
        return obj

    def patch(self, name: str, body: Obj) -> Obj:
        obj: Obj = self.co.patch_namespaced_custom_object("ray.io", "v1", "default", "rayclusters", name, body)
        return obj

    def pods(self, name: str, extra: str = "") -> list[Any]:
        selector = f"ray.io/cluster={name}" + (f",{extra}" if extra else "")
        return list(self.core.list_namespaced_pod("default", label_selector=selector).items)

    def wait_ready(self, name: str, workers: int, timeout: float = 20.0) -> Obj:
        def ready() -> Obj | None:
            rc = self.rc(name)
            status = rc.get("status") or {}
            ok = condition(rc, "RayClusterProvisioned") == "True" and condition(rc, "HeadPodReady") == "True"
            return rc if ok and status.get("readyWorkerReplicas", 0) == workers else None

        return wait_for(ready, timeout=timeout, what=f"{name} ready with {workers} workers")


def condition(rc: Obj, kind: str) -> str | None:
    for c in (rc.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


def small_raycluster(
    name: str,
    *,
    workers: int = 1,
    pool: str | None = "cpu",
    head_pool: str | None = "system",
    tolerations: list[Obj] | None = None,
    worker_resources: Obj | None = None,
    max_replicas: int = 5,
) -> Obj:
    """A RayCluster with one worker group ``workers``: head and workers request 500m/1Gi
    (limits 1 CPU/1Gi), pinned with ``nodeSelector agentpool=<pool>`` unless ``None``."""

    def pod(resources: Obj, selector: str | None, tolerate: list[Obj] | None, container: str) -> Obj:
        spec: Obj = {"containers": [{"name": container, "image": "rayproject/ray:2.52.0", "resources": resources}]}
        if selector:
            spec["nodeSelector"] = {"agentpool": selector}
        if tolerate:
            spec["tolerations"] = tolerate
        return {"spec": spec}

    small = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    head = pod(small, head_pool, None, "ray-head")
    head["spec"]["containers"][0]["ports"] = [{"containerPort": 8265, "name": "dashboard"}]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name},
        "spec": {
            "rayVersion": "2.52.0",
            "headGroupSpec": {"rayStartParams": {}, "template": head},
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": workers,
                    "minReplicas": 0,
                    "maxReplicas": max_replicas,
                    "rayStartParams": {},
                    "template": pod(worker_resources or small, pool, tolerations, "ray-worker"),
                }
            ],
        },
    }


def load_yaml(path: str | os.PathLike[str]) -> list[Any]:
    """Every document of a YAML file, with libyaml when present (a 1 MB CRD parses in well
    under a second instead of several)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(Path(path).read_text(), Loader=loader) if d]


def configure(emulator: EmulatorProcess, **knobs: Any) -> dict[str, Any]:
    """``POST /_emulator/kube/config``; the whole new config."""
    config: dict[str, Any] = emulator.request_json("POST", "/_emulator/kube/config", knobs)
    return config


def operator_deployment(
    namespace: str = "kuberay-system", image: str = "quay.io/kuberay/operator:v1.7.0"
) -> dict[str, Any]:
    """A minimal KubeRay operator Deployment (what the Helm chart's Deployment amounts to here)."""
    labels = {"app.kubernetes.io/name": "kuberay-operator"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "kuberay-operator", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "kuberay-operator",
                    "containers": [
                        {
                            "name": "kuberay-operator",
                            "image": image,
                            "command": ["/manager"],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "512Mi"},
                                "limits": {"cpu": "100m", "memory": "512Mi"},
                            },
                        }
                    ],
                },
            },
        },
    }


DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"


def device_plugin_daemonset(tolerations: list[Obj] | None = None) -> dict[str, Any]:
    """The NVIDIA device plugin DaemonSet of AKS's "Use GPUs" guide (its name, label, image,
    and a toleration of every ``NoSchedule`` taint unless ``tolerations`` are given)."""
    labels = {"name": "nvidia-device-plugin-ds"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "tolerations": tolerations if tolerations is not None else [{"operator": "Exists"}],
                    "containers": [
                        {"name": "nvidia-device-plugin-ctr", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.2"}
                    ],
                },
            },
        },
    }


def gateway_api_crds() -> list[dict[str, Any]]:
    """Minimal Gateway API CRDs (``gateways`` and ``httproutes.gateway.networking.k8s.io``,
    v1, schemas that keep every field): what a RayService's incremental upgrade needs
    installed, as the real ones would be by a Gateway implementation."""

    def crd(kind: str, plural: str) -> dict[str, Any]:
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.gateway.networking.k8s.io"},
            "spec": {
                "group": "gateway.networking.k8s.io",
                "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": schema},
                        "subresources": {"status": {}},
                    }
                ],
            },
        }

    return [crd("Gateway", "gateways"), crd("HTTPRoute", "httproutes")]
