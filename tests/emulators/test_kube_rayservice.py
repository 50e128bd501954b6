"""The simulated KubeRay RayService controller of an emulated AKS cluster, driven by the real
``kubernetes`` client: a RayService comes up Ready on a RayCluster of its own, takes Serve
config changes in place, upgrades to a new cluster (blue/green, or incrementally through a
Gateway API HTTPRoute), keeps serving from the old cluster when the new one's applications
fail, and survives losing its head with GCS fault tolerance."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from emulators.azure.kube.testing import (
    KubeRayEnv,
    gateway_api_crds,
    load_yaml,
    small_raycluster,
    wait_for,
)
from emulators.azure.server import EmulatorProcess
from tests.support.emulators import kube_knobs

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
Obj = dict[str, Any]
RS = ("ray.io", "v1", "default", "rayservices")


@functools.cache
def _crds() -> tuple[str, str]:
    return (
        json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0]),
        json.dumps(load_yaml(KUBERAY / "ray.io_rayservices.yaml")[0]),
    )


@pytest.fixture(scope="module", autouse=True)
def fast(emulator: EmulatorProcess) -> Iterator[None]:
    knobs = {"node_boot_seconds": 0.3, "serve_deploy_seconds": 0.3, "rayservice_requeue_seconds": 0.2}
    with kube_knobs(emulator, **knobs):
        yield


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Serve application's ``working_dir``: a local directory with the module ``fruit``."""
    path = tmp_path_factory.mktemp("serve_app")
    (path / "fruit.py").write_text("def app(args):\n    return None\n")
    return path


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
            ok = _cond(rs, "Ready") == "True" and _cond(rs, "UpgradeInProgress") == "False"
            ok = ok and bool((status.get("activeServiceStatus") or {}).get("rayClusterName"))
            return rs if ok and status.get("observedGeneration") == rs["metadata"]["generation"] else None

        return wait_for(ready, timeout=timeout, what=f"{name} Ready")

    def events(self, name: str) -> list[Any]:
        return list(self.core.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items)


def _cond(obj: Obj, kind: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


def _serve_config(app_dir: Path, *apps: tuple[str, str]) -> str:
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
            "serveConfigV2": serve or _serve_config(app_dir, ("fruit", "fruit:app")),
            "rayClusterDeletionDelaySeconds": 1,
            "rayClusterConfig": cluster,
            **spec,
        },
    }


def _new_env_var(rs: Obj, value: str) -> Obj:
    """A ``rayClusterConfig`` that differs from ``rs``'s by an env var of the head container."""
    cluster: Obj = copy.deepcopy(rs["spec"]["rayClusterConfig"])
    cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "VERSION", "value": value}]
    return cluster


def _selector(env: Env, name: str) -> dict[str, str]:
    return dict(env.core.read_namespaced_service(name, "default").spec.selector)


