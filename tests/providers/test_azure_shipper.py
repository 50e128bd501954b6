"""The log shipper's Kubernetes objects (sidecar, service account, ConfigMap) and the sidecar's
program: RayClusters with the shipper still validate against KubeRay's strict CRD schema, every
pod (head and workers) gets the shared ``/tmp/ray``, the identity label and service account, no
key is anywhere, and the pod shipper ships a session's logs into the store's layout and takes
a final pass on stop."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rayplane.logstore import LogKey
from rayplane.logstore.directory import DirectoryLogStore
from rayplane.providers.azure import manifests, shipper, workload
from rayplane.providers.azure.logsink import LogSink, account_name, policy_body
from rayplane.providers.azure.observability import ClusterLogs
from rayplane.providers.azure.podship import PodShipper, ShipperConfig, node_name
from rayplane.providers.azure.workload import ShipperIdentity
from tests.providers.test_azure_manifests import SPEC, _strict, _target

ACCOUNT_ID = "/subscriptions/s/resourceGroups/ml/providers/Microsoft.Storage/storageAccounts/rplogsabc"
LOGS = ClusterLogs(
    LogSink("rplogsabc", "ray-logs", "https://rplogsabc.blob.core.windows.net/", ACCOUNT_ID),
    ShipperIdentity("rayplane-rp-x", "client-1", "principal-1", "tenant-1"),
    tenant="ten_1",
    cluster="clu_1",
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(manifests.crd_schema("RayCluster")))


def _templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]
    return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]


def test_every_pod_gets_the_sidecar_and_still_validates(validator: jsonschema.Draft7Validator) -> None:
    obj = shipper.with_shipper(manifests.ray_cluster(_target(SPEC), replicas={}))
    errors = sorted(validator.iter_errors(obj), key=str)
    assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    templates = _templates(obj)
    assert len(templates) == 3  # head, cpu, gpu
    for template in templates:
        assert template["metadata"]["labels"][shipper.USE_LABEL] == "true"
        spec = template["spec"]
        assert spec["serviceAccountName"] == workload.SERVICE_ACCOUNT
        ray, side = spec["containers"][0], spec["containers"][-1]
        assert ray["name"].startswith("ray-")
        assert {"name": shipper.VOLUME, "mountPath": "/tmp/ray"} in ray["volumeMounts"]
        assert side["name"] == shipper.CONTAINER
        assert {"name": shipper.VOLUME, "mountPath": "/tmp/ray", "readOnly": True} in side["volumeMounts"]
        assert side["resources"] == shipper.RESOURCES
        assert side["command"][-1] == f"{shipper.CONFIG_DIR}/{shipper.CONFIG_KEY}"
        assert {"name": shipper.VOLUME, "emptyDir": {}} in spec["volumes"]
        assert {"name": shipper.CONFIG_VOLUME, "configMap": {"name": shipper.CONFIG_MAP}} in spec["volumes"]
        assert spec["terminationGracePeriodSeconds"] >= shipper.GRACE_SECONDS
    # Applying twice does not add a second sidecar or volume.
    again = shipper.with_shipper(obj)
    assert again == obj


def test_service_account_and_config_map_hold_no_key() -> None:
    sa, cm = shipper.objects(LOGS, "rp-clu-1")
    assert sa["kind"] == "ServiceAccount"
    assert sa["metadata"] == {
        "name": workload.SERVICE_ACCOUNT,
        "namespace": "rp-clu-1",
        "annotations": {shipper.CLIENT_ID_ANNOTATION: "client-1", shipper.TENANT_ID_ANNOTATION: "tenant-1"},
    }
    assert cm["kind"] == "ConfigMap"
    config = ShipperConfig.from_json(cm["data"][shipper.CONFIG_KEY])
    assert config == ShipperConfig("https://rplogsabc.blob.core.windows.net/", "ray-logs", "ten_1", "clu_1")
    text = json.dumps([sa, cm]).lower()
    for word in ("accountkey", "sharedaccesssignature", "shared_key", "sas_token", "secret"):
        assert word not in text


def test_shipper_config_is_checked() -> None:
    with pytest.raises(ValueError, match="https"):
        ShipperConfig("http://insecure/", "c", "t", "x")
    with pytest.raises(ValueError, match="interval"):
        ShipperConfig("https://a/", "c", "t", "x", interval=0)
    with pytest.raises(ValueError, match="unknown"):
        ShipperConfig.from_json(json.dumps({"account_url": "https://a/", "container": "c", "key": "k"}))


def test_storage_names_and_policy() -> None:
    name = account_name("sub", "ml", "eastus2")
    assert name == account_name("SUB", "ML", "EastUS2")
    assert len(name) == 24
    assert name.isalnum()
    assert name.islower()
    assert name != account_name("sub", "ml", "westeurope")
    rule = policy_body(30)["properties"]["policy"]["rules"][0]
    assert rule["definition"]["actions"] == {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": 30}}}
    assert workload.subject("ns") == "system:serviceaccount:ns:rayplane-logs"
    assert workload.assignment_name("/s/c", "p") == workload.assignment_name("/S/C", "P")


def test_node_names() -> None:
    assert node_name("train-head-x7k2p", "head", "headgroup") == "head"
    assert node_name("train-cpu-worker-abc12", "worker", "cpu") == "cpu-abc12"


def test_pod_shipper_ships_the_session_and_a_final_pass(tmp_path: Path) -> None:
    root = tmp_path / "ray"
    logs = root / "session_2026-12-04_1" / "logs"
    logs.mkdir(parents=True)
    (root / "session_latest").symlink_to(root / "session_2026-12-04_1")
    (logs / "raylet.out").write_bytes(b"one\n")
    store = DirectoryLogStore(str(tmp_path / "store"), "ray-logs")
    config = ShipperConfig("https://a.blob.core.windows.net/", "ray-logs", "ten_1", "clu_1", 0.2, str(root))
    stop = threading.Event()
    pod = PodShipper(store, config, "cpu-abc12", stop)
    thread = threading.Thread(target=pod.run)
    thread.start()
    key = LogKey("ten_1", "clu_1", "cpu-abc12", "raylet.out")
    try:
        deadline = threading.Event()
        for _ in range(100):
            if store.size(key) == 4:
                break
            deadline.wait(0.05)
        assert store.read(key) == b"one\n"
        with (logs / "raylet.out").open("ab") as fh:
            fh.write(b"two\n")
    finally:
        stop.set()  # the final pass ships "two" even though no interval has passed
        thread.join(10)
    assert not thread.is_alive()
    assert store.read(key) == b"one\ntwo\n"
    assert [f.path for f in store.files("ten_1", "clu_1")] == ["raylet.out"]


def _milli(value: str) -> int:
    return int(value[:-1]) if value.endswith("m") else int(value[:-2])


def test_the_pod_still_fits_its_node() -> None:
    plain = manifests.ray_cluster(_target(SPEC), replicas={})
    shipped = shipper.with_shipper(plain)
    groups = [(plain["spec"]["headGroupSpec"], shipped["spec"]["headGroupSpec"])]
    groups += list(zip(plain["spec"]["workerGroupSpecs"], shipped["spec"]["workerGroupSpecs"], strict=True))
    for before, after in groups:
        old = before["template"]["spec"]["containers"][0]["resources"]["requests"]
        pod = after["template"]["spec"]["containers"]
        for kind in ("cpu", "memory"):
            total = sum(_milli(c["resources"]["requests"][kind]) for c in pod)
            assert total == _milli(old[kind]), kind
        limit = sum(_milli(c["resources"]["limits"]["memory"]) for c in pod)
        assert limit == _milli(before["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"])
        memory = int(before["rayStartParams"]["memory"]) - shipper.SIDECAR_MEMORY_MIB * 1024 * 1024
        assert after["rayStartParams"]["memory"] == str(memory)
