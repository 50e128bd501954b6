"""The real ``kubectl`` (and the Python client) reading an emulated AKS cluster as a user would:
``get`` prints the API server's Table columns and KubeRay's printer columns, ``-w`` and
``kubectl wait`` watch, the Python client's ``watch.Watch`` streams, and watches resume, expire
and end as the API server's do.

Objects are created through the Python client (JSON): ``kubectl create`` of built-in kinds
sends protobuf, which is another part of the emulator's work."""

from __future__ import annotations

import functools
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from emulators.azure.kube.testing import KubeRayEnv, load_yaml, small_raycluster, wait_for
from emulators.azure.server import EmulatorProcess
from tests.support.emulators import kube_knobs

KUBERAY = Path(__file__).resolve().parents[1] / "reference" / "kuberay"
KUBECTL = "/usr/bin/kubectl"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
Obj = dict[str, Any]

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")


@functools.cache
def _crd_json() -> str:
    return json.dumps(load_yaml(KUBERAY / "ray.io_rayclusters.yaml")[0])


@dataclass
class Kubectl:
    env: KubeRayEnv
    config: Path
    cache: Path

    def __call__(self, *args: str, timeout: float = 30.0, check: bool = True) -> str:
        done = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.config}", f"--cache-dir={self.cache}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout + done.stderr if not check else done.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [KUBECTL, f"--kubeconfig={self.config}", f"--cache-dir={self.cache}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def kubectl_for(env: KubeRayEnv, directory: Path) -> Kubectl:
    config = directory / "kubeconfig"
    config.write_text(yaml.safe_dump(env.cluster.kubeconfig))
    return Kubectl(env, config, directory / "cache")


@pytest.fixture(scope="module")
def ray(emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """A cluster with KubeRay, a RayCluster ``rc`` (head + 1 worker) up, and kubectl for it."""
    with kube_knobs(emulator, node_boot_seconds=0.3, scale_down_seconds=30.0):
        env = KubeRayEnv(emulator, json.loads(_crd_json()))
        env.cluster.add_pool("cpu", autoscale=True, min_count=0, max_count=3, vcpus=4, memory_gib=16)
        env.create(small_raycluster("rc", workers=1))
        env.wait_ready("rc", 1)
        yield kubectl_for(env, tmp_path_factory.mktemp("kubectl"))


def _header(output: str) -> list[str]:
    return output.splitlines()[0].split()


def _configmap(name: str) -> Obj:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


# -- tables -------------------------------------------------------------------------------------
def test_get_rayclusters_prints_kuberay_printer_columns(ray: Kubectl) -> None:
    out = ray("get", "rayclusters")
    lines = out.splitlines()
    header = ["NAME", "DESIRED", "WORKERS", "AVAILABLE", "WORKERS", "CPUS", "MEMORY", "GPUS", "STATUS", "AGE"]
    assert lines[0].split() == header
    assert lines[1].split()[:7] == ["rc", "1", "1", "1", "2Gi", "0", "ready"]
    wide = ray("get", "raycluster", "rc", "-o", "wide").splitlines()
    assert "HEAD POD IP" in wide[0]
    assert "TPUS" in wide[0]
    head_ip = ray.env.rc("rc")["status"]["head"]["podIP"]
    assert head_ip in wide[1]


def test_get_pods_wide_and_nodes(ray: Kubectl) -> None:
    out = ray("get", "pods", "-o", "wide", "-l", "ray.io/cluster=rc")
    header = out.splitlines()[0]
    for column in ("NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"):
        assert column in header
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 2
    pods = {p.metadata.name: p for p in ray.env.pods("rc")}
    for row in rows:
        pod = pods[row[0]]
        assert row[1:4] == ["1/1", "Running", "0"]
        assert row[5] == pod.status.pod_ip
        assert row[6] == pod.spec.node_name
        assert row[7:] == ["<none>", "<none>"]
    narrow = ray("get", "pods", "-l", "ray.io/cluster=rc")
    assert _header(narrow) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]

    nodes = ray("get", "nodes")
    assert _header(nodes) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert all(line.split()[1:3] == ["Ready", "<none>"] for line in nodes.splitlines()[1:])
    assert "INTERNAL-IP" in ray("get", "nodes", "-o", "wide").splitlines()[0]
    deploy = ray("get", "deployments", "-n", "kuberay-system")
    assert _header(deploy) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy.splitlines()[1].split()[:4] == ["kuberay-operator", "1/1", "1", "1"]
    svc = ray("get", "svc", "rc-head-svc")
    assert _header(svc) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "8265/TCP" in svc


def test_table_over_http(ray: Kubectl) -> None:
    with ray.env.cluster.http() as http:
        r = http.get("/api/v1/namespaces/default/pods", headers={"Accept": TABLE + ",application/json"})
        table = r.json()
        assert table["kind"] == "Table"
        assert table["apiVersion"] == "meta.k8s.io/v1"
        assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
        ]
        row = table["rows"][0]
        assert row["object"]["kind"] == "PartialObjectMetadata"
        assert "spec" not in row["object"]
        full = http.get(
            "/apis/ray.io/v1/namespaces/default/rayclusters/rc",
            params={"includeObject": "Object"},
            headers={"Accept": TABLE},
        ).json()
        assert full["rows"][0]["object"]["spec"]["workerGroupSpecs"][0]["groupName"] == "workers"
        names = [c["name"] for c in full["columnDefinitions"]]
        assert names[:3] == ["Name", "desired workers", "available workers"]
        assert full["rows"][0]["cells"][1] == 1  # an integer column is an integer
        plain = http.get("/api/v1/namespaces/default/pods", headers={"Accept": "application/json"}).json()
        assert plain["kind"] == "PodList"
        meta = http.get(
            "/api/v1/namespaces", headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"}
        ).json()
        assert meta["kind"] == "PartialObjectMetadataList"
        assert {"default", "kube-system"} <= {i["metadata"]["name"] for i in meta["items"]}