def test_a_rayservice_comes_up_ready_on_a_raycluster_of_its_own(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator)
    dns = {"service.beta.kubernetes.io/azure-dns-label-name": "svc"}
    body = rayservice("svc", app_dir, serveService={"metadata": {"annotations": dns}, "spec": {"type": "LoadBalancer"}})
    env.create_rs(body)
    rs = env.wait_ready("svc")
    status = rs["status"]
    active = status["activeServiceStatus"]["rayClusterName"]
    assert re.fullmatch(r"svc-[bcdfghjklmnpqrstvwxz2456789]{5}", active)
    assert env.clusters() == [active]
    assert status["serviceStatus"] == "Running"
    assert status["numServeEndpoints"] == 1
    assert status["observedGeneration"] == 1
    assert status["lastUpdateTime"]
    assert status["pendingServiceStatus"] == {}
    fruit = status["activeServiceStatus"]["applicationStatuses"]["fruit"]
    assert fruit == {"status": "RUNNING", "serveDeploymentStatuses": {"FruitStand": {"status": "HEALTHY"}}}
    assert status["activeServiceStatus"]["rayClusterStatus"]["state"] == "ready"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == (
        "NonZeroServeEndpoints",
        "Number of serve endpoints is greater than 0",
    )
    upgrade = next(c for c in status["conditions"] if c["type"] == "UpgradeInProgress")
    assert upgrade["reason"] == "NoPendingCluster"
    assert rs["metadata"]["finalizers"] == ["ray.io/rayservice-finalizer"]

    rc = env.rc(active)
    assert rc["metadata"]["ownerReferences"][0]["kind"] == "RayService"
    assert rc["metadata"]["labels"]["ray.io/originated-from-cr-name"] == "svc"
    assert rc["metadata"]["labels"]["ray.io/originated-from-crd"] == "RayService"
    assert rc["metadata"]["annotations"]["ray.io/kuberay-version"] == "v1.7.0"
    serve = env.core.read_namespaced_service("svc-serve-svc", "default")
    assert serve.spec.selector == {"ray.io/cluster": active, "ray.io/serve": "true"}
    assert [(p.name, p.port) for p in serve.spec.ports] == [("serve", 8000)]
    assert serve.spec.type == "LoadBalancer"
    assert serve.status.load_balancer.ingress[0].ip
    assert serve.metadata.owner_references[0].kind == "RayService"
    assert serve.metadata.annotations == dns
    head_svc = env.core.read_namespaced_service("svc-head-svc", "default")
    assert head_svc.spec.selector == {"ray.io/cluster": active, "ray.io/node-type": "head"}
    assert (head_svc.spec.type, head_svc.spec.cluster_ip) == ("ClusterIP", "None")
    head = env.pods(active, "ray.io/node-type=head")[0]
    assert head.metadata.labels["ray.io/serve"] == "true"

    # Ray Serve's REST API on the dashboard, through the RayService's head service.
    with env.cluster.http() as http:
        r = http.get("/api/v1/namespaces/default/services/svc-head-svc:dashboard/proxy/api/serve/applications/")
    assert r.status_code == 200, r.text
    details = r.json()
    assert details["deploy_mode"] == "MULTI_APP"
    assert details["http_options"]["port"] == 8000
    assert details["controller_info"]["actor_name"] == "SERVE_CONTROLLER_ACTOR"
    assert next(iter(details["proxies"].values()))["status"] == "HEALTHY"
    app = details["applications"]["fruit"]
    assert (app["status"], app["route_prefix"], app["message"]) == ("RUNNING", "/fruit", "")
    stand = app["deployments"]["FruitStand"]
    assert (stand["status"], stand["status_trigger"]) == ("HEALTHY", "CONFIG_UPDATE_COMPLETED")
    assert stand["replica_states"] == {"RUNNING": 1}

    reasons = {e.reason for e in env.events("svc")}
    assert {"CreatedRayCluster", "CreatedService", "UpdatedServeApplications", "UpdatedHeadPodServeLabel"} <= reasons
    assert all(e.source.component == "rayservice-controller" for e in env.events("svc"))

    env.co.delete_namespaced_custom_object(*RS, "svc")
    assert env.clusters() == []


def test_a_serve_config_change_is_applied_in_place(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator)
    env.create_rs(rayservice("svc", app_dir))
    active = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    env.patch_rs(
        "svc", {"spec": {"serveConfigV2": _serve_config(app_dir, ("fruit", "fruit:app"), ("veg", "fruit:app"))}}
    )

    def both_running() -> Obj | None:
        rs = env.rs("svc")
        apps = (rs["status"].get("activeServiceStatus") or {}).get("applicationStatuses") or {}
        return rs if {a: s.get("status") for a, s in apps.items()} == {"fruit": "RUNNING", "veg": "RUNNING"} else None

    rs = wait_for(both_running, what="both applications RUNNING")
    assert rs["status"]["activeServiceStatus"]["rayClusterName"] == active
    assert rs["status"]["pendingServiceStatus"] == {}
    assert _cond(rs, "UpgradeInProgress") == "False"
    assert env.clusters() == [active]
    assert _selector(env, "svc-serve-svc")["ray.io/cluster"] == active


