"""Ray Serve on a local cluster through the Serve REST API (real Ray, one head-only cluster).

The tests run in order and share the cluster and its Serve: two small apps
(``tests/support/serve_apps``, uploaded as their working dir) are deployed, called through the
head's Serve port, changed in place, joined by an app that cannot import, and deleted. The
module fixture tears the cluster down and checks that no Ray process is left.
Needs no repo fixtures: ``pytest --noconftest tests/providers`` works.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from rayplane.providers.base import ClusterTarget, NodeShape, RetriableError
from rayplane.providers.local import LocalProvider, processes, store
from rayplane.providers.local.serve import (
    ApplicationStatus,
    DeploymentStatus,
    ServeClient,
    ServeEndpoint,
    ServeError,
    ServeStatus,
)
from rayplane.providers.local.serve_config import ServeConfig
from tests.support.nodeuser import grant_node_user_access

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

T = TypeVar("T")
C = "cl_test_local_serve00001"
TOKEN = "token-s-" + "s" * 32
HEAD_ONLY = ClusterTarget(
    cluster_id=C,
    name="serve",
    ray_version="2.60.0",
    image=None,
    head=NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=8.0),
    groups=(),
    cloud_config={"capacity": {"cpus": 2, "memory_gib": 8, "gpus": 0}},
    ray_token=TOKEN,
)
APPS_DIR = Path(__file__).resolve().parents[1] / "support" / "serve_apps"
DEPLOY_TIMEOUT = 240.0


def wait_for(what: Callable[[], T], ok: Callable[[T], bool], timeout: float = DEPLOY_TIMEOUT) -> T:
    """Poll ``what`` until ``ok`` holds; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = what()
    while not ok(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; last value: {value!r}")
        time.sleep(1)
        value = what()
    return value


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    grant_node_user_access()
    root = Path(tempfile.mkdtemp(prefix="rps", dir="/tmp"))  # short: Ray's socket paths
    prov = LocalProvider(root, head_timeout=90.0)
    yield prov
    try:
        prov.teardown(HEAD_ONLY, {})
    finally:
        processes.kill_processes(processes.processes_under(root))
        left = processes.processes_under(root)
        subprocess.run(["rm", "-rf", str(root)], check=False)
    assert left == [], f"Ray processes left: {[p.pid for p in left]}"


@pytest.fixture(scope="module")
def cluster(provider: LocalProvider) -> dict[str, Any]:
    """The running cluster's provider state, its Serve endpoint and a place for test facts."""
    for attempt in range(3):  # as the reconciler does: a slow machine can fail a head start
        try:
            state = provider.ensure(HEAD_ONLY, {}).state
            break
        except RetriableError:
            if attempt == 2:
                raise
    wait_for(lambda: provider.observe(HEAD_ONLY, state).head_alive, bool, timeout=120)
    endpoint = provider.serve_endpoint(state)
    assert endpoint is not None
    return {"state": state, "endpoint": endpoint}


@pytest.fixture(scope="module")
def client(cluster: dict[str, Any]) -> Iterator[ServeClient]:
    with ServeClient(cluster["endpoint"].dashboard_url, token=TOKEN, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def working_dir(client: ServeClient) -> str:
    return client.upload_directory(APPS_DIR)


def spec(working_dir: str, *, greeting: str = "hello", echo_replicas: int = 1, broken: bool = False) -> dict[str, Any]:
    env = {"working_dir": working_dir}
    small = {"num_cpus": 0}
    apps: list[dict[str, Any]] = [
        {
            "name": "echo",
            "import_path": "echo:app",
            "route_prefix": "/echo",
            "runtime_env": env,
            "deployments": [
                {
                    "name": "Echo",
                    "num_replicas": echo_replicas,
                    "user_config": {"greeting": greeting},
                    "ray_actor_options": small,
                }
            ],
        },
        {"name": "counter", "import_path": "counter:app", "route_prefix": "/counter", "runtime_env": env},
    ]
    if broken:
        apps.append(
            {"name": "broken", "import_path": "no_such_module:app", "route_prefix": "/broken", "runtime_env": env}
        )
    return {"applications": apps}


def config(endpoint: ServeEndpoint, raw: dict[str, Any]) -> ServeConfig:
    return ServeConfig.from_spec(raw).with_http(endpoint.host, endpoint.port)


def call(endpoint: ServeEndpoint, path: str) -> dict[str, Any]:
    response = httpx.get(endpoint.url + path, timeout=30, trust_env=False)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_head_reserves_a_serve_port_that_nothing_binds_yet(
    provider: LocalProvider, cluster: dict[str, Any], client: ServeClient
) -> None:
    state, endpoint = cluster["state"], cluster["endpoint"]
    assert endpoint.port == state["head_ports"]["serve"] == state["nodes"]["head"]["ports"]["serve"]
    assert state["serve_url"] == endpoint.url == f"http://127.0.0.1:{endpoint.port}"
    assert endpoint.port not in {p for name, p in state["head_ports"].items() if name != "serve"}
    assert processes.port_is_free(endpoint.port)
    status = client.status()
    assert (status.applications, status.http_port) == ({}, None)


def test_two_apps_deploy_run_and_answer(cluster: dict[str, Any], client: ServeClient, working_dir: str) -> None:
    endpoint = cluster["endpoint"]
    assert working_dir.startswith("gcs://_ray_pkg_")
    assert client.upload_directory(APPS_DIR) == working_dir  # same files, same package
    started = time.monotonic()
    client.deploy(config(endpoint, spec(working_dir)))
    status = wait_for(client.status, lambda s: s.all_running(["echo", "counter"]))
    cluster["first_running_s"] = round(time.monotonic() - started, 1)
    echo = status.applications["echo"]
    assert (echo.route_prefix, status.applications["counter"].route_prefix) == ("/echo", "/counter")
    assert echo.deployments["Echo"].status is DeploymentStatus.HEALTHY
    assert echo.deployments["Echo"].running_replicas == echo.deployments["Echo"].target_replicas == 1
    assert (status.http_host, status.http_port) == ("127.0.0.1", endpoint.port)
    assert list(status.proxies.values()) == ["HEALTHY"]  # HeadOnly: one proxy, on the head
    assert call(endpoint, "/echo/hi") == {"app": "echo", "greeting": "hello", "path": "/echo/hi", "pid": ANY_PID}
    assert call(endpoint, "/counter")["count"] == 1
    assert call(endpoint, "/counter")["count"] == 2


def test_a_changed_deployment_applies_in_place(cluster: dict[str, Any], client: ServeClient, working_dir: str) -> None:
    endpoint = cluster["endpoint"]
    before = client.status().applications["counter"].deployments["Counter"].replica_ids
    client.deploy(config(endpoint, spec(working_dir, greeting="bonjour", echo_replicas=2)))

    def changed(s: ServeStatus) -> bool:
        dep = s.applications["echo"].deployments["Echo"]
        return s.all_running(["echo"]) and dep.running_replicas == 2 and dep.replicas == {"RUNNING": 2}

    status = wait_for(client.status, changed)
    assert call(endpoint, "/echo/x")["greeting"] == "bonjour"
    counter = status.applications["counter"]
    assert counter.status is ApplicationStatus.RUNNING
    assert counter.deployments["Counter"].replica_ids == before  # the other app was not restarted
    assert call(endpoint, "/counter")["count"] == 3  # nor was its state lost


def test_an_app_that_cannot_import_fails_and_the_others_keep_running(
    cluster: dict[str, Any], client: ServeClient, working_dir: str
) -> None:
    endpoint = cluster["endpoint"]
    client.deploy(config(endpoint, spec(working_dir, greeting="bonjour", echo_replicas=2, broken=True)))
    status = wait_for(
        client.status,
        lambda s: (
            "broken" in s.applications
            and s.applications["broken"].status not in (ApplicationStatus.NOT_STARTED, ApplicationStatus.DEPLOYING)
        ),
    )
    broken = status.applications["broken"]
    assert broken.status is ApplicationStatus.DEPLOY_FAILED
    # Ray writes its build task's traceback, the import error last.
    assert broken.message.startswith("Deploying app 'broken' failed with exception:\nTraceback")
    assert "ModuleNotFoundError: No module named 'no_such_module'" in broken.message
    assert status.all_running(["echo", "counter"])
    assert call(endpoint, "/counter")["count"] == 4
    assert httpx.get(endpoint.url + "/broken", timeout=30, trust_env=False).status_code == 404


def test_a_config_serve_refuses_is_a_400_with_its_reason(
    cluster: dict[str, Any], client: ServeClient, working_dir: str
) -> None:
    good = config(cluster["endpoint"], spec(working_dir))
    # A path, not a URI: from_spec refuses it, so the value is made by hand to ask Serve.
    path_env = dataclasses.replace(good.applications[0], runtime_env={"working_dir": str(APPS_DIR)})
    with pytest.raises(ServeError) as refused:
        client.deploy(dataclasses.replace(good, applications=(path_env, *good.applications[1:])))
    assert refused.value.status == 400
    assert not refused.value.retriable
    assert "remote URIs in working_dir" in refused.value.text
    assert client.status().all_running(["echo", "counter"])  # nothing changed


def test_delete_all_empties_serve(cluster: dict[str, Any], client: ServeClient) -> None:
    endpoint = cluster["endpoint"]
    client.delete_all()
    status = wait_for(client.status, lambda s: not s.applications and s.http_port is None, timeout=120)
    assert status.proxies == {}
    wait_for(lambda: processes.port_is_free(endpoint.port), bool, timeout=60)  # the proxy is gone
    client.delete_all()  # again: nothing to delete is no error


def test_stop_keeps_the_serve_port_for_the_next_start(provider: LocalProvider, cluster: dict[str, Any]) -> None:
    state = cluster["state"]
    stopped = provider.stop(HEAD_ONLY, state).state
    assert provider.serve_endpoint(stopped) is None  # no head runs
    assert stopped["head_ports"]["serve"] == cluster["endpoint"].port
    assert processes.processes_under(store.cluster_dir(provider.root, C)) == []


class _AnyPid:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and other > 0


ANY_PID: Any = _AnyPid()
