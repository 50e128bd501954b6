"""The real ``kubectl`` against an emulated AKS cluster: what goes over the wire.

Protobuf request bodies of ``kubectl create <kind>``, OpenAPI v2/v3 for client-side
validation and ``kubectl explain``, strategic merge patch, the annotation size limit, the
health endpoints and ``kubectl auth``. kubectl runs as a subprocess with the kubeconfig the
emulator hands out (its server URL and CA), as a user of the emulated cluster would run it.

kubectl must be installed (``make kubectl``, which ``make test`` and ``.ci/run`` run,
installs it): without it these tests fail, they do not skip.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulators.azure.kube.protobuf import MAGIC
from emulators.azure.kube.testing import KubeTestCluster
from emulators.azure.server import EmulatorProcess

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"


MIN_MINOR = 30  # aggregated discovery v2, OpenAPI v3 explain, `auth whoami` GA


@functools.cache
def kubectl_binary() -> str:
    """The kubectl on PATH, checked once: a missing or too old one fails the test loudly."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.fail("kubectl is not installed: run `make kubectl`, or install kubectl 1.30 or later")
    done = subprocess.run([binary, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False)
    try:
        minor = int(json.loads(done.stdout)["clientVersion"]["minor"].rstrip("+"))
    except (ValueError, KeyError) as exc:
        pytest.fail(f"cannot read the version of {binary}: {exc}: {done.stdout}{done.stderr}")
    if minor < MIN_MINOR:
        pytest.fail(
            f"{binary} is kubectl 1.{minor}; these tests need 1.{MIN_MINOR} or later (Debian bookworm's "
            "kubernetes-client is 1.20): install the kubectl package from the Kubernetes apt repository"
        )
    return binary


class Kubectl:
    """``kubectl`` bound to one cluster's kubeconfig."""

    def __init__(self, cluster: KubeTestCluster, directory: Path) -> None:
        self.binary = kubectl_binary()
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
    kubectl.run("create", "service", "externalname", "ext", "-n", "demo", "--external-name=db.example.com")
    external = kubectl.json("get", "service", "ext", "-n", "demo")["spec"]
    assert external["type"] == "ExternalName"
    assert external["externalName"] == "db.example.com"
    assert "clusterIP" not in external
    kubectl.run(
        "create",
        "secret",
        "docker-registry",
        "reg",
        "-n",
        "demo",
        "--docker-server=r.io",
        "--docker-username=u",
        "--docker-password=p",
    )
    assert kubectl.json("get", "secret", "reg", "-n", "demo")["type"] == "kubernetes.io/dockerconfigjson"
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
        # kubectl's typed clients accept protobuf first, then JSON: JSON is answered.
        r = http.get(
            "/api/v1/namespaces/default", headers={"Accept": "application/vnd.kubernetes.protobuf,application/json"}
        )
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"


def test_create_ingress_merges_the_inline_rule_value(kubectl: Kubectl) -> None:
    kubectl.run("create", "service", "clusterip", "web", "--tcp=80:8080")
    kubectl.run("create", "ingress", "web", "--rule=example.com/api*=web:80")
    (rule,) = kubectl.json("get", "ingress", "web")["spec"]["rules"]
    assert rule["host"] == "example.com"
    (path,) = rule["http"]["paths"]  # IngressRuleValue is embedded inline in Go
    assert path["path"] == "/api"
    assert path["pathType"] == "Prefix"
    assert path["backend"] == {"service": {"name": "web", "port": {"number": 80}}}


# -- OpenAPI ----------------------------------------------------------------------------------------
def _install_kuberay_crd(kubectl: Kubectl) -> None:
    kubectl.run("create", "-f", str(KUBERAY / "ray.io_rayclusters.yaml"))


def test_apply_with_default_validation_and_explain(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}))
    assert "configmap/cfg created" in kubectl.run("apply", "-f", str(manifest)).stdout
    explained = kubectl.run("explain", "deployment.spec").stdout
    assert "KIND:       Deployment" in explained
    for field in ("replicas\t<integer>", "selector\t<LabelSelector>", "template\t<PodTemplateSpec>"):
        assert field in explained
    assert "containers\t<[]Container>" in kubectl.run("explain", "deployment.spec.template.spec").stdout
    _install_kuberay_crd(kubectl)
    explained = kubectl.run("explain", "raycluster.spec").stdout
    assert "GROUP:      ray.io" in explained
    assert "workerGroupSpecs\t<[]Object>" in explained
    assert "headGroupSpec\t<Object>" in explained
    assert "groupName" in kubectl.run("explain", "raycluster.spec.workerGroupSpecs").stdout
    sample = str(KUBERAY / "ray-cluster.sample.yaml")
    assert "raycluster.ray.io/raycluster-kuberay created" in kubectl.run("apply", "-f", sample).stdout


