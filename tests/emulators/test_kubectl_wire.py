"""The real ``kubectl`` against an emulated AKS cluster: what goes over the wire.

Protobuf request bodies of ``kubectl create <kind>``, OpenAPI v2/v3 for client-side
validation and ``kubectl explain``, strategic merge patch, the annotation size limit, the
health endpoints and ``kubectl auth``. kubectl runs as a subprocess with the kubeconfig the
emulator hands out (its server URL and CA), as a user of the emulated cluster would run it.

kubectl must be installed (``.ci/run`` installs it): without it these tests fail, they do
not skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulators.azure.kube.protobuf import MAGIC
from emulators.azure.kube.testing import KubeTestCluster
from emulators.azure.server import EmulatorProcess

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"


class Kubectl:
    """``kubectl`` bound to one cluster's kubeconfig."""

    def __init__(self, cluster: KubeTestCluster, directory: Path) -> None:
        binary = shutil.which("kubectl")
        if binary is None:
            pytest.fail(
                "kubectl is not installed: run .ci/run, or install the Debian package kubectl (or kubernetes-client)"
            )
        self.binary = binary
        self.cluster = cluster
        self.config = directory / "kubeconfig"
        self.config.write_text(yaml.safe_dump(cluster.kubeconfig))
        # A cache of its own per cluster: discovery and OpenAPI documents change as CRDs come.
        self.cache = directory / "kube-cache"

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, f"--kubeconfig={self.config}", f"--cache-dir={self.cache}", *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}{done.stdout}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture
def cluster(emulator: EmulatorProcess) -> KubeTestCluster:
    return KubeTestCluster.register(emulator, str(uuid.uuid4()), "rg", f"aks-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def kubectl(cluster: KubeTestCluster, tmp_path: Path) -> Kubectl:
    return Kubectl(cluster, tmp_path)


# -- protobuf request bodies -------------------------------------------------------------------
def test_create_commands_send_protobuf_that_the_server_decodes(kubectl: Kubectl) -> None:
    kubectl.run("create", "namespace", "demo")
    assert kubectl.json("get", "namespace", "demo")["status"]["phase"] == "Active"
    kubectl.run("create", "configmap", "cfg", "-n", "demo", "--from-literal=a=b", "--from-literal=c=")
    assert kubectl.json("get", "configmap", "cfg", "-n", "demo")["data"] == {"a": "b", "c": ""}
    kubectl.run("create", "secret", "generic", "pw", "-n", "demo", "--from-literal=password=s3cret")
    secret = kubectl.json("get", "secret", "pw", "-n", "demo")
    assert secret["data"] == {"password": "czNjcmV0"}
    assert secret["type"] == "Opaque"
    kubectl.run("create", "serviceaccount", "robot", "-n", "demo")
    assert kubectl.json("get", "serviceaccount", "robot", "-n", "demo")["metadata"]["name"] == "robot"
    kubectl.run("create", "service", "clusterip", "web", "-n", "demo", "--tcp=80:8080")
    service = kubectl.json("get", "service", "web", "-n", "demo")
    assert service["spec"]["ports"] == [
        {"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080},
    ]
    assert service["spec"]["selector"] == {"app": "web"}
    assert service["spec"]["clusterIP"].startswith("10.0.")
    kubectl.run("create", "deployment", "web", "-n", "demo", "--image=nginx:1.27", "--replicas=0", "--port=80")
    deployment = kubectl.json("get", "deployment", "web", "-n", "demo")
    assert deployment["spec"]["replicas"] == 0  # a pointer field: its zero value is kept
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nginx:1.27"
    assert container["ports"] == [{"containerPort": 80}]
    kubectl.run("create", "job", "once", "-n", "demo", "--image=busybox", "--", "sh", "-c", "echo hi")
    job = kubectl.json("get", "job", "once", "-n", "demo")
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["containers"][0]["command"] == ["sh", "-c", "echo hi"]
    kubectl.run("create", "role", "reader", "-n", "demo", "--verb=get,list", "--resource=pods")
    role = kubectl.json("get", "role", "reader", "-n", "demo")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    kubectl.run("create", "rolebinding", "read", "-n", "demo", "--role=reader", "--serviceaccount=demo:robot")
    binding = kubectl.json("get", "rolebinding", "read", "-n", "demo")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "robot", "namespace": "demo"}]
    kubectl.run("create", "poddisruptionbudget", "pdb", "-n", "demo", "--selector=app=web", "--min-available=1")
    assert kubectl.json("get", "poddisruptionbudget", "pdb", "-n", "demo")["spec"]["minAvailable"] == 1
    kubectl.run("create", "priorityclass", f"high-{uuid.uuid4().hex[:6]}", "--value=1000")


def test_protobuf_body_of_a_kind_without_a_table_is_415(cluster: KubeTestCluster) -> None:
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    type_meta = field(1, b"v1") + field(2, b"Endpoints")
    body = MAGIC + field(1, type_meta) + field(2, field(1, field(1, b"x")))
    with cluster.http() as http:
        r = http.post(
            "/api/v1/namespaces/default/configmaps",
            content=body,
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        )
        assert r.status_code == 415, r.text
        assert r.json()["reason"] == "UnsupportedMediaType"
        assert "Endpoints" in r.json()["message"]
        r = http.post(
            "/api/v1/namespaces/default/configmaps",
            content=b"not protobuf",
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        )
        assert r.status_code == 400, r.text
