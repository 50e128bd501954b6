"""The simulated KubeRay RayService controller of an emulated AKS cluster, driven by the real
``kubernetes`` client: a RayService comes up Ready on a RayCluster of its own, takes Serve
config changes in place, upgrades to a new cluster (blue/green, or incrementally through a
Gateway API HTTPRoute), keeps serving from the old cluster when the new one's applications
fail, and survives losing its head with GCS fault tolerance."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from emulators.azure.kube.testing import small_raycluster, wait_for
from emulators.azure.server import EmulatorProcess
from tests.support.emulators import kube_knobs
from tests.support.rayservice import RS, Env, Obj, cond, new_env_var, rayservice, selector, serve_config


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
        "svc", {"spec": {"serveConfigV2": serve_config(app_dir, ("fruit", "fruit:app"), ("veg", "fruit:app"))}}
    )

    def both_running() -> Obj | None:
        rs = env.rs("svc")
        apps = (rs["status"].get("activeServiceStatus") or {}).get("applicationStatuses") or {}
        return rs if {a: s.get("status") for a, s in apps.items()} == {"fruit": "RUNNING", "veg": "RUNNING"} else None

    rs = wait_for(both_running, what="both applications RUNNING")
    assert rs["status"]["activeServiceStatus"]["rayClusterName"] == active
    assert rs["status"]["pendingServiceStatus"] == {}
    assert cond(rs, "UpgradeInProgress") == "False"
    assert env.clusters() == [active]
    assert selector(env, "svc-serve-svc")["ray.io/cluster"] == active


def test_a_cluster_change_upgrades_to_a_new_cluster_and_drops_the_old(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator)
    rs = env.create_rs(rayservice("svc", app_dir))
    old = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    env.patch_rs("svc", {"spec": {"rayClusterConfig": new_env_var(rs, "2")}})

    def pending() -> str | None:
        status = env.rs("svc")["status"]
        return (status.get("pendingServiceStatus") or {}).get("rayClusterName")

    new = wait_for(pending, what="a pending cluster")
    assert new != old
    assert new.startswith("svc-")
    assert cond(env.rs("svc"), "UpgradeInProgress") == "True"
    assert selector(env, "svc-serve-svc")["ray.io/cluster"] == old  # no switch before RUNNING

    switched = wait_for(
        lambda: env.rs("svc")["status"]["activeServiceStatus"].get("rayClusterName") == new, what="the switch"
    )
    assert switched
    assert selector(env, "svc-serve-svc")["ray.io/cluster"] == new
    assert selector(env, "svc-head-svc")["ray.io/cluster"] == new
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
    bad = serve_config(app_dir, ("fruit", "nosuchmodule.graph:app"))
    env.patch_rs("svc", {"spec": {"rayClusterConfig": new_env_var(rs, "2"), "serveConfigV2": bad}})

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
    assert cond(env.rs("svc"), "UpgradeInProgress") == "True"
    assert selector(env, "svc-serve-svc")["ray.io/cluster"] == old
    pending = status["pendingServiceStatus"]["rayClusterName"]
    assert env.clusters() == sorted([old, pending])
    # Fixing the config lets the same pending cluster take over.
    env.patch_rs("svc", {"spec": {"serveConfigV2": serve_config(app_dir, ("fruit", "fruit:app"))}})
    wait_for(lambda: env.rs("svc")["status"]["activeServiceStatus"].get("rayClusterName") == pending, what="switch")
    assert selector(env, "svc-serve-svc")["ray.io/cluster"] == pending


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
    failed: Obj = wait_for(lambda: env.rs("odd") if cond(env.rs("odd"), "Ready") == "False" else None)
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ValidationFailed"
    assert "Spec.UpgradeStrategy.Type value Sometimes is invalid" in ready["message"]
    event = wait_for(lambda: [e for e in env.events("odd") if e.reason == "InvalidRayServiceSpec"])
    assert event[0].type == "Warning"
    late = rayservice("late", app_dir)
    late["metadata"]["annotations"] = {"ray.io/initializing-timeout": "soon"}
    env.create_rs(late)
    failed = wait_for(lambda: env.rs("late") if cond(env.rs("late"), "Ready") == "False" else None)
    ready = next(c for c in failed["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"] == (
        "The RayService metadata is invalid: RayService annotations is invalid: annotation "
        "ray.io/initializing-timeout has invalid format: soon. Expected Go duration format (e.g., '5m', '1h') "
        "or positive integer seconds"
    )
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
        ok = (apps.get("fruit") or {}).get("status") == "RUNNING" and cond(rs, "Ready") == "True"
        return rs if ok else None

    rs = wait_for(new_head_serving, timeout=30, what="a new head serving the applications")
    assert rs["status"]["activeServiceStatus"]["rayClusterName"] == active
    assert env.clusters() == [active]
    assert selector(env, "svc-serve-svc")["ray.io/cluster"] == active


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
    env.patch_rs("svc", {"spec": {"rayClusterConfig": new_env_var(rs, "2")}})
    rs = wait_for(lambda: env.rs("svc") if env.rs("svc")["status"].get("observedGeneration") == 2 else None)
    assert rs["status"]["pendingServiceStatus"] == {}
    assert rs["status"]["activeServiceStatus"]["rayClusterName"] == active
    assert cond(rs, "UpgradeInProgress") == "False"
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
        config = yaml.safe_load(serve_config(app_dir, ("fruit", "fruit:app"), ("bad", "fruit.nosuch:app")))
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
