"""Services end to end on the Azure provider, against the Azure emulator: the real API,
Celery worker and beat, and the real azure-mgmt-containerservice, azure-identity and
kubernetes clients talking HTTPS to the emulated ARM, Entra and AKS API server, whose
simulated KubeRay runs the RayService and whose simulated Serve runs its applications.

One service carries the tests in file order: refused on a cloud without a GCS Redis; made on
a cloud with one (the password Secret created as a customer would), RUNNING behind its
LoadBalancer; a Serve config change in place; a new image on a new RayCluster; a version
whose application fails to import rolled back with Serve's error; deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ops.demo_azure import DEMO_CLOUD
from rayplane.providers.azure import manifests
from rayplane.providers.azure import rayservice as rsv
from tests.e2e.azure_support import EmulatedAzure, azure_stack
from tests.e2e.stack import Stack, wait_for
from tests.providers.test_azure_manifests import _strict
from tests.support.code_server import serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

E2E_REDIS_DB = 6  # 7-15 are other e2e modules'
# The applications, zipped and fetched over HTTP by the emulated Serve (``code_url``).
APPS_DIR = Path(__file__).resolve().parents[1] / "support" / "serve_apps"
CLOUD = "azure-gcs"
GCS_REDIS = {
    "address": "rediss://gcs.example:6380",
    "password_secret": "gcs-redis",
    "password_secret_namespace": "kuberay-system",
    "password_key": "password",
}
STEP = 300.0


def serve(code: str, greeting: str = "hello", *, broken: bool = False) -> dict[str, Any]:
    env = {"working_dir": code}
    apps: list[dict[str, Any]] = [
        {
            "name": "echo",
            "import_path": "echo:app",
            "route_prefix": "/echo",
            "runtime_env": env,
            "deployments": [{"name": "Echo", "user_config": {"greeting": greeting}}],
        },
        {"name": "counter", "import_path": "counter:app", "route_prefix": "/counter", "runtime_env": env},
    ]
    if broken:  # a module the emulated Serve cannot find: DEPLOY_FAILED with Ray's traceback
        apps.append(
            {"name": "broken", "import_path": "no_such_module:app", "route_prefix": "/broken", "runtime_env": env}
        )
    return {"applications": apps}


def service_body(cloud: str, code: str) -> dict[str, Any]:
    return {
        "name": "shop",
        "cloud": cloud,
        "head": {"vm_size": "Standard_D4s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 2}],
        "serve": serve(code),
        "rollout": {"health_timeout_seconds": 240},
    }


@pytest.fixture(scope="module")
def code_url() -> Iterator[str]:
    with serving(APPS_DIR, "shop.zip") as url:
        yield url


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    url = redis_url.rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}" if redis_url.startswith("redis://") else redis_url
    with azure_stack(admin_db_url, url) as s:
        yield s


@pytest.fixture(scope="module")
def azure(stack: Stack) -> EmulatedAzure:
    emulated = EmulatedAzure(stack)
    # Faster simulated Serve deploys and old-cluster deletions than KubeRay's 60 s default.
    knobs = {"serve_deploy_seconds": 1, "rayservice_requeue_seconds": 1, "rayservice_deletion_delay_seconds": 3}
    assert emulated.admin.post("/_emulator/kube/config", json=knobs).status_code == 200
    return emulated


class Svc:
    """The module's service: its id and namespace."""

    id: str = ""

    @property
    def namespace(self) -> str:
        return "rp-" + self.id.lower().replace("_", "-")


SVC = Svc()


def get(stack: Stack) -> dict[str, Any]:
    return stack.cluster(SVC.id)


