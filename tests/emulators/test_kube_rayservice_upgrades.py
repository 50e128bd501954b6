"""The simulated KubeRay RayService controller's longer paths, through the real ``kubernetes``
client: an incremental upgrade through a Gateway API HTTPRoute and its rollback, suspend and
resume, and the initializing timeout."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from emulators.azure.kube.testing import wait_for
from emulators.azure.server import EmulatorProcess
from tests.support.emulators import kube_knobs
from tests.support.rayservice import RS, Env, Obj, cond, new_env_var, rayservice, serve_config


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

    env.patch_rs("svc", {"spec": {"rayClusterConfig": new_env_var(rs, "2")}})
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


def test_a_rayservice_that_never_gets_ready_times_out(emulator: EmulatorProcess, app_dir: Path) -> None:
    """``ray.io/initializing-timeout``: past it, the RayService fails for good and loses its cluster."""
    env = Env(emulator)
    body = rayservice("svc", app_dir, serve=serve_config(app_dir, ("fruit", "nosuchmodule:app")))
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


def test_reverting_the_spec_mid_incremental_upgrade_rolls_back(emulator: EmulatorProcess, app_dir: Path) -> None:
    env = Env(emulator, gateway=True)
    options = {"gatewayClassName": "istio", "stepSizePercent": 50, "intervalSeconds": 1, "maxSurgePercent": 50}
    strategy = {"type": "NewClusterWithIncrementalUpgrade", "clusterUpgradeOptions": options}
    body = rayservice("svc", app_dir, upgradeStrategy=strategy)
    body["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] = True
    rs = env.create_rs(body)
    old = env.wait_ready("svc")["status"]["activeServiceStatus"]["rayClusterName"]
    original = copy.deepcopy(rs["spec"]["rayClusterConfig"])
    env.patch_rs("svc", {"spec": {"rayClusterConfig": new_env_var(rs, "2")}})
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
    rolling = wait_for(lambda: env.rs("svc") if cond(env.rs("svc"), "RollbackInProgress") == "True" else None)
    rollback = next(c for c in rolling["status"]["conditions"] if c["type"] == "RollbackInProgress")
    assert (rollback["reason"], rollback["message"]) == (
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
    assert cond(rs, "RollbackInProgress") is None
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
    suspended = wait_for(lambda: env.rs("svc") if cond(env.rs("svc"), "Suspended") == "True" else None)
    status = suspended["status"]
    assert (status["activeServiceStatus"], status["pendingServiceStatus"]) == ({}, {})
    assert "serviceStatus" not in status
    assert "numServeEndpoints" not in status
    assert cond(suspended, "Ready") == "False"
    assert cond(suspended, "Suspending") == "False"
    assert env.clusters() == []
    names = {s.metadata.name for s in env.core.list_namespaced_service("default").items}
    assert not names & {"svc-head-svc", "svc-serve-svc"}
    reasons = {e.reason for e in env.events("svc")}
    assert {"DeletedRayCluster", "DeletedService"} <= reasons

    env.patch_rs("svc", {"spec": {"suspend": False}})
    rs = env.wait_ready("svc")
    assert cond(rs, "Suspended") == "False"
    resumed = rs["status"]["activeServiceStatus"]["rayClusterName"]
    assert resumed != first
    assert env.clusters() == [resumed]
