"""A service on the local provider, end to end: real Ray clusters (one per version), the
real Caddy in front, and ``wrk`` hitting the endpoint across a rollout and a rollback.

The tests run in order and share one service (module-scoped): its first version comes up
with the two apps of ``tests/support/serve_apps`` (their directory uploaded by the runner),
its Serve config changes in place, a second version takes the traffic in two steps under
load, and a third whose import path names a missing module is rolled back, traffic never
having moved. Every step is ``ensure`` called in a polling loop under a deadline, as the
reconciler would. The module fixture tears everything down and checks no Ray process is left.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rayplane.clusters.serve import RolloutSpec, RolloutStrategy, ServeSpec
from rayplane.providers.base import ClusterTarget, NodeShape, ProviderEvent, RetriableError
from rayplane.providers.local import LocalProvider, processes, proxy_config, store
from rayplane.providers.local.proxy import CaddyProxy, ProxyError
from rayplane.providers.local.serve import ServeClient
from rayplane.providers.local.service import LocalServiceRunner, version_cluster_id
from rayplane.providers.services import ServicePhase, ServiceProgress, ServiceStep, VersionTarget
from tests.e2e.stack import wait_for
from tests.support.nodeuser import grant_node_user_access
from tests.support.wrk import Wrk, assert_no_errors, parse_wrk

try:
    proxy_config.caddy_binary()
    HAVE_CADDY = True
except ProxyError:
    HAVE_CADDY = False

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(not HAVE_CADDY, reason=f"caddy is missing: {proxy_config.INSTALL_HINT}"),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is missing (apt-get install -y wrk)"),
]

SERVICE = "svc_test_local_service1"
TOKEN = "token-v-" + "v" * 32
TARGET = ClusterTarget(
    cluster_id=SERVICE,
    name="service",
    ray_version="2.60.0",
    image=None,
    head=NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=4.0),
    groups=(),
    cloud_config={"capacity": {"cpus": 4, "memory_gib": 16, "gpus": 0}},
    ray_token=TOKEN,
)
APPS_DIR = Path(__file__).resolve().parents[1] / "support" / "serve_apps"
STEP_TIMEOUT = 420.0


def serve_spec(*, greeting: str = "hello", broken: bool = False) -> ServeSpec:
    env = {"working_dir": str(APPS_DIR)}  # a local path: the runner uploads it
    apps: list[dict[str, Any]] = [
        {
            "name": "echo",
            "import_path": "echo:app",
            "route_prefix": "/echo",
            "runtime_env": env,
            "deployments": [{"name": "Echo", "user_config": {"greeting": greeting}}],
        },
        {"name": "counter", "import_path": "counter:app", "route_prefix": "/counter", "runtime_env": env},
    ]
    if broken:
        apps.append(
            {"name": "broken", "import_path": "no_such_module:app", "route_prefix": "/broken", "runtime_env": env}
        )
    return ServeSpec.from_json({"applications": apps})


ROLLOUT = RolloutSpec(strategy=RolloutStrategy.INCREMENTAL, step_percent=50, interval_seconds=3)


class Service:
    """The module's one service: its runner, the state the caller persists, and events."""

    def __init__(self, runner: LocalServiceRunner) -> None:
        self.runner = runner
        self.state: dict[str, Any] = {}
        self.events: list[ProviderEvent] = []
        self.calls = 0

    def drive(
        self,
        want: VersionTarget,
        serve: ServeSpec,
        rollout: RolloutSpec,
        until: Callable[[ServiceProgress], bool],
        timeout: float = STEP_TIMEOUT,
    ) -> ServiceStep:
        """Call ``ensure`` as the reconciler does, persisting its state, until ``until``."""
        deadline = time.monotonic() + timeout
        last: ServiceStep | None = None
        while True:
            try:
                last = self.runner.ensure(SERVICE, want, serve, rollout, self.state)
                self.state, self.calls = last.state, self.calls + 1
                self.events += last.events
                if until(last.progress):
                    return last
            except RetriableError as exc:  # a slow machine can fail a head start: retried
                if exc.provider_state is not None:
                    self.state = exc.provider_state
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s; last step: {last!r}")
            time.sleep(0.5)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.state['listen_port']}"

    def head_pid(self, version: int) -> int:
        return int(self.state["versions"][str(version)]["provider"]["nodes"]["head"]["pid"])


def version(n: int) -> VersionTarget:
    # On the local provider the image is ignored: a new image is just a new version number.
    return VersionTarget(n, dataclasses.replace(TARGET, image=f"rayproject/ray:2.60.0-v{n}"))