def patch(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    etag = stack.request("GET", f"/v1/services/{SVC.id}").headers["ETag"]
    r = stack.request("PATCH", f"/v1/services/{SVC.id}", json=body, headers={"If-Match": etag})
    assert r.status_code == 202, r.text
    return {"op": r.headers["Operation-Location"], "body": r.json()}


def operation(stack: Stack, location: str, timeout: float = STEP) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        op = stack.request("GET", location).json()
        return dict(op) if op["status"] != "Running" else None

    return dict(wait_for(done, timeout, f"{location} to end"))


def ray_service(azure: EmulatedAzure) -> dict[str, Any]:
    return dict(azure.custom().get_namespaced_custom_object("ray.io", "v1", SVC.namespace, "rayservices", "shop"))


def active_cluster(azure: EmulatedAzure) -> str:
    return str(ray_service(azure)["status"]["activeServiceStatus"]["rayClusterName"])


def head_image(azure: EmulatedAzure) -> str:
    head = ray_service(azure)["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    return str(head["image"])


def ray_clusters(azure: EmulatedAzure) -> list[str]:
    items = azure.custom().list_namespaced_custom_object("ray.io", "v1", SVC.namespace, "rayclusters")["items"]
    return sorted(i["metadata"]["name"] for i in items)


def cloud_status(stack: Stack, name: str) -> str | None:
    for cloud in stack.request("GET", "/v1/clouds").json()["items"]:
        if cloud["name"] == name:
            return str(cloud["status"]) + (f": {cloud['status_reason']}" if cloud["status"] == "ERROR" else "")
    return None


def test_a_service_on_a_cloud_without_a_gcs_redis_is_refused(stack: Stack, code_url: str) -> None:
    r = stack.request("POST", "/v1/services", json=service_body(str(DEMO_CLOUD["name"]), code_url))
    assert r.status_code == 422, r.text
    errors = [e for e in r.json()["errors"] if e["field"] == "body.cloud"]
    assert errors, r.text
    assert "gcs_redis" in errors[0]["message"], errors


def create_password_secret(stack: Stack, azure: EmulatedAzure) -> None:
    """What a customer does on reading the service's error: ``kubectl -n kuberay-system create
    secret generic gcs-redis --from-literal=password=...`` in the AKS cluster."""

    def missing() -> list[dict[str, Any]]:
        return [e for e in stack.events(SVC.id) if e["code"] == "GcsRedisSecretMissing"]

    [first, *_] = wait_for(missing, STEP, "the service to retry with GcsRedisSecretMissing")
    assert "kuberay-system/gcs-redis" in first["reason"], first
    metadata = k8s.V1ObjectMeta(name="gcs-redis", namespace="kuberay-system")
    azure.core().create_namespaced_secret(
        "kuberay-system", k8s.V1Secret(metadata=metadata, string_data={"password": "s3"})
    )


def test_a_service_runs_behind_its_load_balancer(stack: Stack, azure: EmulatedAzure, code_url: str) -> None:
    cloud = copy.deepcopy(DEMO_CLOUD)
    cloud["name"] = CLOUD
    cloud["azure"]["gcs_redis"] = GCS_REDIS
    r = stack.request("POST", "/v1/clouds", json=cloud)
    assert r.status_code in (201, 202), r.text
    wait_for(lambda: cloud_status(stack, CLOUD) == "READY", 120, f"the {CLOUD} cloud to be READY")

    # An AKS node cannot read the control plane's disk: a local working_dir is refused.
    r = stack.request("POST", "/v1/services", json=service_body(CLOUD, str(APPS_DIR)))
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} == {
        f"body.serve.applications.{i}.runtime_env.working_dir" for i in (0, 1)
    }, r.text

    r = stack.request("POST", "/v1/services", json=service_body(CLOUD, code_url))
    assert r.status_code == 202, r.text
    SVC.id = r.json()["id"]
    create_password_secret(stack, azure)
    done = operation(stack, r.headers["Operation-Location"])
    assert done["status"] == "Succeeded", done
    svc = get(stack)
    assert (svc["state"], svc["active_version"], svc["pending_version"]) == ("RUNNING", 1, None)
    assert {(a["name"], a["status"]) for a in svc["applications"]} == {("echo", "RUNNING"), ("counter", "RUNNING")}
    assert svc["spec"]["head"]["gcs_fault_tolerance"] is True

    # The RayService validates against KubeRay v1.7.0's CRD; its head keeps the GCS in Redis.
    rs = ray_service(azure)
    validator = jsonschema.Draft7Validator(_strict(manifests.crd_schema("RayService")))
    body = {k: rs[k] for k in ("apiVersion", "kind", "spec")}
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert errors == [], errors
    ft = rs["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert ft["redisAddress"] == GCS_REDIS["address"]
    assert azure.core().read_namespaced_secret("rayplane-gcs-redis", SVC.namespace).data["password"]  # the copy

    # The endpoint is the LoadBalancer's address, as the runner reads it from the serve Service.
    lb = azure.core().read_namespaced_service("shop-serve-svc", SVC.namespace)
    assert lb.spec.type == "LoadBalancer"
    url = rsv.endpoint(azure.kube().sanitize_for_serialization(lb))
    assert url
    assert svc["endpoint_url"] == url

    def usage() -> list[dict[str, Any]]:
        items = stack.request("GET", "/v1/usage", params={"group_by": "cluster"}).json()["items"]
        return [i for i in items if i["key"] == SVC.id and i["node_hours"] > 0]

    wait_for(usage, 120, "the service's usage intervals")

    # Charts: beat's scrape reaches the service's Ray pods (in clusters KubeRay named) through
    # the API server's pod proxy.
    def charted() -> set[str] | None:
        params = {"names": "cpu_utilization_percent", "step": 5}
        series = stack.request("GET", f"/v1/services/{SVC.id}/metrics", params=params).json()["series"]
        groups = {str(s["group"]) for s in series if s["points"] and s["group"]}
        return groups if "head" in groups and len(groups) >= 2 else None

    wait_for(charted, 60, "the service's metrics through the pod proxy")


def test_a_serve_config_change_applies_in_place(stack: Stack, azure: EmulatedAzure, code_url: str) -> None:
    before = active_cluster(azure)
    change = patch(stack, {"serve": serve(code_url, "hi")})
    assert change["body"]["version"] == 1
    done = operation(stack, change["op"])
    assert done["status"] == "Succeeded", done
    svc = get(stack)
    assert (svc["state"], svc["version"], svc["active_version"]) == ("RUNNING", 1, 1)
    assert active_cluster(azure) == before  # no new RayCluster
    assert ray_clusters(azure) == [before]
    echo = next(a for a in svc["serve"]["applications"] if a["name"] == "echo")
    assert echo["deployments"][0]["user_config"] == {"greeting": "hi"}


def test_an_image_change_rolls_out_a_new_cluster(stack: Stack, azure: EmulatedAzure, code_url: str) -> None:
    old = active_cluster(azure)
    change = patch(stack, {"image": "rayproject/ray:rollout-test", "serve": serve(code_url, "v2")})
    assert change["body"]["version"] == 2
    done = operation(stack, change["op"])
    assert done["status"] == "Succeeded", done
    svc = get(stack)
    assert (svc["state"], svc["active_version"], svc["pending_version"]) == ("RUNNING", 2, None)
    new = active_cluster(azure)
    assert new != old
    assert head_image(azure) == "rayproject/ray:rollout-test"
    wait_for(lambda: ray_clusters(azure) == [new], 120, f"the old RayCluster {old} to be deleted")


def test_a_failing_version_is_rolled_back_with_the_serve_error(
    stack: Stack, azure: EmulatedAzure, code_url: str
) -> None:
    active = active_cluster(azure)
    bad = {"image": "rayproject/ray:broken-test", "serve": serve(code_url, "v3", broken=True)}
    change = patch(stack, {**bad, "rollout": {"health_timeout_seconds": 30}})
    assert change["body"]["version"] == 3
    done = operation(stack, change["op"])
    assert (done["status"], done["error_code"]) == ("Failed", "RolloutFailed"), done
    assert "no_such_module" in (done["error_message"] or ""), done
    svc = get(stack)
    assert (svc["state"], svc["active_version"], svc["pending_version"]) == ("RUNNING", 2, None)
    assert svc["spec"]["image"] == "rayproject/ray:rollout-test"  # the spec is back to what serves
    assert len(svc["serve"]["applications"]) == 2
    assert active_cluster(azure) == active
    assert head_image(azure) == "rayproject/ray:rollout-test"  # the RayService back to version 2
    # KubeRay drops the failed cluster (and may replace the active one with an identical one).
    seen: dict[str, Any] = {}

    def one_cluster() -> bool:
        seen.update(clusters=ray_clusters(azure), status=ray_service(azure)["status"])
        return bool(seen["clusters"] == [seen["status"]["activeServiceStatus"]["rayClusterName"]])

    try:
        wait_for(one_cluster, 120, "the failed version's RayCluster to be deleted")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen}") from None
    [left] = seen["clusters"]
    rc = azure.custom().get_namespaced_custom_object("ray.io", "v1", SVC.namespace, "rayclusters", left)
    assert rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"] == "rayproject/ray:rollout-test"
    svc = get(stack)
    assert (svc["state"], svc["active_version"], svc["pending_version"]) == ("RUNNING", 2, None)
    failed = [e for e in stack.events(SVC.id) if e["kind"] == "rollout_failed"]
    assert len(failed) == 1, failed
    assert "no_such_module" in failed[0]["reason"], failed


def test_delete_removes_the_rayservice_and_its_namespace(stack: Stack, azure: EmulatedAzure) -> None:
    assert stack.request("DELETE", f"/v1/services/{SVC.id}").status_code == 202
    stack.wait_state(SVC.id, "DELETED", timeout=STEP)
    namespaces = [n.metadata.name for n in azure.core().list_namespace().items]
    assert SVC.namespace not in namespaces
    with pytest.raises(ApiException) as gone:
        ray_service(azure)
    assert gone.value.status == 404