# -- watches ------------------------------------------------------------------------------------
class Lines:
    """The output lines of a process, read by a thread so that waits have deadlines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        stream = proc.stdout
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self.queue.put(line)
            self.queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def until(self, needle: str, seconds: float = 20.0) -> str:
        """The lines read so far once one contains ``needle``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if needle in line:
                return "".join(self.seen)
        raise AssertionError(f"{needle!r} not seen in {seconds}s; got {''.join(self.seen)!r}")


def test_kubectl_get_watch_streams_changes(ray: Kubectl) -> None:
    ray.env.core.create_namespaced_config_map("default", _configmap("anchor"))
    proc = ray.popen("get", "configmaps", "-w", "--output-watch-events")
    try:
        lines = Lines(proc)
        lines.until("anchor")
        ray.env.core.create_namespaced_config_map("default", _configmap("watched"))
        ray.env.core.patch_namespaced_config_map("watched", "default", {"data": {"k": "v", "k2": "v2"}})
        ray.env.core.delete_namespaced_config_map("watched", "default")
        seen = lines.until("DELETED")
        events = [line.split()[:2] for line in seen.splitlines() if "watched" in line]
        assert events == [["ADDED", "watched"], ["MODIFIED", "watched"], ["DELETED", "watched"]]
        assert [line.split()[2] for line in seen.splitlines() if line.startswith("MODIFIED")] == ["2"]
    finally:
        proc.kill()
        proc.wait()
        ray.env.core.delete_namespaced_config_map("anchor", "default")


def test_kubectl_wait_for_condition_and_jsonpath(ray: Kubectl) -> None:
    env = ray.env
    env.patch("rc", {"spec": {"workerGroupSpecs": [{**env.rc("rc")["spec"]["workerGroupSpecs"][0], "replicas": 2}]}})
    out = ray("wait", "--for=condition=Ready", "pod", "-l", "ray.io/node-type=worker", "--timeout=30s", timeout=40)
    assert out.count("condition met") == 2
    out = ray(
        "wait", "--for=jsonpath={.status.availableWorkerReplicas}=2", "raycluster/rc", "--timeout=30s", timeout=40
    )
    assert "raycluster.ray.io/rc condition met" in out
    head = env.pods("rc", "ray.io/node-type=head")[0].metadata.name
    assert "condition met" in ray("wait", "--for=condition=Ready", f"pod/{head}", "--timeout=10s", timeout=20)
    assert "condition met" in ray("wait", "--for=jsonpath={.status.state}=ready", "raycluster/rc", "--timeout=10s")
    env.patch("rc", {"spec": {"workerGroupSpecs": [{**env.rc("rc")["spec"]["workerGroupSpecs"][0], "replicas": 1}]}})
    wait_for(lambda: len(env.pods("rc", "ray.io/node-type=worker")) == 1, what="the worker group back at 1")


