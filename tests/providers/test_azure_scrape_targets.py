"""Rayplane's own scrape of an AKS cluster's Ray nodes (no I/O): which pods a cluster's or a
service's state selects, one pod-proxy target per Running Ray pod with its group, port, bearer
token and CA; and a service's PodMonitor, which selects Rayplane's label on the RayService's
pod templates (KubeRay names a service's RayClusters itself), the manifest still valid."""

from __future__ import annotations

from typing import Any

import jsonschema

from rayplane.clusters.serve import RolloutSpec
from rayplane.providers.azure import manifests, monitors
from rayplane.providers.azure import rayservice as rsv
from rayplane.providers.azure.scrape_targets import pod_proxy_url, selector, targets
from tests.providers.test_azure_gcs_ft import GCS_REDIS
from tests.providers.test_azure_manifests import _strict
from tests.support.rayservice import SERVICE_SPEC, serve_spec, service_target

SERVER = "https://aks.example/kubernetes/s/rg/aks"


def _pod(name: str, node_type: str, group: str, *, phase: str = "Running", ip: str | None = "10.0.0.5") -> Any:
    ports = [{"containerPort": 6379, "name": "gcs-server"}, {"containerPort": 8080, "name": "metrics"}]
    status: dict[str, Any] = {"phase": phase}
    if ip:
        status["podIP"] = ip
    return {
        "metadata": {"name": name, "labels": {"ray.io/node-type": node_type, "ray.io/group": group}},
        "spec": {"containers": [{"name": "ray", "ports": ports}, {"name": "shipper"}]},
        "status": status,
    }


def test_a_clusters_state_selects_its_raycluster_and_a_services_its_namespace() -> None:
    cluster = {"namespace": "rp-clu-1", "name": "train", "applied": "abc", "suspended": False}
    assert selector(cluster) == ("rp-clu-1", "ray.io/cluster=train")
    assert selector({**cluster, "suspended": True}) is None  # stopped: no pods to scrape
    assert selector({"namespace": "rp-clu-1", "name": "train"}) is None  # never applied
    assert selector({}) is None
    service: dict[str, Any] = {"cloud": {"subscription_id": "s"}, "namespace": "rp-svc-1", "name": "shop"}
    service |= {"versions": {"1": {}}, "clusters": {"shop-abcde": 1}, "stopped": False}
    # Every Ray pod of the service's own namespace: the active and a pending version's alike.
    assert selector(service) == ("rp-svc-1", "ray.io/is-ray-node=yes")
    assert selector({**service, "stopped": True}) is None


def test_one_target_per_running_ray_pod_through_the_pod_proxy() -> None:
    worker = _pod("train-cpu-worker-x1", "worker", "cpu", ip="10.0.0.6")
    worker["spec"]["containers"][0]["ports"] = [{"containerPort": 9090, "name": "metrics"}]
    pods = [
        _pod("train-head-a1", "head", "headgroup"),
        worker,
        _pod("train-cpu-worker-p1", "worker", "cpu", phase="Pending", ip=None),  # not scheduled yet
        _pod("train-cpu-worker-d1", "worker", "cpu", phase="Failed"),
    ]
    found = targets(pods, "rp-clu-1", SERVER, {"Authorization": "Bearer tok"}, "/tmp/ca.pem")
    assert [(t.node, t.group) for t in found] == [("train-head-a1", "head"), ("train-cpu-worker-x1", "cpu")]
    # A port number: the API server dials the pod's IP at the port as given (no name lookup).
    assert found[0].url == f"{SERVER}/api/v1/namespaces/rp-clu-1/pods/train-head-a1:8080/proxy/metrics"
    assert found[1].url == pod_proxy_url(SERVER, "rp-clu-1", "train-cpu-worker-x1", 9090)
    assert all(dict(t.headers) == {"Authorization": "Bearer tok"} and t.verify == "/tmp/ca.pem" for t in found)


def test_a_services_podmonitor_selects_rayplanes_label_on_its_pod_templates() -> None:
    target = service_target("clu_01JD3W5Z8K2M4N6P8R0T2V4X6Y", {"gcs_redis": GCS_REDIS}, SERVICE_SPEC)
    label = monitors.cluster_label(target.cluster_id)
    assert label == {"rayplane.io/cluster-id": "clu-01jd3w5z8k2m4n6p8r0t2v4x6y"}
    plain = rsv.ray_service(target, serve_spec(), RolloutSpec(), replicas={})
    labelled = monitors.with_cluster_label(plain, label)
    spec = labelled["spec"]["rayClusterConfig"]
    templates = [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]
    assert len(templates) >= 2
    for template in templates:
        assert template["metadata"]["labels"] == {manifests.MANAGED_LABEL: "true", **label}
    assert (
        "rayplane.io/cluster-id"
        not in plain["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]["labels"]
    )  # a copy: the caller's manifest is left alone
    # The same label the RayCluster's (and the RayService's) metadata carries.
    assert labelled["metadata"]["labels"]["rayplane.io/cluster-id"] == label["rayplane.io/cluster-id"]
    validator = jsonschema.Draft7Validator(_strict(manifests.crd_schema("RayService")))
    assert [e.message for e in validator.iter_errors(labelled)] == []

    monitor = monitors.pod_monitor("rp-clu-01", "shop", label)
    assert monitor["metadata"]["name"] == "shop-ray"
    assert monitor["spec"]["selector"] == {"matchLabels": label}
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    # A RayCluster's monitor still selects KubeRay's own label of its (Rayplane-named) cluster.
    assert monitors.pod_monitor("rp-clu-02", "train")["spec"]["selector"] == {
        "matchLabels": {"ray.io/cluster": "train"}
    }
