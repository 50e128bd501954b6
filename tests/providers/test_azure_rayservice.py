"""A service on Azure as a KubeRay RayService: the manifest validates against the v1.7.0 CRD
(made strict), reuses the RayCluster's spec, maps the rollout policy onto ``upgradeStrategy``;
and, through the real ``kubernetes`` client against the emulated AKS cluster's KubeRay, comes
up Ready behind a LoadBalancer, takes a Serve config change in place, rolls a VM size change
onto a new cluster, keeps serving from the old one when the new version fails to import, and
moves traffic in steps behind its Gateway with an incremental rollout."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from emulators.azure.kube.testing import wait_for
from emulators.azure.server import EmulatorProcess
from rayplane.clusters.serve import RolloutSpec, ServeSpec
from rayplane.providers.azure import manifests, reservations
from rayplane.providers.azure import rayservice as rsv
from rayplane.providers.azure.kube import Kube
from rayplane.providers.azure.manifests import PoolKey
from rayplane.providers.azure.rayservice import AppStatus, ServiceStatus
from rayplane.providers.base import ClusterTarget, TerminalError
from tests.providers.test_azure_gcs_ft import GCS_REDIS
from tests.providers.test_azure_manifests import _strict
from tests.support.emulators import kube_knobs
from tests.support.rayservice import SERVICE_SPEC, Env, serve_spec, service_target

CLUSTER_ID = "clu_01JD3W5Z8K2M4N6P8R0T2V4X6Y"
SPEC = SERVICE_SPEC
CLOUD = {"gcs_redis": GCS_REDIS, "gateway_class": "azure-alb-external"}
INCREMENTAL = RolloutSpec.from_json({"strategy": "incremental", "step_percent": 25, "interval_seconds": 10})


def _target(spec: dict[str, Any] = SPEC, cloud: dict[str, Any] = CLOUD, cluster_id: str = CLUSTER_ID) -> ClusterTarget:
    return service_target(cluster_id, cloud, spec)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(manifests.crd_schema("RayService")))


def _errors(validator: jsonschema.Draft7Validator, obj: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in sorted(validator.iter_errors(obj), key=str)]


def test_blue_green_and_incremental_services_validate_against_the_crd(validator: jsonschema.Draft7Validator) -> None:
    blue_green = rsv.ray_service(_target(), serve_spec(), RolloutSpec(), replicas={})
    assert _errors(validator, blue_green) == []
    assert blue_green["spec"]["upgradeStrategy"] == {"type": "NewCluster"}
    incremental = rsv.ray_service(_target(), serve_spec(), INCREMENTAL, replicas={})
    assert _errors(validator, incremental) == []
    assert incremental["spec"]["upgradeStrategy"] == {
        "type": "NewClusterWithIncrementalUpgrade",
        "clusterUpgradeOptions": {
            "gatewayClassName": "azure-alb-external",
            "stepSizePercent": 25,
            "intervalSeconds": 10,
            "maxSurgePercent": 100,
        },
    }
    bad = copy.deepcopy(incremental)
    bad["spec"]["upgradeStrategy"]["clusterUpgradeOptions"]["stepSize"] = 5
    assert any("stepSize" in e for e in _errors(validator, bad))


def test_the_manifest_is_named_and_exposed_like_the_raycluster(validator: jsonschema.Draft7Validator) -> None:
    target = _target()
    obj = rsv.ray_service(target, serve_spec(), RolloutSpec(), replicas={})
    rc = manifests.ray_cluster(rsv.service_target(target), replicas={})
    assert obj["metadata"] == rc["metadata"]
    assert obj["metadata"]["namespace"] == manifests.resource_name(target)[0]
    serve_svc = obj["spec"]["serveService"]
    assert serve_svc["metadata"]["name"] == rsv.serve_service_name(target) == "shop-serve-svc"
    assert serve_svc["spec"] == {"type": "LoadBalancer", "ports": [{"name": "serve", "port": 8000, "targetPort": 8000}]}


def test_serve_config_v2_round_trips_to_the_applications_given() -> None:
    serve = serve_spec()
    obj = rsv.ray_service(_target(), serve, RolloutSpec(), replicas={})
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    assert config["applications"] == serve.to_json()["applications"]
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000}  # noqa: S104
    assert config["proxy_location"] == "EveryNode"


def test_the_cluster_config_is_the_rayclusters_spec_with_fault_tolerance_and_a_serve_port() -> None:
    target = _target()
    assert not target.gcs_fault_tolerance  # the service turns it on itself
    config = rsv.ray_service(target, serve_spec(), RolloutSpec(), replicas={"cpu": 2})["spec"]["rayClusterConfig"]
    rc = manifests.ray_cluster(rsv.service_target(target), replicas={"cpu": 2})["spec"]
    assert config["gcsFaultToleranceOptions"] == manifests.gcs_fault_tolerance(target)
    head_ports = config["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    assert head_ports[-1] == {"containerPort": 8000, "name": "serve"}
    head_ports.pop()
    assert config == rc


def test_incremental_without_a_gateway_class_or_without_redis_is_refused() -> None:
    no_gateway = _target(cloud={"gcs_redis": GCS_REDIS})
    with pytest.raises(TerminalError, match="gateway_class") as caught:
        rsv.ray_service(no_gateway, serve_spec(), INCREMENTAL, replicas={})
    assert caught.value.code == "GatewayClassNotConfigured"
    assert rsv.ray_service(no_gateway, serve_spec(), RolloutSpec(), replicas={})  # blue/green needs none
    steep = RolloutSpec.from_json({"strategy": "incremental", "step_percent": 50, "max_surge_percent": 20})
    with pytest.raises(TerminalError, match="max_surge_percent"):
        rsv.ray_service(_target(), serve_spec(), steep, replicas={})
    with pytest.raises(TerminalError, match="gcs_redis") as caught:
        rsv.ray_service(_target(cloud={}), serve_spec(), RolloutSpec(), replicas={})
    assert caught.value.code == "GcsRedisNotConfigured"


def test_a_status_is_parsed_with_both_sides_and_the_endpoint() -> None:
    obj = {
        "metadata": {"generation": 3},
        "status": {
            "observedGeneration": 3,
            "numServeEndpoints": 2,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "NonZeroServeEndpoints", "message": "m"},
                {"type": "UpgradeInProgress", "status": "True", "reason": "BothActivePendingClustersExist"},
            ],
            "activeServiceStatus": {
                "rayClusterName": "shop-abcde",
                "targetCapacity": 60,
                "trafficRoutedPercent": 50,
                "applicationStatuses": {
                    "fruit": {"status": "RUNNING", "serveDeploymentStatuses": {"FruitStand": {"status": "HEALTHY"}}}
                },
            },
            "pendingServiceStatus": {
                "rayClusterName": "shop-fghjk",
                "applicationStatuses": {"fruit": {"status": "DEPLOY_FAILED", "message": "boom"}, "veg": {}},
            },
        },
    }
    svc = {
        "spec": {"ports": [{"name": "serve", "port": 8000}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}},
    }
    status = ServiceStatus.parse(obj, endpoint=rsv.endpoint(svc))
    assert (status.ready, status.upgrading, status.current, status.serve_endpoints) == (True, True, True, 2)
    assert status.endpoint == "http://1.2.3.4:8000"
    assert (status.active.cluster, status.active.target_capacity, status.active.traffic_percent) == (
        "shop-abcde",
        60,
        50,
    )
    assert status.active.all_running()
    assert status.active.applications[0].deployments == {"FruitStand": "HEALTHY"}
    fruit, veg = status.pending.applications
    assert (fruit.status, fruit.message, veg.status) == (AppStatus.DEPLOY_FAILED, "boom", AppStatus.NOT_STARTED)
    empty = ServiceStatus.parse({"metadata": {"generation": 1}})
    assert (empty.active.cluster, empty.pending.cluster, empty.ready, empty.current) == (None, None, False, False)
    assert rsv.endpoint({"status": {"loadBalancer": {}}}) is None
    gateway = {"spec": {"listeners": [{"name": "http", "port": 80}]}, "status": {"addresses": [{"value": "5.6.7.8"}]}}
    assert rsv.gateway_endpoint(gateway) == "http://5.6.7.8:80"


# ---- against the emulated AKS cluster, through the real kubernetes client ----------------------


@pytest.fixture(scope="module")
def env(emulator: EmulatorProcess) -> Iterator[Env]:
    """One emulated AKS cluster for the module, with KubeRay, the RayService CRD, fast Serve
    deploys and deletion delays, and the pools the manifests pin their pods to."""
    knobs = {
        "node_boot_seconds": 0.3,
        "serve_deploy_seconds": 0.3,
        "rayservice_requeue_seconds": 0.2,
        "rayservice_deletion_delay_seconds": 0.5,
    }
    with kube_knobs(emulator, **knobs):
        env = Env(emulator, gateway=True)
        for size, vcpus, memory in (("Standard_D4s_v5", 4, 16), ("Standard_D8s_v5", 8, 32)):
            env.cluster.add_pool(
                PoolKey(size, False).name,
                vm_size=size,
                vcpus=vcpus,
                memory_gib=memory,
                autoscale=True,
                max_count=6,
                max_pods=reservations.RAY_POOL_MAX_PODS,
            )
        yield env


def _status(env: Env, target: ClusterTarget) -> ServiceStatus:
    namespace, name = manifests.resource_name(target)
    obj = env.co.get_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", name)
    try:
        svc = env.core.read_namespaced_service(rsv.serve_service_name(target), namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return ServiceStatus.parse(obj)
    return ServiceStatus.parse(obj, endpoint=rsv.endpoint(env.core.api_client.sanitize_for_serialization(svc)))


def _patch(env: Env, target: ClusterTarget, spec: dict[str, Any]) -> None:
    namespace, name = manifests.resource_name(target)
    env.co.patch_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", name, {"spec": spec})


def _routes(env: Env, namespace: str, target: ClusterTarget) -> dict[str, str]:
    """Each running application's route prefix, from Serve's REST API on the service's head,
    through the API server's service proxy with the cluster's Ray token."""
    _, name = manifests.resource_name(target)
    path = f"/api/v1/namespaces/{namespace}/services/{name}-head-svc:dashboard/proxy/api/serve/applications/"
    with env.cluster.http() as http:
        r = http.get(path, headers={"X-Ray-Authorization": f"Bearer {target.ray_token}"})
    assert r.status_code == 200, r.text
    return {n: str(a.get("route_prefix")) for n, a in (r.json().get("applications") or {}).items()}


def _clusters(env: Env, namespace: str) -> list[str]:
    items = env.co.list_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters")["items"]
    return sorted(i["metadata"]["name"] for i in items)


def test_a_service_comes_up_and_takes_config_vm_size_and_bad_version_changes(env: Env, app_dir: Path) -> None:
    target = _target(cluster_id="clu_01JD3W5Z8K2M4N6P8R0T2V4X7A")
    namespace, name = manifests.resource_name(target)
    serve = serve_spec(str(app_dir))
    objects = rsv.service_objects(target, serve, RolloutSpec(), replicas={}, gcs_password_b64="c2VjcmV0")
    assert [o["kind"] for o in objects] == ["Namespace", "Secret", "Secret", "RayService"]
    kube = Kube(yaml.safe_dump(env.cluster.kubeconfig))
    try:
        for obj in objects[:-1]:
            kube.apply(obj)
        env.co.create_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", objects[-1])

        def ready() -> ServiceStatus | None:
            s = _status(env, target)
            ok = s and s.current and s.ready and s.active.all_running({"fruit", "veg"}) and s.endpoint
            return s if ok else None

        first = wait_for(ready, timeout=60, what="the service Ready, both applications RUNNING, an endpoint")
        assert first.endpoint
        assert first.endpoint.endswith(":8000")
        assert first.pending.cluster is None
        assert not first.upgrading
        assert first.serve_endpoints == 2  # proxy_location EveryNode: the head and the worker
        assert _routes(env, namespace, target) == {"fruit": "/fruit", "veg": "/veg"}
        active = first.active.cluster
        assert active is not None
        assert _clusters(env, namespace) == [active]
        assert rsv.observe(kube, target, RolloutSpec()) == first  # the provider's read sees the same

        # The Serve config alone: applied in place on the same cluster.
        changed = ServeSpec.from_json(
            {
                "applications": [
                    {**a, "route_prefix": f"/v2{a['route_prefix']}"} for a in serve.to_json()["applications"]
                ]
            }
        )
        _patch(env, target, {"serveConfigV2": rsv.serve_config_v2(changed)})

        def in_place() -> ServiceStatus | None:
            s = _status(env, target)
            routes = _routes(env, namespace, target)
            new = routes == {"fruit": "/v2/fruit", "veg": "/v2/veg"}
            return s if new and s.current and s.active.all_running({"fruit", "veg"}) else None

        second = wait_for(in_place, timeout=30, what="the new Serve config running")
        assert second.active.cluster == active
        assert second.pending.cluster is None
        assert _clusters(env, namespace) == [active]

        # A new worker VM size: a new manifest from the changed target, a new cluster, a switch.
        bigger = _target(
            {**SPEC, "worker_groups": [{**SPEC["worker_groups"][0], "vm_size": "Standard_D8s_v5"}]},
            cluster_id="clu_01JD3W5Z8K2M4N6P8R0T2V4X7A",
        )
        resized = rsv.ray_service(bigger, changed, RolloutSpec(), replicas={})
        _patch(env, target, {"rayClusterConfig": resized["spec"]["rayClusterConfig"]})
        pending = wait_for(lambda: _status(env, target).pending.cluster, timeout=30, what="a pending cluster")
        assert pending != active

        def promoted() -> ServiceStatus | None:
            s = _status(env, target)
            return s if s.active.cluster == pending and s.pending.cluster is None and s.ready else None

        switched = wait_for(promoted, timeout=60, what="the switch to the new cluster")
        assert switched.active.all_running({"fruit", "veg"})
        assert switched.endpoint == first.endpoint  # the same LoadBalancer Service, now on the new cluster
        assert env.core.read_namespaced_service(rsv.serve_service_name(target), namespace).spec.selector == {
            "ray.io/cluster": pending,
            "ray.io/serve": "true",
        }
        wait_for(lambda: _clusters(env, namespace) == [pending], timeout=30, what="the old cluster deleted")
        worker = env.co.get_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters", pending)
        selector = worker["spec"]["workerGroupSpecs"][0]["template"]["spec"]["nodeSelector"]
        assert selector == {manifests.POOL_LABEL: PoolKey("Standard_D8s_v5", False).name}

        # A bad version (an import error) on yet another cluster: pending fails, active serves on.
        broken = ServeSpec.from_json(
            {
                "applications": [
                    {**a, "import_path": "nosuchmodule.graph:app"} if a["name"] == "fruit" else a
                    for a in changed.to_json()["applications"]
                ]
            }
        )
        back = rsv.ray_service(target, broken, RolloutSpec(), replicas={})["spec"]
        _patch(env, target, {"rayClusterConfig": back["rayClusterConfig"], "serveConfigV2": back["serveConfigV2"]})

        def failed() -> ServiceStatus | None:
            s = _status(env, target)
            app = s.pending.application("fruit")
            return s if app and app.status is AppStatus.DEPLOY_FAILED else None

        bad = wait_for(failed, timeout=60, what="the pending cluster's application DEPLOY_FAILED")
        fruit = bad.pending.application("fruit")
        assert fruit
        assert "ModuleNotFoundError: No module named 'nosuchmodule'" in fruit.message
        assert bad.active.cluster == pending
        # KubeRay reads Serve only on the pending cluster during a blue/green upgrade, so the
        # active side reports no applications; it still serves (Ready, same endpoint).
        assert bad.active.applications == ()
        assert (bad.ready, bad.upgrading, bad.endpoint) == (True, True, first.endpoint)
        assert bad.pending.cluster not in (None, pending)
    finally:
        env.co.delete_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", name)
        kube.close()


def test_an_incremental_service_moves_traffic_in_steps_behind_its_gateway(env: Env, app_dir: Path) -> None:
    cluster_id = "clu_01JD3W5Z8K2M4N6P8R0T2V4X7B"
    target = _target(cluster_id=cluster_id)
    namespace, name = manifests.resource_name(target)
    rollout = RolloutSpec.from_json(
        {"strategy": "incremental", "step_percent": 50, "interval_seconds": 1, "max_surge_percent": 50}
    )
    serve = serve_spec(str(app_dir))
    objects = rsv.service_objects(target, serve, rollout, replicas={}, gcs_password_b64="c2VjcmV0")
    kube = Kube(yaml.safe_dump(env.cluster.kubeconfig))
    try:
        for obj in objects:  # this time as the provider writes: server-side apply, RayService included
            kube.apply(obj)
        kube.apply(objects[-1])  # applying the same manifest again changes nothing
        assert (
            env.co.get_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", name)["metadata"][
                "generation"
            ]
            == 1
        )

        def ready() -> ServiceStatus | None:
            s = rsv.observe(kube, target, rollout)
            if s is None or not s.endpoint:
                return None
            ok = s.current and s.ready and not s.upgrading and s.active.all_running({"fruit", "veg"})
            return s if ok else None

        first = wait_for(ready, timeout=60, what="the incremental service Ready behind its Gateway")
        assert first.endpoint == "http://10.224.100.10:80"  # the emulated Gateway's address
        gateway = env.co.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "gateways", rsv.gateway_name(target)
        )
        assert gateway["spec"]["gatewayClassName"] == "azure-alb-external"
        active = first.active.cluster

        bigger = _target(
            {**SPEC, "worker_groups": [{**SPEC["worker_groups"][0], "vm_size": "Standard_D8s_v5"}]},
            cluster_id=cluster_id,
        )
        resized = rsv.ray_service(bigger, serve, rollout, replicas={})
        kube.apply(resized)
        seen: set[tuple[int | None, int | None]] = set()

        def promoted() -> ServiceStatus | None:
            s = rsv.observe(kube, target, rollout)
            assert s is not None
            if s.pending.cluster:
                seen.add((s.pending.target_capacity, s.pending.traffic_percent))
            done = s.active.cluster not in (None, active) and s.pending.cluster is None and s.ready
            return s if done else None

        after = wait_for(promoted, timeout=60, interval=0.02, what="the new cluster promoted")
        assert (50, 50) in seen  # one step of 50 % (the surge), then the rest
        assert (after.active.target_capacity, after.active.traffic_percent) == (100, 100)
        assert after.endpoint == first.endpoint
    finally:
        env.co.delete_namespaced_custom_object("ray.io", "v1", namespace, "rayservices", name)
        kube.close()