def test_python_client_watch_stream(ray: Kubectl) -> None:
    core = ray.env.core
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", _configmap("py-watch"))
    core.delete_namespaced_config_map("py-watch", "default")
    w = kubernetes.watch.Watch()
    seen = []
    for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    assert seen == [("ADDED", "py-watch"), ("DELETED", "py-watch")]


def _events(http: Any, path: str, accept: str = "application/json", **params: Any) -> list[Obj]:
    with http.stream("GET", path, params={"watch": "1", **params}, headers={"Accept": accept}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        return [json.loads(line) for line in r.iter_lines() if line.strip()]


def test_watch_resumes_filters_expires_and_bookmarks(ray: Kubectl) -> None:
    core = ray.env.core
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"x": "1"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"x": "2"}}})
    path = "/api/v1/namespaces/default/configmaps"
    with ray.env.cluster.http() as http:
        events = _events(http, path, resourceVersion=start, labelSelector="x=1", timeoutSeconds=1)
        # "a" stops matching x=1: the watcher sees it go.
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("DELETED", "a")]
        events = _events(http, path, fieldSelector="metadata.name=b", timeoutSeconds=1, allowWatchBookmarks="true")
        assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
        assert events[1]["object"]["kind"] == "ConfigMap"
        assert int(events[1]["object"]["metadata"]["resourceVersion"]) >= int(start)
        nodes = _events(http, "/api/v1/nodes", timeoutSeconds=1)
        assert {e["type"] for e in nodes} == {"ADDED"}
        assert len(nodes) >= 2
        table = _events(http, path, TABLE, fieldSelector="metadata.name=b", timeoutSeconds=1)
        assert table[0]["object"]["kind"] == "Table"
        assert table[0]["object"]["rows"][0]["cells"][:2] == ["b", 0]
    for name in ("a", "b"):
        core.delete_namespaced_config_map(name, "default")


def test_watches_end_with_the_server_and_expire_across_a_restart(fresh_emulator: EmulatorProcess) -> None:
    env = KubeRayEnv(fresh_emulator, json.loads(_crd_json()), operator=False, system_pool=False)
    old = env.core.list_namespaced_config_map("default").metadata.resource_version
    env.core.create_namespaced_config_map("default", _configmap("before"))
    with env.cluster.http() as http, http.stream("GET", "/api/v1/namespaces/default/pods", params={"watch": "1"}) as r:
        assert r.status_code == 200
        started = time.monotonic()
        fresh_emulator.restart()
        assert list(r.iter_lines()) == []
        assert time.monotonic() - started < 8.0  # the stop is quick; the start takes the rest
    env.core.create_namespaced_config_map("default", _configmap("after"))
    with env.cluster.http() as http:
        # The feed starts again with the process: a version from before is gone (410 Expired).
        expired = _events(http, "/api/v1/namespaces/default/configmaps", resourceVersion=old, timeoutSeconds=5)
        assert [e["type"] for e in expired] == ["ERROR"]
        assert expired[0]["object"]["code"] == 410
        assert expired[0]["object"]["reason"] == "Expired"
        assert expired[0]["object"]["message"].startswith(f"too old resource version: {old} (")