def test_a_cluster_change_upgrades_to_a_new_cluster_and_drops_the_old(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator)
    rs = env.create_rs(rayservice("svc", app_dir))
    old = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    env.patch_rs("svc", {"spec": {"rayClusterConfig": _new_env_var(rs, "2")}})

    def pending() -> str | None:
        status = env.rs("svc")["status"]
        return (status.get("pendingServiceStatus") or {}).get("rayClusterName")

    new = wait_for(pending, what="a pending cluster")
    assert new != old
    assert new.startswith("svc-")
    assert _cond(env.rs("svc"), "UpgradeInProgress") == "True"
    assert _selector(env, "svc-serve-svc")["ray.io/cluster"] == old  # no switch before RUNNING

    switched = wait_for(
        lambda: env.rs("svc")["status"]["activeServiceStatus"].get("rayClusterName") == new, what="the switch"
    )
    assert switched
    assert _selector(env, "svc-serve-svc")["ray.io/cluster"] == new
    assert _selector(env, "svc-head-svc")["ray.io/cluster"] == new
    wait_for(lambda: env.clusters() == [new], what="the old cluster deleted after the delay")
    rs = env.wait_ready("svc")
    assert rs["status"]["activeServiceStatus"]["applicationStatuses"]["fruit"]["status"] == "RUNNING"
    assert env.rc(new)["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "2"
    reasons = [e.reason for e in env.events("svc")]
    assert "DeletedRayCluster" in reasons
    assert "UpdatedService" in reasons


def test_an_upgrade_whose_applications_fail_keeps_serving_from_the_old_cluster(
    emulator: EmulatorProcess, app_dir: Path
) -> None:
    env = Env(emulator)
    rs = env.create_rs(rayservice("svc", app_dir))
    old = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    bad = _serve_config(app_dir, ("fruit", "nosuchmodule.graph:app"))
    env.patch_rs("svc", {"spec": {"rayClusterConfig": _new_env_var(rs, "2"), "serveConfigV2": bad}})

    def failed() -> Obj | None:
        status = env.rs("svc")["status"]
        apps = (status.get("pendingServiceStatus") or {}).get("applicationStatuses") or {}
        return status if (apps.get("fruit") or {}).get("status") == "DEPLOY_FAILED" else None

    status = wait_for(failed, what="the pending cluster's application DEPLOY_FAILED")
    message = status["pendingServiceStatus"]["applicationStatuses"]["fruit"]["message"]
    assert message.startswith("Deploying app 'fruit' failed with exception:\nTraceback (most recent call last):")
    assert message.rstrip().endswith("ModuleNotFoundError: No module named 'nosuchmodule'")
    assert status["activeServiceStatus"]["rayClusterName"] == old
    assert status["serviceStatus"] == "Running"
    assert _cond(env.rs("svc"), "UpgradeInProgress") == "True"
    assert _selector(env, "svc-serve-svc")["ray.io/cluster"] == old
    pending = status["pendingServiceStatus"]["rayClusterName"]
    assert env.clusters() == sorted([old, pending])
    # Fixing the config lets the same pending cluster take over.
    env.patch_rs("svc", {"spec": {"serveConfigV2": _serve_config(app_dir, ("fruit", "fruit:app"))}})
    wait_for(lambda: env.rs("svc")["status"]["activeServiceStatus"].get("rayClusterName") == pending, what="switch")
    assert _selector(env, "svc-serve-svc")["ray.io/cluster"] == pending


def test_an_incremental_upgrade_moves_traffic_in_steps(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator, gateway=True)
    options = {"gatewayClassName": "istio", "stepSizePercent": 50, "intervalSeconds": 1, "maxSurgePercent": 50}
    body = rayservice(
        "svc", app_dir, upgradeStrategy={"type": "NewClusterWithIncrementalUpgrade", "clusterUpgradeOptions": options}
    )
    body["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = True
    rs = env.create_rs(body)
    old = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    gateway = env.co.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "default", "gateways", "svc-gateway"
    )
    assert gateway["spec"] == {
        "gatewayClassName": "istio",
        "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
    }

    def route() -> Obj:
        obj: Obj = env.co.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", "default", "httproutes", "svc-httproute"
        )
        return obj

    def weights() -> dict[str, int]:
        try:
            refs = route()["spec"]["rules"][0]["backendRefs"]
        except ApiException as exc:  # the route comes once there is an active cluster
            if exc.status != 404:
                raise
            return {}
        return {r["name"]: r["weight"] for r in refs}

    wait_for(lambda: weights() == {f"{old}-serve-svc": 100}, what="all traffic on the first cluster")
    assert route()["spec"]["parentRefs"][0]["name"] == "svc-gateway"
    assert env.rs("svc")["status"]["activeServiceStatus"]["trafficRoutedPercent"] == 100

    env.patch_rs("svc", {"spec": {"rayClusterConfig": _new_env_var(rs, "2")}})
    new = wait_for(lambda: (env.rs("svc")["status"].get("pendingServiceStatus") or {}).get("rayClusterName"))
    seen_weights: set[tuple[int, int]] = set()
    seen_capacity: set[tuple[int | None, int | None]] = set()

    def promoted() -> bool:
        status = env.rs("svc")["status"]
        w = weights()
        if f"{new}-serve-svc" in w:
            seen_weights.add((w.get(f"{old}-serve-svc", -1), w[f"{new}-serve-svc"]))
        if status["pendingServiceStatus"]:
            seen_capacity.add(
                (
                    status["activeServiceStatus"].get("targetCapacity"),
                    status["pendingServiceStatus"].get("targetCapacity"),
                )
            )
        return bool(status["activeServiceStatus"].get("rayClusterName") == new)

    wait_for(promoted, timeout=40, interval=0.05, what="the incremental upgrade to finish")
    assert (50, 50) in seen_weights  # one step of 50% at a time
    assert (100, 50) in seen_capacity or (50, 50) in seen_capacity  # the pending cluster surges by 50
    wait_for(lambda: weights() == {f"{new}-serve-svc": 100}, what="the route on the new cluster only")
    assert env.core.read_namespaced_service(f"{new}-serve-svc", "default").spec.selector["ray.io/cluster"] == new
    rs = env.wait_ready("svc")
    assert rs["status"]["activeServiceStatus"]["targetCapacity"] == 100
    assert rs["status"]["activeServiceStatus"]["trafficRoutedPercent"] == 100
    wait_for(lambda: env.clusters() == [new], what="the old cluster deleted")