def test_openapi_documents(cluster: KubeTestCluster, kubectl: Kubectl) -> None:
    _install_kuberay_crd(kubectl)
    with cluster.http() as http:
        index = http.get("/openapi/v3").json()["paths"]
        assert {"api/v1", "apis/apps/v1", "apis/ray.io/v1", "apis/apiextensions.k8s.io/v1"} <= set(index)
        url = index["apis/apps/v1"]["serverRelativeURL"]
        assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
        apps = http.get(url).json()
        deployment = apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
        assert deployment["x-kubernetes-group-version-kind"] == [
            {"group": "apps", "version": "v1", "kind": "Deployment"}
        ]
        patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
        assert {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}} in patch["parameters"]
        containers = apps["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
        assert containers["x-kubernetes-patch-merge-key"] == "name"
        assert containers["x-kubernetes-patch-strategy"] == "merge"
        ray = http.get(index["apis/ray.io/v1"]["serverRelativeURL"]).json()["components"]["schemas"]
        assert "workerGroupSpecs" in ray["io.ray.v1.RayCluster"]["properties"]["spec"]["properties"]
        v2 = http.get("/openapi/v2", headers={"Accept": "application/json"}).json()
        assert v2["swagger"] == "2.0"
        assert "io.ray.v1.RayCluster" in v2["definitions"]
        assert v2["definitions"]["io.k8s.api.core.v1.Pod"]["properties"]["spec"] == {
            "$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"
        }
        only_protobuf = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
        r = http.get("/openapi/v2", headers=only_protobuf)
        assert r.headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        assert r.content.startswith(b"\n\x032.0")  # gnostic Document: swagger = "2.0"
        assert http.get("/openapi/v2", headers={"Accept": "text/html"}).status_code == 406
    # kubectl reads the protobuf v2 document for explain's v2 output.
    explained = kubectl.run(
        "explain", "deployment.spec.template.spec.containers", "--output=plaintext-openapiv2"
    ).stdout
    assert "RESOURCE: containers <[]Object>" in explained
    assert "image\t<string>" in explained
    explained = kubectl.run("explain", "raycluster.spec.workerGroupSpecs", "--output=plaintext-openapiv2").stdout
    assert "groupName\t<string> -required-" in explained


def test_aggregated_discovery(cluster: KubeTestCluster, kubectl: Kubectl) -> None:
    v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    accept = f"{v2},application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    _install_kuberay_crd(kubectl)
    with cluster.http() as http:
        core = http.get("/api", headers={"Accept": accept})
        assert core.headers["content-type"] == v2
        (group,) = core.json()["items"]
        pods = next(r for r in group["versions"][0]["resources"] if r["resource"] == "pods")
        assert pods["scope"] == "Namespaced"
        assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
        assert {s["subresource"] for s in pods["subresources"]} == {"status", "log", "exec", "attach", "portforward"}
        groups = {g["metadata"]["name"]: g for g in http.get("/apis", headers={"Accept": accept}).json()["items"]}
        assert {"apps", "ray.io", "authorization.k8s.io", "authentication.k8s.io"} <= set(groups)
        (ray,) = groups["ray.io"]["versions"][0]["resources"]
        assert ray["resource"] == "rayclusters"
        assert ray["subresources"][0]["subresource"] == "status"
        # Legacy clients still get the legacy documents.
        assert http.get("/apis", headers={"Accept": "application/json"}).json()["kind"] == "APIGroupList"
    listed = kubectl.run("api-resources", "--api-group=ray.io", "-v=6").stderr
    assert "/apis/ray.io/v1?" not in listed  # one aggregated answer, no per-group-version fetch


# -- health and auth -------------------------------------------------------------------------------
def test_health_endpoints_and_auth(cluster: KubeTestCluster, kubectl: Kubectl) -> None:
    for endpoint in ("healthz", "livez", "readyz"):
        assert kubectl.run("get", "--raw", f"/{endpoint}").stdout == "ok"
        verbose = kubectl.run("get", "--raw", f"/{endpoint}?verbose").stdout
        assert "[+]ping ok" in verbose
        assert verbose.strip().endswith(f"{endpoint} check passed")
        assert kubectl.run("get", "--raw", f"/{endpoint}/ping").stdout == "ok"
    with cluster.http() as http:
        assert http.get("/readyz").text == "ok"  # also under the cluster's own path
        assert http.get("/healthz/nope").status_code == 404
        assert http.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").status_code == 405
    verify = cluster.emulator.ssl_context() or False
    assert httpx.get(f"{cluster.emulator.origin}/readyz", verify=verify).status_code == 401  # a token is needed
    with cluster.http() as http:
        r = http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json={"spec": {}})
        assert r.status_code == 422, r.text
    assert kubectl.run("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert kubectl.run("auth", "can-i", "delete", "rayclusters.ray.io", "-n", "default").stdout.strip() == "yes"
    whoami = kubectl.json("auth", "whoami")
    assert whoami["kind"] == "SelfSubjectReview"
    assert whoami["status"]["userInfo"]["username"] == "masterclient"
    assert "system:masters" in whoami["status"]["userInfo"]["groups"]
    resources = kubectl.run("api-resources", "--api-group=authorization.k8s.io").stdout
    assert "selfsubjectaccessreviews" in resources


# -- strategic merge patch -------------------------------------------------------------------------
def _deployment(containers: list[dict[str, Any]], **spec: Any) -> str:
    labels = {"app": "web"}
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
                **spec,
            },
        }
    )