# -- events -------------------------------------------------------------------------------------
def test_describe_and_get_events_show_the_control_planes_events(ray: Kubectl) -> None:
    env = ray.env
    worker = env.pods("rc", "ray.io/node-type=worker")[0].metadata.name
    described = ray("describe", "pod", worker)
    events = described[described.index("Events:") :]
    assert "default-scheduler" in events
    assert f"Successfully assigned default/{worker} to aks-cpu-" in events
    assert "Started container ray-worker" in events
    assert "Created container: wait-gcs-ready" in events
    rc = ray("describe", "raycluster", "rc")
    assert "raycluster-controller" in rc[rc.index("Events:") :]
    assert f"Created worker Pod default/{worker}" in rc
    listed = ray("get", "events", "--field-selector", "involvedObject.kind=RayCluster")
    assert _header(listed) == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "CreatedHeadPod" in listed
    assert "raycluster/rc" in listed
    with env.cluster.http() as http:
        # The same events through events.k8s.io/v1, in that API's shape.
        v1 = http.get(
            "/apis/events.k8s.io/v1/namespaces/default/events", params={"fieldSelector": "regarding.kind=RayCluster"}
        ).json()
        assert v1["kind"] == "EventList"
        created = next(e for e in v1["items"] if e["note"] == f"Created worker Pod default/{worker}")
        assert created["reason"] == "CreatedWorkerPod"
        assert created["reportingController"] == "raycluster-controller"
        assert created["regarding"]["name"] == "rc"
        assert (
            http.delete(f"/apis/events.k8s.io/v1/namespaces/default/events/{created['metadata']['name']}").status_code
            == 405
        )

    # An unschedulable pod gets the scheduler's Warning; deleting a running one the kubelet's Killing.
    big = {
        "metadata": {"name": "too-big"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "64"}}}]},
    }
    env.core.create_namespaced_pod("default", big)

    def failed() -> str | None:
        out = ray("get", "events", "--field-selector", "involvedObject.name=too-big,reason=FailedScheduling")
        return out if "Insufficient cpu" in out else None

    out = wait_for(failed, what="a FailedScheduling event")
    assert "Warning" in out
    assert "nodes are available:" in out
    env.core.delete_namespaced_pod("too-big", "default")
    env.core.delete_namespaced_pod(worker, "default")

    def killing() -> str | None:
        out = ray("get", "events", "--field-selector", f"involvedObject.name={worker},reason=Killing")
        return out if "Stopping container ray-worker" in out else None

    wait_for(killing, what="the kubelet's Killing event")
    env.wait_ready("rc", 1)


# -- logs, exec, port-forward -------------------------------------------------------------------
def test_kubectl_logs_of_ray_pods(ray: Kubectl) -> None:
    env = ray.env
    head = env.pods("rc", "ray.io/node-type=head")[0]
    worker = env.pods("rc", "ray.io/node-type=worker")[0].metadata.name
    out = ray("logs", head.metadata.name)
    assert "Ray runtime started." in out
    assert f"ray start --address='{head.status.pod_ip}:6379'" in out
    assert "ray start --head" in out
    tail = ray("logs", worker, "-c", "ray-worker", "--tail=2", "--timestamps").splitlines()
    assert len(tail) == 2
    assert tail[-1].split(" ", 1)[0].endswith("Z")
    assert "rc-head-svc" in ray("logs", worker, "-c", "wait-gcs-ready")
    operator = ray("get", "pods", "-n", "kuberay-system", "-o", "name").split()[0]
    assert ray("logs", "-n", "kuberay-system", operator) == ""
    missing = ray("logs", "nope", check=False)
    assert 'pods "nope" not found' in missing
    previous = ray("logs", worker, "-c", "ray-worker", "--previous", check=False)
    assert f'previous terminated container "ray-worker" in pod "{worker}" not found' in previous
    with env.cluster.http() as http:
        r = http.get(f"/api/v1/namespaces/default/pods/{worker}/log")
        assert "Ray runtime started." in r.text  # the one container (init containers aside)
        r = http.get(f"/api/v1/namespaces/default/pods/{worker}/log", params={"container": "nope"})
        assert r.status_code == 400
        assert r.json()["message"] == f"container nope is not valid for pod {worker}"


def test_logs_of_a_pod_not_yet_running_and_followed_logs(ray: Kubectl) -> None:
    env = ray.env
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}], "nodeSelector": {"agentpool": "nowhere"}}
    stuck = {"metadata": {"name": "stuck"}, "spec": spec}
    env.core.create_namespaced_pod("default", stuck)
    try:
        out = ray("logs", "stuck", check=False)
        assert 'container "c" in pod "stuck" is waiting to start: ContainerCreating' in out
    finally:
        env.core.delete_namespaced_pod("stuck", "default")
    head = env.pods("rc", "ray.io/node-type=head")[0].metadata.name
    proc = ray.popen("logs", "-f", head, "--tail=1")
    try:
        Lines(proc).until("Running subprocesses are monitored")
        assert proc.poll() is None  # the followed log stays open while the container runs
    finally:
        proc.kill()
        proc.wait()


def test_exec_and_port_forward_answer_a_clear_error(ray: Kubectl) -> None:
    head = ray.env.pods("rc", "ray.io/node-type=head")[0].metadata.name
    out = ray("exec", head, "--", "ls", check=False, timeout=20)
    assert "exec is not supported by the Rayplane emulator" in out
    with ray.env.cluster.http() as http:
        r = http.post(f"/api/v1/namespaces/default/pods/{head}/portforward")
        assert r.status_code == 400
        assert r.json()["message"].startswith("port-forward is not supported by the Rayplane emulator")


