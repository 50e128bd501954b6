"""Helpers of the RayService tests (``tests/emulators/test_kube_rayservice*.py``): an
emulated AKS cluster with the RayCluster and RayService CRDs (and, if asked, minimal Gateway
API CRDs), KubeRay, a ``cpu`` pool, and RayService bodies whose Serve application ``fruit``
lives in a local ``working_dir``. For the provider's tests (``tests/providers/
test_azure_rayservice.py``, ``test_azure_service_runner.py``): a service's cluster spec and
target, and its Serve config (applications ``fruit`` and ``veg``)."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import yaml

from emulators.azure.kube.testing import KubeRayEnv, gateway_api_crds, load_yaml, small_raycluster, wait_for
from emulators.azure.server import EmulatorProcess
from rayplane.clusters import planning
from rayplane.clusters.serve import ServeSpec
from rayplane.clusters.spec import ClusterSpec
from rayplane.providers.base import ClusterTarget

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
Obj = dict[str, Any]
RS = ("ray.io", "v1", "default", "rayservices")


@functools.cache
def _crds() -> tuple[str, str]:
    return (
        json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0]),
        json.dumps(load_yaml(KUBERAY / "ray.io_rayservices.yaml")[0]),
    )


class Env(KubeRayEnv):
    def __init__(self, emu: EmulatorProcess, *, gateway: bool = False) -> None:
        rc_crd, rs_crd = _crds()
        super().__init__(emu, json.loads(rc_crd))
        with self.cluster.http() as http:
            for crd in [json.loads(rs_crd), *(gateway_api_crds() if gateway else [])]:
                r = http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
                assert r.status_code == 201, r.text
        self.cluster.add_pool("cpu", autoscale=True, min_count=0, max_count=4, vcpus=4, memory_gib=16)

    def rs(self, name: str) -> Obj:
        obj: Obj = self.co.get_namespaced_custom_object(*RS, name)
        return obj

    def create_rs(self, body: Obj) -> Obj:
        obj: Obj = self.co.create_namespaced_custom_object(*RS, body)
        return obj

    def patch_rs(self, name: str, body: Obj) -> Obj:
        obj: Obj = self.co.patch_namespaced_custom_object(*RS, name, body)
        return obj

    def clusters(self) -> list[str]:
        items = self.co.list_namespaced_custom_object("ray.io", "v1", "default", "rayclusters")["items"]
        return sorted(i["metadata"]["name"] for i in items)

    def wait_ready(self, name: str, timeout: float = 30.0) -> Obj:  # type: ignore[override]
        def ready() -> Obj | None:
            rs = self.rs(name)
            status = rs.get("status") or {}
            # (Ready alone may come first: with an incremental upgrade the pending cluster's
            # endpoints count before it is promoted, as in KubeRay.)
            ok = cond(rs, "Ready") == "True" and cond(rs, "UpgradeInProgress") == "False"
            ok = ok and bool((status.get("activeServiceStatus") or {}).get("rayClusterName"))
            return rs if ok and status.get("observedGeneration") == rs["metadata"]["generation"] else None

        return wait_for(ready, timeout=timeout, what=f"{name} Ready")

    def events(self, name: str) -> list[Any]:
        return list(self.core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items)


def cond(obj: Obj, kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


def serve_config(app_dir: Path, *apps: tuple[str, str]) -> str:
    return yaml.safe_dump(
        {
            "applications": [
                {
                    "name": name,
                    "import_path": path,
                    "route_prefix": f"/{name}",
                    "runtime_env": {"working_dir": str(app_dir)},
                    "deployments": [{"name": f"{name.title()}Stand", "num_replicas": 1}],
                }
                for name, path in apps
            ]
        }
    )


def rayservice(name: str, app_dir: Path, *, serve: str | None = None, **spec: Any) -> Obj:
    cluster = small_raycluster("x", pool=None, head_pool="cpu")["spec"]
    cluster["workerGroupSpecs"] = []
    ports = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    ports.append({"containerPort": 8000, "name": "serve"})
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {
            "serveConfigV2": serve or serve_config(app_dir, ("fruit", "fruit:app")),
            "rayClusterDeletionDelaySeconds": 1,
            "rayClusterConfig": cluster,
            **spec,
        },
    }


def new_env_var(rs: Obj, value: str) -> Obj:
    """A ``rayClusterConfig`` that differs from ``rs``'s by an env var of the head container."""
    cluster: Obj = copy.deepcopy(rs["spec"]["rayClusterConfig"])
    cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": value}]
    return cluster


def selector(env: Env, name: str) -> dict[str, str]:
    return dict(env.core.read_namespaced_service(name, "default").spec.selector)


SERVICE_SPEC: Obj = {
    "ray_version": "2.52.0",
    "head": {"vm_size": "Standard_D4s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 2}],
}


def service_target(cluster_id: str, cloud: Obj, spec: Obj = SERVICE_SPEC) -> ClusterTarget:
    """The target of the service ``shop`` (cluster id ``cluster_id``) on a cloud of that config."""
    typed = ClusterSpec.from_json(spec)
    return planning.cluster_target(
        cluster_id, "shop", typed, planning.group_targets(typed, {}), cloud, ray_token="t" * 43
    )


def serve_spec(working_dir: str = "/srv/app", import_path: str = "fruit:app") -> ServeSpec:
    """Applications ``fruit`` and ``veg`` at ``/fruit`` and ``/veg``, both from ``import_path``."""
    return ServeSpec.from_json(
        {
            "applications": [
                {
                    "name": name,
                    "import_path": import_path,
                    "route_prefix": f"/{name}",
                    "runtime_env": {"working_dir": working_dir},
                    "deployments": [{"name": f"{name.title()}Stand", "num_replicas": 1}],
                }
                for name in ("fruit", "veg")
            ]
        }
    )