def _containers(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    spec = kubectl.json("get", "deployment", "web")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def test_apply_patch_and_set_image_merge_containers_by_name(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    c1 = {"name": "c1", "image": "app:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}
    c2 = {"name": "c2", "image": "side:1"}
    manifest.write_text(_deployment([c1, c2]))
    kubectl.run("apply", "-f", str(manifest))
    manifest.write_text(_deployment([{**c1, "image": "app:2"}, c2]))
    assert "deployment.apps/web configured" in kubectl.run("apply", "-f", str(manifest)).stdout
    containers = _containers(kubectl)
    assert containers["c1"]["image"] == "app:2"
    assert containers["c1"]["env"] == [{"name": "A", "value": "1"}]
    assert containers["c2"] == {"name": "c2", "image": "side:1"}
    # kubectl patch's default type is strategic: c1 stays.
    kubectl.run(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"c2","image":"side:3"}]}}}}',
    )
    assert {n: c["image"] for n, c in _containers(kubectl).items()} == {"c1": "app:2", "c2": "side:3"}
    kubectl.run("set", "image", "deployment/web", "c1=app:9")
    containers = _containers(kubectl)
    assert {n: c["image"] for n, c in containers.items()} == {"c1": "app:9", "c2": "side:3"}
    assert containers["c1"]["ports"] == [{"containerPort": 80}]
    # Dropping c2 from the manifest deletes it ($patch: delete); a new strategy drops rollingUpdate
    # ($retainKeys); the env list merges by name.
    c1_next = {**c1, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    manifest.write_text(_deployment([c1_next], strategy={"type": "Recreate"}))
    kubectl.run("apply", "-f", str(manifest))
    containers = _containers(kubectl)
    assert list(containers) == ["c1"]
    assert containers["c1"]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert kubectl.json("get", "deployment", "web")["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_merge_patch_directives(cluster: KubeTestCluster) -> None:
    smp = {"Content-Type": "application/strategic-merge-patch+json"}
    pod = {
        "metadata": {"name": "p", "finalizers": ["a/x", "b/y"], "labels": {"k": "v"}},
        "spec": {
            "containers": [
                {"name": "c1", "image": "i", "volumeMounts": [{"name": "v", "mountPath": "/a"}]},
                {"name": "c2", "image": "j"},
            ],
            "tolerations": [{"key": "t1", "operator": "Exists"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "nodeSelector": {"a": "1", "b": "2"},
        },
    }
    with cluster.http() as http:
        assert http.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
        patch = {
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"], "finalizers": ["c/z"]},
            "spec": {
                "$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}],
                "containers": [
                    {"name": "c1", "volumeMounts": [{"name": "w", "mountPath": "/b"}]},
                    {"name": "c3", "image": "k"},
                ],
                "tolerations": [{"key": "t2", "operator": "Exists"}],
                "volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}],
                "nodeSelector": {"$patch": "replace", "c": "3"},
            },
        }
        r = http.patch("/api/v1/namespaces/default/pods/p", json=patch, headers=smp)
        assert r.status_code == 200, r.text
        spec = r.json()["spec"]
        assert r.json()["metadata"]["finalizers"] == ["b/y", "c/z"]
        assert [c["name"] for c in spec["containers"]] == ["c2", "c1", "c3"]
        c1 = next(c for c in spec["containers"] if c["name"] == "c1")
        assert c1["volumeMounts"] == [{"name": "v", "mountPath": "/a"}, {"name": "w", "mountPath": "/b"}]
        assert c1["image"] == "i"
        assert spec["tolerations"] == [{"key": "t2", "operator": "Exists"}]  # no patch strategy: replaced
        assert spec["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}]
        assert spec["nodeSelector"] == {"c": "3"}
        delete = {"spec": {"containers": [{"name": "c3", "$patch": "delete"}], "nodeSelector": {"$patch": "delete"}}}
        spec = http.patch("/api/v1/namespaces/default/pods/p", json=delete, headers=smp).json()["spec"]
        assert [c["name"] for c in spec["containers"]] == ["c2", "c1"]
        assert "nodeSelector" not in spec
        replace = {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "z"}]}}
        spec = http.patch("/api/v1/namespaces/default/pods/p", json=replace, headers=smp).json()["spec"]
        assert spec["containers"] == [{"name": "only", "image": "z"}]


def test_strategic_merge_patch_of_a_custom_resource_is_415(kubectl: Kubectl) -> None:
    _install_kuberay_crd(kubectl)
    kubectl.run("apply", "-f", str(KUBERAY / "ray-cluster.sample.yaml"))
    refused = kubectl.run("patch", "raycluster", "raycluster-kuberay", "-p", '{"spec":{"suspend":true}}', check=False)
    assert refused.returncode != 0
    assert "is not supported by ray.io/v1, Kind=RayCluster" in refused.stderr
    kubectl.run("patch", "raycluster", "raycluster-kuberay", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    assert kubectl.json("get", "raycluster", "raycluster-kuberay")["spec"]["suspend"] is True


# -- annotation size limit -------------------------------------------------------------------------
def test_client_side_apply_of_the_kuberay_crd_is_refused_as_by_a_real_api_server(kubectl: Kubectl) -> None:
    crd = str(KUBERAY / "ray.io_rayclusters.yaml")
    refused = kubectl.run("apply", "-f", crd, check=False)
    assert refused.returncode != 0
    assert (
        'The CustomResourceDefinition "rayclusters.ray.io" is invalid: '
        "metadata.annotations: Too long: must have at most 262144 bytes"
    ) in refused.stderr
    assert kubectl.run("get", "crd", "-o", "name").stdout.strip() == ""
    assert "serverside-applied" in kubectl.run("apply", "--server-side", "-f", crd).stdout
    kubectl.run("delete", "crd", "rayclusters.ray.io")
    assert "created" in kubectl.run("create", "-f", crd).stdout
    # Applying over the created CRD adds the annotation: refused again, the CRD unchanged.
    assert kubectl.run("apply", "-f", crd, check=False).returncode != 0
    annotations = kubectl.json("get", "crd", "rayclusters.ray.io")["metadata"].get("annotations") or {}
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations


def test_annotation_limit_counts_keys_and_values(cluster: KubeTestCluster) -> None:
    def configmap(name: str, size: int) -> dict[str, Any]:
        key = "example.com/big"
        return {"metadata": {"name": name, "annotations": {key: "x" * (size - len(key))}}}

    with cluster.http() as http:
        assert http.post("/api/v1/namespaces/default/configmaps", json=configmap("fits", 262144)).status_code == 201
        r = http.post("/api/v1/namespaces/default/configmaps", json=configmap("over", 262145))
        assert r.status_code == 422, r.text
        assert r.json()["message"] == (
            'ConfigMap "over" is invalid: metadata.annotations: Too long: must have at most 262144 bytes'
        )
        assert r.json()["details"]["causes"] == [
            {
                "reason": "FieldValueTooLong",
                "message": "Too long: must have at most 262144 bytes",
                "field": "metadata.annotations",
            }
        ]
        grown = {"metadata": {"annotations": {"more": "y"}}}
        r = http.patch(
            "/api/v1/namespaces/default/configmaps/fits",
            json=grown,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 422, r.text


# -- server-side field validation ------------------------------------------------------------------
def test_strict_field_validation_refuses_unknown_fields(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    typo = _deployment([{"name": "c1", "image": "app:1", "imagePullPolicyy": "Always"}]).replace(
        "replicas:", "replcas:"
    )
    manifest.write_text(typo)
    refused = kubectl.run("apply", "-f", str(manifest), check=False)
    assert refused.returncode != 0
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.replcas", unknown field "spec.template.spec.containers[0].imagePullPolicyy"'
    ) in refused.stderr
    refused = kubectl.run("apply", "--server-side", "-f", str(manifest), check=False)
    assert ".spec.replcas: field not declared in schema" in refused.stderr
    # --validate=false (fieldValidation=Ignore) stores what the server knows, as before.
    kubectl.run("apply", "--validate=false", "-f", str(manifest))
    _install_kuberay_crd(kubectl)
    sample = (KUBERAY / "ray-cluster.sample.yaml").read_text()
    refused = kubectl.run("apply", "-f", "-", stdin=sample.replace("rayVersion:", "rayVersin:"), check=False)
    assert 'unknown field "spec.rayVersin"' in refused.stderr
    kubectl.run("apply", "-f", "-", stdin=sample)