def test_an_invalid_rayservice_is_refused_or_marked_failed(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator)
    missing = rayservice("bad", app_dir)
    del missing["spec"]["rayClusterConfig"]
    with pytest.raises(ApiException) as caught:
        env.create_rs(missing)
    assert caught.value.status == 422
    body = json.loads(caught.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.rayClusterConfig"}
    ]
    wrong_type = rayservice("bad", app_dir)
    wrong_type["spec"]["rayClusterDeletionDelaySeconds"] = "soon"
    with pytest.raises(ApiException) as caught:
        env.create_rs(wrong_type)
    assert caught.value.status == 422
    assert json.loads(caught.value.body)["details"]["causes"][0]["field"] == "spec.rayClusterDeletionDelaySeconds"

    # Valid for the schema, refused by the controller's own validation.
    env.create_rs(rayservice("odd", app_dir, upgradeStrategy={"type": "Sometimes"}))
    failed: Obj = wait_for(lambda: env.rs("odd") if _cond(env.rs("odd"), "Ready") == "False" else None)
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ValidationFailed"
    assert "Spec.UpgradeStrategy.Type value Sometimes is invalid" in ready["message"]
    event = wait_for(lambda: [e for e in env.events("odd") if e.reason == "InvalidRayServiceSpec"])
    assert event[0].type == "Warning"
    late = rayservice("late", app_dir)
    late["metadata"]["annotations"] = {"ray.io/initializing-timeout": "soon"}
    env.create_rs(late)
    failed = wait_for(lambda: env.rs("late") if _cond(env.rs("late"), "Ready") == "False" else None)
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"] == (
        "The RayService metadata is invalid: RayService annotations is invalid: annotation "
        "ray.io/initializing-timeout has invalid format: soon. Expected Go duration format (e.g., '5m', '1h') "
        "or positive integer seconds"
    )
    assert env.clusters() == []