def get(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=30, trust_env=False)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    grant_node_user_access()
    root = Path(tempfile.mkdtemp(prefix="rpv", dir="/tmp"))  # short: Ray's socket paths
    provider = LocalProvider(root, head_timeout=120.0)
    proxy_dir = Path(tempfile.mkdtemp(prefix="rpp", dir="/tmp"))
    proxy = CaddyProxy(proxy_dir)
    svc = Service(LocalServiceRunner(provider, proxy))
    try:
        yield svc
    finally:
        try:
            svc.runner.teardown(SERVICE, svc.state)
            assert SERVICE not in proxy.desired()
        finally:
            processes.kill_processes(processes.processes_under(root))
            left = processes.processes_under(root)
            proxy.stop()
            proxy.close()
            subprocess.run(["rm", "-rf", str(root), str(proxy_dir)], check=False)
        assert left == [], f"Ray processes left: {[p.pid for p in left]}"


def test_the_first_version_runs_both_apps_behind_the_endpoint(service: Service) -> None:
    started = time.monotonic()
    step = service.drive(version(1), serve_spec(), ROLLOUT, lambda p: p.phase is ServicePhase.RUNNING)
    print(f"\nfirst version RUNNING after {time.monotonic() - started:.0f} s, {service.calls} calls")
    progress = step.progress
    assert (progress.active_version, progress.pending_version, progress.traffic_percent) == (1, None, 0)
    assert progress.endpoint_url == service.url()
    assert {(a.version, a.name, a.status) for a in progress.applications} == {
        (1, "echo", "RUNNING"),
        (1, "counter", "RUNNING"),
    }
    assert progress.failure is None
    assert service.state["versions"]["1"]["cluster_id"] == version_cluster_id(SERVICE, 1)
    body = get(service.url() + "/echo/hi")
    assert (body["app"], body["greeting"], body["path"]) == ("echo", "hello", "/echo/hi")
    assert get(service.url() + "/counter")["app"] == "counter"
    assert {e.code for e in service.events} >= {"ServeDeployed", "ServiceRunning"}


def test_a_serve_config_change_applies_in_place(service: Service) -> None:
    pid = service.head_pid(1)
    service.events.clear()
    step = service.drive(
        version(1),
        serve_spec(greeting="bonjour"),
        ROLLOUT,
        lambda p: p.phase is ServicePhase.RUNNING and get(service.url() + "/echo/x")["greeting"] == "bonjour",
        timeout=240,
    )
    assert (step.progress.active_version, step.progress.pending_version) == (1, None)
    assert service.head_pid(1) == pid  # the same Ray processes: no new cluster
    assert list(service.state["versions"]) == ["1"]
    assert [e.code for e in service.events].count("ServeDeployed") == 1
    assert "RolloutStarted" not in {e.code for e in service.events}


def test_applications_serve_lost_are_applied_again(service: Service) -> None:
    """Serve's controller back without its tables (as after a head restart whose GCS was lost)
    knows none of the applications: the next step applies the config again."""
    endpoint = service.runner.provider.serve_endpoint(service.state["versions"]["1"]["provider"])
    assert endpoint is not None
    with ServeClient(endpoint.dashboard_url, token=TARGET.ray_token) as client:
        client.delete_all()
        wait_for(lambda: not client.status().applications, 120, "Serve to forget its applications")
    service.events.clear()
    step = service.drive(
        version(1),
        serve_spec(greeting="bonjour"),
        ROLLOUT,
        lambda p: p.phase is ServicePhase.RUNNING and get(service.url() + "/echo/x")["greeting"] == "bonjour",
        timeout=240,
    )
    assert step.progress.active_version == 1
    codes = [e.code for e in service.events]
    assert codes.count("ServeRedeployed") == 1, codes
    assert codes.count("ServeDeployed") == 1, codes