# -- cordon, taint, top -------------------------------------------------------------------------
def _pod_on(pool: str, name: str, tolerations: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}], "nodeSelector": {"agentpool": pool}}
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name}, "spec": spec}


def test_cordon_and_taint_are_accepted_and_honoured_by_the_scheduler(emulator: EmulatorProcess, tmp_path: Path) -> None:
    env = KubeRayEnv(emulator, json.loads(_crd_json()), operator=False)
    env.cluster.add_pool("fixed", count=1, vcpus=4, memory_gib=16)
    kubectl = kubectl_for(env, tmp_path)
    node = wait_for(lambda: env.core.list_node(label_selector="agentpool=fixed").items, what="the node")[
        0
    ].metadata.name
    wait_for(lambda: "Ready" in kubectl("get", "node", node), what="the node to be ready")
    assert f"node/{node} cordoned" in kubectl("cordon", node)
    assert "Ready,SchedulingDisabled" in kubectl("get", "node", node)
    env.core.create_namespaced_pod("default", _pod_on("fixed", "blocked"))

    def scheduler_says(pod: str, words: str) -> str | None:
        out = kubectl("get", "events", "--field-selector", f"involvedObject.name={pod},reason=FailedScheduling")
        return out if words in out else None

    wait_for(lambda: scheduler_says("blocked", "1 node(s) were unschedulable"), what="the cordon in the message")
    assert env.core.read_namespaced_pod("blocked", "default").spec.node_name is None
    assert f"node/{node} uncordoned" in kubectl("uncordon", node)
    node_events = kubectl("get", "events", "--field-selector", f"involvedObject.kind=Node,involvedObject.name={node}")
    assert f"Node {node} status is now: NodeNotSchedulable" in node_events
    assert f"Node {node} status is now: NodeSchedulable" in node_events
    wait_for(lambda: env.core.read_namespaced_pod("blocked", "default").spec.node_name == node, what="the pod bound")
    # The node is Ready (a pod is bound to it): its lifecycle events, once each.
    described = kubectl("describe", "node", node)
    events = described[described.index("Events:") :]
    assert f"Registered Node {node} in Controller" in events
    assert f"Node {node} status is now: NodeReady" in events
    assert "Starting kubelet." in events
    assert [line.split()[1:2] for line in events.splitlines()].count(["NodeReady"]) == 1

    assert f"node/{node} tainted" in kubectl("taint", "nodes", node, "dedicated=gpu:NoSchedule")
    assert "dedicated=gpu:NoSchedule" in kubectl("describe", "node", node)
    env.core.create_namespaced_pod("default", _pod_on("fixed", "intolerant"))
    toleration = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    env.core.create_namespaced_pod("default", _pod_on("fixed", "tolerant", [toleration]))
    message = wait_for(lambda: scheduler_says("intolerant", "untolerated taint"), what="the taint in the message")
    assert "1 node(s) had untolerated taint {dedicated: gpu}" in message
    wait_for(lambda: env.core.read_namespaced_pod("tolerant", "default").spec.node_name == node, what="tolerant bound")
    assert env.core.read_namespaced_pod("intolerant", "default").spec.node_name is None
    assert f"node/{node} untainted" in kubectl("taint", "nodes", node, "dedicated-")
    wait_for(lambda: env.core.read_namespaced_pod("intolerant", "default").spec.node_name == node, what="bound")
    assert "node/" in kubectl("label", "node", node, "team=ray")
    assert env.core.read_node(node).metadata.labels["team"] == "ray"


def test_kubectl_top_nodes_and_pods(ray: Kubectl) -> None:
    nodes = ray("top", "nodes")
    assert _header(nodes) == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert len(nodes.splitlines()) == 1 + len(ray.env.core.list_node().items)
    pods = ray("top", "pods", "-l", "ray.io/cluster=rc", "--containers")
    rows = [line.split() for line in pods.splitlines()[1:]]
    assert {r[1] for r in rows} == {"ray-head", "ray-worker"}
    assert all(r[2].endswith("m") and r[3].endswith("Mi") for r in rows)
    with ray.env.cluster.http() as http:
        groups = http.get("/apis").json()["groups"]
        assert "metrics.k8s.io" in {g["name"] for g in groups}
        assert http.get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope").status_code == 404