def test_a_rayservice_that_never_gets_ready_times_out(emulator: EmulatorProcess, app_dir: Path) -> None:
    """``ray.io/initializing-timeout``: past it, the RayService fails for good and loses its cluster."""
    env = Env(emulator)
    body = rayservice("svc", app_dir, serve=_serve_config(app_dir, ("fruit", "nosuchmodule:app")))
    body["metadata"]["annotations"] = {"ray.io/initializing-timeout": "2s"}
    env.create_rs(body)
    first = wait_for(lambda: env.clusters(), what="a cluster")

    def timed_out() -> Obj | None:
        rs = env.rs("svc")
        ready: Obj = next((c for c in (rs.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
        return rs if ready.get("reason") == "InitializingTimeout" else None

    rs = wait_for(timed_out, timeout=30, what="the initializing timeout")
    ready = next(c for c in rs["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"].startswith("RayService failed to become ready within the configured timeout of 2s.")
    assert "rayClusterName" not in rs["status"]["pendingServiceStatus"]
    assert "rayClusterName" not in rs["status"]["activeServiceStatus"]
    wait_for(lambda: env.clusters() == [], what=f"{first} deleted")
    event = next(e for e in env.events("svc") if e.reason == "RayServiceInitializingTimeout")
    assert event.type == "Warning"
    assert "(configured timeout: 2s)" in event.message
    assert env.clusters() == []


def test_a_lost_head_with_gcs_fault_tolerance_comes_back_serving(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator)
    body = rayservice("svc", app_dir)
    body["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"] = {"redisAddress": "redis:6379"}
    env.create_rs(body)
    active = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    head = env.pods(active, "ray.io/node-type=head")[0]
    env.core.delete_namespaced_pod(head.metadata.name, "default")

    def new_head_serving() -> Obj | None:
        heads = env.pods(active, "ray.io/node-type=head")
        if not heads or heads[0].metadata.uid == head.metadata.uid:
            return None
        if heads[0].metadata.labels.get("ray.io/serve") != "true":
            return None
        rs = env.rs("svc")
        apps = rs["status"]["activeServiceStatus"].get("applicationStatuses") or {}
        ok = (apps.get("fruit") or {}).get("status") == "RUNNING" and _cond(rs, "Ready") == "True"
        return rs if ok else None

    rs = wait_for(new_head_serving, timeout=30, what="a new head serving the applications")
    assert rs["status"]["activeServiceStatus"]["rayClusterName"] == active
    assert env.clusters() == [active]
    assert _selector(env, "svc-serve-svc")["ray.io/cluster"] == active


def test_a_lost_head_without_fault_tolerance_gets_its_applications_again(
    emulator: EmulatorProcess, app_dir: Path
) -> None:
    """Without GCS FT the new head's Serve has no application: KubeRay submits the config again."""
    env = Env(emulator)
    env.create_rs(rayservice("svc", app_dir))
    active = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    head = env.pods(active, "ray.io/node-type=head")[0]
    submitted = len([e for e in env.events("svc") if e.reason == "UpdatedServeApplications"])
    env.core.delete_namespaced_pod(head.metadata.name, "default")

    def resubmitted() -> Any:
        heads = env.pods(active, "ray.io/node-type=head")
        if not heads or heads[0].metadata.uid == head.metadata.uid:
            return None
        events = [e for e in env.events("svc") if e.reason == "UpdatedServeApplications"]
        apps = env.rs("svc")["status"]["activeServiceStatus"].get("applicationStatuses") or {}
        return (apps.get("fruit") or {}).get("status") == "RUNNING" and sum(e.count for e in events) > submitted

    wait_for(resubmitted, timeout=30, what="the applications submitted to the new head")
    assert env.clusters() == [active]
    env.wait_ready("svc")


def test_upgrade_strategy_none_changes_nothing(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator)
    rs = env.create_rs(rayservice("svc", app_dir, upgradeStrategy={"type": "None"}))
    active = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    env.patch_rs("svc", {"spec": {"rayClusterConfig": _new_env_var(rs, "2")}})
    rs = wait_for(lambda: env.rs("svc") if env.rs("svc")["status"].get("observedGeneration") == 2 else None)
    assert rs["status"]["pendingServiceStatus"] == {}
    assert rs["status"]["activeServiceStatus"]["rayClusterName"] == active
    assert _cond(rs, "UpgradeInProgress") == "False"
    assert env.clusters() == [active]


def test_the_serve_rest_api_of_a_plain_raycluster(emulator: EmulatorProcess, app_dir: Path) -> None:
    """``PUT``/``GET /api/serve/applications/`` on the simulated dashboard, as Rayplane's own
    code (or ``serve deploy``) would call it through the API server's service proxy."""
    env = Env(emulator)
    rc = small_raycluster("rc", workers=0, pool=None, head_pool="cpu")
    env.create(rc)
    wait_for(lambda: env.pods("rc", "ray.io/node-type=head") and env.rc("rc")["status"].get("state") == "ready")
    base = "/api/v1/namespaces/default/services/rc-head-svc:dashboard/proxy/api/serve/applications/"
    with env.cluster.http() as http:
        empty = http.get(base).json()
        assert (empty["applications"], empty["proxies"], empty["controller_info"]) == ({}, {}, {})
        config = yaml.safe_load(_serve_config(app_dir, ("fruit", "fruit:app"), ("bad", "fruit.nosuch:app")))
        config["applications"].append({"name": "plain", "import_path": "json:dumps"})  # no deployments listed
        assert http.put(base, json=config).status_code == 200
        first = http.get(base).json()["applications"]
        assert {n: a["status"] for n, a in first.items()} == {
            "fruit": "DEPLOYING",
            "bad": "DEPLOYING",
            "plain": "DEPLOYING",
        }
        assert first["fruit"]["deployments"]["FruitStand"]["status"] == "UPDATING"

        def settled() -> Any:
            apps = http.get(base).json()["applications"]
            return apps if all(a["status"] != "DEPLOYING" for a in apps.values()) else None

        apps = wait_for(settled, what="the applications deployed")
        assert {n: a["status"] for n, a in apps.items()} == {
            "fruit": "RUNNING",
            "bad": "DEPLOY_FAILED",
            "plain": "RUNNING",
        }
        assert apps["bad"]["message"].rstrip().endswith("ModuleNotFoundError: No module named 'fruit.nosuch'")
        assert apps["bad"]["deployments"] == {}
        assert list(apps["plain"]["deployments"]) == ["dumps"]
        assert apps["fruit"]["deployed_app_config"]["import_path"] == "fruit:app"

        # Dropping an application deletes it; a config that is not one is a 400.
        assert http.put(base, json={"applications": [config["applications"][0]]}).status_code == 200
        assert http.get(base).json()["applications"]["plain"]["status"] == "DELETING"
        wait_for(lambda: set(http.get(base).json()["applications"]) == {"fruit"}, what="the others deleted")
        assert http.get(base).json()["applications"]["fruit"]["status"] == "RUNNING"
        refused = http.put(base, json={"applications": [{"name": "x"}]})
        assert refused.status_code == 400
        assert "import_path" in refused.text


def test_reverting_the_spec_mid_incremental_upgrade_rolls_back(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator, gateway=True)
    options = {"gatewayClassName": "istio", "stepSizePercent": 50, "intervalSeconds": 1, "maxSurgePercent": 50}
    strategy = {"type": "NewClusterWithIncrementalUpgrade", "clusterUpgradeOptions": options}
    body = rayservice("svc", app_dir, upgradeStrategy=strategy)
    body["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = True
    rs = env.create_rs(body)
    old = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    original = copy.deepcopy(rs["spec"]["rayClusterConfig"])
    env.patch_rs("svc", {"spec": {"rayClusterConfig": _new_env_var(rs, "2")}})
    new = wait_for(lambda: (env.rs("svc")["status"].get("pendingServiceStatus") or {}).get("rayClusterName"))

    def weights() -> dict[str, int]:
        obj = env.co.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", "default", "httproutes", "svc-httproute"
        )
        return {r["name"]: r["weight"] for r in obj["spec"]["rules"][0]["backendRefs"]}

    wait_for(lambda: weights().get(f"{new}-serve-svc") == 50, timeout=30, what="half the traffic on the new cluster")
    env.co.replace_namespaced_custom_object(
        *RS, "svc", {**env.rs("svc"), "spec": {**env.rs("svc")["spec"], "rayClusterConfig": original}}
    )
    rolling = wait_for(lambda: env.rs("svc") if _cond(env.rs("svc"), "RollbackInProgress") == "True" else None)
    cond = next(c for c in rolling["status"]["conditions"] if c["type"] == "RollbackInProgress")
    assert (cond["reason"], cond["message"]) == (
        "DesiredClusterSpecChanged",
        "Goal state reverted to original cluster, rolling back.",
    )

    def rolled_back() -> Obj | None:
        rs = env.rs("svc")
        return rs if rs["status"]["pendingServiceStatus"] == {} else None

    rs = wait_for(rolled_back, timeout=30, what="the rollback to finish")
    assert rs["status"]["activeServiceStatus"]["rayClusterName"] == old
    assert rs["status"]["activeServiceStatus"]["targetCapacity"] == 100
    assert rs["status"]["activeServiceStatus"]["trafficRoutedPercent"] == 100
    assert _cond(rs, "RollbackInProgress") is None
    wait_for(lambda: weights() == {f"{old}-serve-svc": 100}, what="the route back on the old cluster only")
    wait_for(lambda: env.clusters() == [old], what="the new cluster deleted")
    assert env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"] == old


def test_suspend_deletes_the_clusters_and_resume_brings_the_service_back(
    emulator: EmulatorProcess, app_dir: Path
) -> None:
    env = Env(emulator)
    env.create_rs(rayservice("svc", app_dir))
    first = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    env.patch_rs("svc", {"spec": {"suspend": True}})
    suspended = wait_for(lambda: env.rs("svc") if _cond(env.rs("svc"), "Suspended") == "True" else None)
    status = suspended["status"]
    assert (status["activeServiceStatus"], status["pendingServiceStatus"]) == ({}, {})
    assert "serviceStatus" not in status
    assert "numServeEndpoints" not in status
    assert _cond(suspended, "Ready") == "False"
    assert _cond(suspended, "Suspending") == "False"
    assert env.clusters() == []
    names = {s.metadata.name for s in env.core.list_namespaced_service("default").items}
    assert not names & {"svc-head-svc", "svc-serve-svc"}
    reasons = {e.reason for e in env.events("svc")}
    assert {"DeletedRayCluster", "DeletedService"} <= reasons

    env.patch_rs("svc", {"spec": {"suspend": False}})
    rs = env.wait_ready("svc")
    assert _cond(rs, "Suspended") == "False"
    resumed = rs["status"]["activeServiceStatus"]["rayClusterName"]
    assert resumed != first
    assert env.clusters() == [resumed]