def test_a_new_version_takes_the_traffic_under_load_without_an_error(service: Service, tmp_path: Path) -> None:
    before_out = Wrk(service.url() + "/echo/x", tmp_path / "before.lua", seconds=5).proc.communicate(timeout=60)[0]
    before_result = parse_wrk(before_out)
    assert_no_errors(before_result, before_out)
    service.events.clear()
    wrk = Wrk(service.url() + "/echo/x", tmp_path / "during.lua")
    started = time.monotonic()
    try:
        step = service.drive(
            version(2),
            serve_spec(greeting="bonjour"),
            ROLLOUT,
            lambda p: p.phase is ServicePhase.RUNNING and p.active_version == 2,
        )
        counts, output = wrk.stop()
    finally:
        wrk.kill()
    print(
        f"\nrollout took {time.monotonic() - started:.0f} s; wrk p99 before {before_result['p99_ms']} ms "
        f"({before_result['requests']:.0f} requests), during {counts['p99_ms']} ms ({counts['requests']:.0f} requests)"
    )
    assert_no_errors(counts, output)
    assert step.progress.pending_version is None
    assert step.progress.traffic_percent == 0
    assert list(service.state["versions"]) == ["2"]
    moved = [e.reason for e in service.events if e.code == "TrafficMoved"]
    assert moved == ["version 2 takes 50 % of new requests", "version 2 takes 100 % of new requests"]
    assert "RolloutCompleted" in {e.code for e in service.events}
    assert not store.cluster_dir(service.runner.provider.root, version_cluster_id(SERVICE, 1)).exists()
    assert get(service.url() + "/echo/y")["greeting"] == "bonjour"


def test_a_version_that_cannot_import_is_rolled_back_and_traffic_never_moves(service: Service, tmp_path: Path) -> None:
    service.events.clear()
    count_before = get(service.url() + "/counter")["count"]
    quick = dataclasses.replace(ROLLOUT, health_timeout_seconds=90)
    wrk = Wrk(service.url() + "/counter", tmp_path / "rollback.lua")
    try:
        step = service.drive(
            version(3), serve_spec(greeting="bonjour", broken=True), quick, lambda p: p.failure is not None
        )
        counts, output = wrk.stop()
    finally:
        wrk.kill()
    print(f"\nduring the failed version: wrk p99 {counts['p99_ms']} ms ({counts['requests']:.0f} requests)")
    assert_no_errors(counts, output)
    progress = step.progress
    assert (progress.phase, progress.active_version, progress.pending_version) == (ServicePhase.RUNNING, 2, None)
    assert progress.failure is not None, progress
    assert "ModuleNotFoundError: No module named 'no_such_module'" in progress.failure
    codes = [e.code for e in service.events]
    assert "TrafficMoved" not in codes
    assert "RolledBack" in codes
    assert service.state["failed"] == [3]
    assert list(service.state["versions"]) == ["2"]
    assert not store.cluster_dir(service.runner.provider.root, version_cluster_id(SERVICE, 3)).exists()
    # The old version kept serving all along: its counter went on from where it was.
    assert get(service.url() + "/counter")["count"] > count_before + counts["requests"] - 1
    # Asked again for version 3: not tried again, the failure stays.
    again = service.runner.ensure(SERVICE, version(3), serve_spec(broken=True), quick, service.state)
    assert (again.progress.phase, again.progress.pending_version) == (ServicePhase.RUNNING, None)
    assert again.progress.failure == progress.failure
    assert list(again.state["versions"]) == ["2"]


def test_an_explicit_rollback_moves_traffic_back_after_it_moved(service: Service, tmp_path: Path) -> None:
    service.events.clear()
    pid = service.head_pid(2)
    slow = dataclasses.replace(ROLLOUT, interval_seconds=3600)  # stays at the first step
    wrk = Wrk(service.url() + "/echo/z", tmp_path / "explicit.lua")
    try:
        service.drive(version(4), serve_spec(greeting="hallo"), slow, lambda p: p.traffic_percent == 50)
        deadline = time.monotonic() + 120
        while True:
            step = service.runner.rollback(SERVICE, service.state, token=TOKEN)
            service.state = step.state
            service.events += step.events
            if step.progress.phase is ServicePhase.RUNNING or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        counts, output = wrk.stop()
    finally:
        wrk.kill()
    print(f"\nacross the explicit rollback: wrk p99 {counts['p99_ms']} ms ({counts['requests']:.0f} requests)")
    assert_no_errors(counts, output)
    progress = step.progress
    assert (progress.phase, progress.active_version, progress.pending_version) == (ServicePhase.RUNNING, 2, None)
    assert progress.failure == "rolled back on request"
    assert [e.code for e in service.events if e.code in ("TrafficMoved", "RolledBack")] == [
        "TrafficMoved",
        "RolledBack",
    ]
    assert service.state["failed"] == [3, 4]
    assert list(service.state["versions"]) == ["2"]
    assert service.head_pid(2) == pid
    assert get(service.url() + "/echo/z")["greeting"] == "bonjour"  # the old version's config
