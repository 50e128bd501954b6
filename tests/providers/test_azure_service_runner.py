"""The Azure service runner against the emulated Azure: ARM makes the AKS cluster and its pools
(through ``AzureProvider.prepare``, as for a RayCluster), the emulated KubeRay runs the
RayService, and the runner reads and writes through the real ``kubernetes`` client. A service
comes up RUNNING behind its LoadBalancer, takes a Serve config change in place, rolls a new
image onto a new cluster (blue/green) or in traffic steps behind its Gateway (incremental),
rolls a version whose application fails to import back on its own, stops and starts again,
and is torn down, twice."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from emulators.azure.kube.testing import gateway_api_crds, wait_for
from emulators.azure.server import EmulatorProcess
from rayplane.clusters.serve import RolloutSpec, ServeSpec
from rayplane.metrics.series import Figure, node_figures
from rayplane.providers.azure import manifests, monitors, observability
from rayplane.providers.azure.kube import Kube
from rayplane.providers.azure.provider import AzureProvider
from rayplane.providers.azure.services import AzureServiceRunner
from rayplane.providers.base import ClusterTarget, ProviderEvent, RetriableError
from rayplane.providers.services import ServicePhase, ServiceStep, VersionTarget
from rayplane.settings import Settings
from tests.providers.test_azure_gcs_ft import GCS_REDIS
from tests.support.emulators import kube_knobs
from tests.support.rayservice import SERVICE_SPEC, serve_spec, service_target

APP_ID = str(uuid.uuid4())
NEW_IMAGE = {**SERVICE_SPEC, "image": "rayproject/ray:2.52.0-py312"}


@dataclass
class Cloud:
    provider: AzureProvider
    config: dict[str, Any]
    kube: Kube
    emulator: EmulatorProcess


@pytest.fixture(scope="module")
def cloud(azure_settings: Settings, emulator: EmulatorProcess) -> Iterator[Cloud]:
    """One emulated AKS cluster made through ARM by the provider, with KubeRay, fast Serve
    deploys and deletions, the GCS Redis password Secret and the Gateway API CRDs."""
    settings = azure_settings.model_copy(
        update={
            "azure_client_id": APP_ID,
            "azure_client_secret": SecretStr("emulator-secret"),
            "azure_arm_url": emulator.origin,
        }
    )
    provider = AzureProvider(settings)
    config = {
        "subscription_id": str(uuid.uuid4()),
        "resource_group": "ml",
        "region": "eastus2",
        "tenant_id": str(uuid.uuid4()),
        "auth_mode": "app_consent",
        "aks_mode": "managed",
        "aks_cluster_name": "rayplane",
        "gcs_redis": GCS_REDIS,
        "gateway_class": "azure-alb-external",
    }
    arm_before = emulator.request_json("GET", "/_emulator/arm/config")
    emulator.request_json("PUT", "/_emulator/arm/config", {"operation_seconds": 0.2, "retry_after": 0})
    knobs = {
        "node_boot_seconds": 0.3,
        "serve_deploy_seconds": 0.3,
        "rayservice_requeue_seconds": 0.2,
        "rayservice_deletion_delay_seconds": 0.5,
    }
    try:
        with kube_knobs(emulator, **knobs):
            target = service_target("clu_setup", config)
            state: dict[str, Any] = {}
            prepared = wait_for(lambda: provider.prepare(target, state), timeout=60, what="the AKS cluster")
            kube = prepared[0]
            kube.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "gcs-redis", "namespace": "kuberay-system"},
                    "data": {"password": "c2VjcmV0"},
                }
            )
            for crd in gateway_api_crds():
                kube.apply(crd)
            yield Cloud(provider, config, kube, emulator)
    finally:
        keys = ("operation_seconds", "retry_after")
        emulator.request_json("PUT", "/_emulator/arm/config", {k: arm_before[k] for k in keys})


@dataclass
class Service:
    """One service driven as the reconciler drives it: ``ensure`` on every pass, the state kept."""

    runner: AzureServiceRunner
    cloud: Cloud
    cluster_id: str
    rollout: RolloutSpec
    state: dict[str, Any] = field(default_factory=dict)
    events: list[ProviderEvent] = field(default_factory=list)
    steps: list[ServiceStep] = field(default_factory=list)

    def target(self, spec: dict[str, Any] = SERVICE_SPEC) -> ClusterTarget:
        return service_target(self.cluster_id, self.cloud.config, spec)

    @property
    def namespace(self) -> str:
        return manifests.resource_name(self.target())[0]

    def ensure(self, version: int, serve: ServeSpec, spec: dict[str, Any] = SERVICE_SPEC) -> ServiceStep | None:
        want = VersionTarget(version, self.target(spec))
        try:
            step = self.runner.ensure(self.cluster_id, want, serve, self.rollout, self.state)
        except RetriableError as exc:  # e.g. a pool still being created: the next pass retries
            self.state = json.loads(json.dumps(exc.provider_state or self.state))
            self.events += exc.events
            return None
        return self.keep(step)

    def keep(self, step: ServiceStep) -> ServiceStep:
        self.state = json.loads(json.dumps(step.state))  # persisted as JSON between passes
        self.events += step.events
        self.steps.append(step)
        return step

    def until(
        self,
        version: int,
        serve: ServeSpec,
        done: Callable[[ServiceStep], bool],
        *,
        spec: dict[str, Any] = SERVICE_SPEC,
        timeout: float = 60,
        what: str = "",
    ) -> ServiceStep:
        def once() -> ServiceStep | None:
            step = self.ensure(version, serve, spec)
            return step if step is not None and done(step) else None

        return wait_for(once, timeout=timeout, interval=0.1, what=what)

    def clusters(self) -> list[str]:
        items = self.cloud.kube.list_items(f"/apis/ray.io/v1/namespaces/{self.namespace}/rayclusters", [])
        return sorted(i["metadata"]["name"] for i in items)

    def codes(self) -> list[str | None]:
        return [e.code for e in self.events]

    def head_image(self) -> str:
        """The head image of the RayService's cluster spec (what the spec asks for now)."""
        rs = self.cloud.kube.get("ray.io/v1", "RayService", "shop", self.namespace)
        assert rs is not None
        return str(rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"])

    def serve_selector(self) -> dict[str, str]:
        svc = self.cloud.kube.get("v1", "Service", "shop-serve-svc", self.namespace) or {}
        return dict((svc.get("spec") or {}).get("selector") or {})

    def routes(self) -> dict[str, str]:
        """Each application's route prefix, from Serve's REST API on the serving head,
        through the API server's service proxy, as the provider reaches a dashboard."""
        url = self.cloud.kube.proxy_url(self.namespace, "shop-head-svc", "dashboard")
        headers, verify = self.cloud.provider.jobs_auth(self.cloud.config)
        headers["X-Ray-Authorization"] = f"Bearer {self.target().ray_token}"
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        r = httpx.get(f"{url}/api/serve/applications/", headers=headers, verify=context, timeout=10)
        assert r.status_code == 200, r.text
        return {n: str(a.get("route_prefix")) for n, a in (r.json().get("applications") or {}).items()}


NewService = Callable[..., Service]


@pytest.fixture
def new_service(cloud: Cloud) -> Iterator[NewService]:
    """Services of the test's own (a namespace each), torn down afterwards: the module's
    services share one AKS cluster's pools, sized for one service at a time."""
    made: list[Service] = []

    def make(rollout: RolloutSpec | None = None) -> Service:
        runner = cloud.provider.service_runner()
        assert isinstance(runner, AzureServiceRunner)
        made.append(Service(runner, cloud, f"clu_{uuid.uuid4().hex[:12]}", rollout or RolloutSpec()))
        return made[-1]

    yield make
    for svc in made:

        def torn_down(svc: Service = svc) -> bool:
            try:
                svc.runner.teardown(svc.cluster_id, svc.state)
            except RetriableError:
                return False
            return True

        wait_for(torn_down, timeout=60, what=f"{svc.cluster_id} torn down")


def _running(version: int) -> Callable[[ServiceStep], bool]:
    def done(step: ServiceStep) -> bool:
        p = step.progress
        apps_up = bool(p.applications) and all(a.status == "RUNNING" for a in p.applications)
        return p.phase is ServicePhase.RUNNING and p.active_version == version and p.pending_version is None and apps_up

    return done


def _moved(prefix: str, serve: ServeSpec) -> ServeSpec:
    apps = [{**a, "route_prefix": f"/{prefix}{a['route_prefix']}"} for a in serve.to_json()["applications"]]
    return ServeSpec.from_json({"applications": apps})


def test_first_deploy_in_place_change_and_a_blue_green_rollout(new_service: NewService, app_dir: Path) -> None:
    svc = new_service()
    serve = serve_spec(str(app_dir))
    first = svc.until(1, serve, _running(1), what="version 1 RUNNING")
    assert first.progress.endpoint_url
    assert first.progress.endpoint_url.startswith("http://")
    assert first.progress.endpoint_url.endswith(":8000")
    assert {(a.version, a.name) for a in first.progress.applications} == {(1, "fruit"), (1, "veg")}
    assert svc.steps[0].progress.phase is ServicePhase.PROVISIONING
    assert "ServiceApplied" in svc.codes()
    assert "ServiceRunning" in svc.codes()
    [v1_cluster] = svc.clusters()
    assert svc.routes() == {"fruit": "/fruit", "veg": "/veg"}

    def observed() -> Any:
        seen = svc.runner.observe(svc.cluster_id, VersionTarget(1, svc.target()), svc.state).get(1)
        return seen if seen and seen.head_alive and seen.nodes == {"cpu": 1} else None

    seen = wait_for(observed, what="version 1's head and worker observed")
    assert {n.node_id for n in seen.node_details} == set(_pod_names(svc, v1_cluster))

    # Rayplane's own scrape: the service's Ray pods (KubeRay named their cluster) through the
    # pod proxy; they carry the label the service's PodMonitor selects.
    targets = svc.cloud.provider.metrics_targets(svc.state)
    assert sorted(t.group for t in targets) == ["cpu", "head"]
    assert {t.node for t in targets} == set(_pod_names(svc, v1_cluster))
    label = monitors.cluster_label(svc.cluster_id)
    for pod in svc.cloud.kube.pods(svc.namespace, f"ray.io/cluster={v1_cluster}"):
        assert label.items() <= pod["metadata"]["labels"].items()
    for t in targets:
        verify = ssl.create_default_context(cafile=t.verify) if isinstance(t.verify, str) else t.verify
        with httpx.Client(verify=verify, trust_env=False, timeout=10) as client:
            answer = client.get(t.url, headers=dict(t.headers))
        assert answer.status_code == 200, answer.text
        assert Figure.MEMORY_TOTAL in node_figures(t.group, answer.text).figures

    # The Serve config alone, same version: applied in place on the same cluster.
    moved = _moved("v2", serve)
    svc.steps.clear()
    changed = svc.until(1, moved, _running(1), what="the new Serve config RUNNING")
    # RUNNING means Serve runs the new config (KubeRay's status alone may lag a pass behind).
    assert svc.routes() == {"fruit": "/v2/fruit", "veg": "/v2/veg"}
    assert changed.progress.endpoint_url == first.progress.endpoint_url
    assert svc.clusters() == [v1_cluster]
    assert "RolloutStarted" not in svc.codes()
    phases = [s.progress.phase for s in svc.steps]
    assert phases[0] is ServicePhase.DEPLOYING  # applied, not judged before KubeRay's turn
    assert set(phases) == {ServicePhase.DEPLOYING, ServicePhase.RUNNING}

    # A new image: version 2 on a new cluster, then the switch; the old cluster goes.
    svc.steps.clear()
    during: set[int] = set()

    def rolled(step: ServiceStep) -> bool:
        if step.progress.phase is ServicePhase.ROLLING_OUT:
            during.update(svc.runner.observe(svc.cluster_id, VersionTarget(2, svc.target(NEW_IMAGE)), svc.state))
        return _running(2)(step)

    # Serve slower on the new cluster: passes see both clusters, however busy the machine.
    with kube_knobs(svc.cloud.emulator, serve_deploy_seconds=2.0):
        second = svc.until(2, moved, rolled, spec=NEW_IMAGE, what="version 2 RUNNING")
    rolling = [s.progress for s in svc.steps if s.progress.phase is ServicePhase.ROLLING_OUT]
    assert rolling
    assert all((p.active_version, p.pending_version, p.traffic_percent) == (1, 2, 0) for p in rolling)
    assert during == {1, 2}  # both versions' clusters observed (and billed) while both run
    assert second.progress.endpoint_url == first.progress.endpoint_url  # the same LoadBalancer
    assert {"RolloutStarted", "RolloutCompleted"} <= set(svc.codes())
    wait_for(lambda: v1_cluster not in svc.clusters(), timeout=30, what="the old RayCluster deleted")
    [v2_cluster] = svc.clusters()
    assert svc.serve_selector()["ray.io/cluster"] == v2_cluster
    assert svc.routes() == {"fruit": "/v2/fruit", "veg": "/v2/veg"}


def _pod_names(svc: Service, cluster: str) -> list[str]:
    return [p["metadata"]["name"] for p in svc.cloud.kube.pods(svc.namespace, f"ray.io/cluster={cluster}")]


def test_a_version_that_fails_to_import_is_rolled_back_and_the_active_one_serves_on(
    new_service: NewService, app_dir: Path
) -> None:
    svc = new_service(RolloutSpec.from_json({"health_timeout_seconds": 2}))
    serve = serve_spec(str(app_dir))
    svc.until(1, serve, _running(1), what="version 1 RUNNING")
    [v1_cluster] = svc.clusters()
    v1_image = svc.head_image()
    broken = serve_spec(str(app_dir), import_path="nosuchmodule.graph:app")
    bad_clusters: set[str] = set()
    images: set[str] = set()
    serving: set[str] = set()  # the clusters the serve Service selected, at each step

    def rolled_back(step: ServiceStep) -> bool:
        bad_clusters.update(c for c, v in step.state["clusters"].items() if v == 2)
        serving.add(svc.serve_selector()["ray.io/cluster"])
        if step.progress.phase is ServicePhase.ROLLING_OUT:
            images.add(svc.head_image())
        return step.progress.phase is ServicePhase.RUNNING and 2 in step.state["failed"]

    after = svc.until(2, broken, rolled_back, spec=NEW_IMAGE, what="version 2 rolled back")
    p = after.progress
    assert (p.active_version, p.pending_version, p.traffic_percent) == (1, None, 0)
    assert p.failure
    assert "version 2 not healthy within 2 s" in p.failure
    assert "ModuleNotFoundError: No module named 'nosuchmodule'" in p.failure
    assert {"RolloutStarted", "RolledBack"} <= set(svc.codes())
    assert len(bad_clusters) == 1
    [bad] = bad_clusters
    assert serving == {v1_cluster}  # the old cluster served throughout, the failed one never
    assert images == {"rayproject/ray:2.52.0-py312"}  # version 2's spec while it rolled out
    assert svc.head_image() == v1_image  # the spec is version 1's again
    assert svc.state["versions"].keys() == {"1"}

    # The same (failed) number again: not tried again. KubeRay v1.7.0 (blue/green) compares
    # the reverted spec with the pending cluster, so it replaces the failed cluster by a new
    # one of version 1's spec and switches to it; the failed and the old cluster then go.
    def settled(step: ServiceStep) -> bool:
        serving.add(svc.serve_selector()["ray.io/cluster"])
        return _running(1)(step) and len(svc.clusters()) == 1 and v1_cluster not in svc.clusters()

    final = svc.until(2, broken, settled, spec=NEW_IMAGE, what="version 1 on its replacement cluster alone")
    assert final.progress.failure == p.failure
    [replacement] = svc.clusters()
    assert replacement != bad
    assert svc.state["clusters"] == {replacement: 1}
    assert bad not in serving
    assert svc.head_image() == v1_image
    assert svc.routes() == {"fruit": "/fruit", "veg": "/veg"}

    # A greater number is tried again.
    svc.until(3, serve, _running(3), spec=NEW_IMAGE, what="version 3 RUNNING")
    assert svc.state["failed"] == [2]


def test_rollback_on_request_drops_the_pending_version(new_service: NewService, app_dir: Path) -> None:
    svc = new_service()
    serve = serve_spec(str(app_dir))
    svc.until(1, serve, _running(1), what="version 1 RUNNING")
    broken = serve_spec(str(app_dir), import_path="nosuchmodule.graph:app")
    svc.until(2, broken, lambda s: s.progress.pending_version == 2 and bool(s.state["clusters"]), spec=NEW_IMAGE)

    def rolled_back() -> ServiceStep | None:
        step = svc.keep(svc.runner.rollback(svc.cluster_id, svc.state, reason="the operator said so"))
        return step if step.progress.phase is ServicePhase.RUNNING else None

    step = wait_for(rolled_back, timeout=30, what="the rollback done")
    assert (step.progress.active_version, step.progress.pending_version) == (1, None)
    assert step.progress.failure == "the operator said so"
    assert svc.state["failed"] == [2]
    noop = svc.runner.rollback(svc.cluster_id, svc.state)
    assert noop.state == svc.state
    assert noop.progress.phase is ServicePhase.RUNNING


def test_stop_then_ensure_and_an_idempotent_teardown(new_service: NewService, app_dir: Path) -> None:
    svc = new_service()
    serve = serve_spec(str(app_dir))
    svc.until(1, serve, _running(1), what="version 1 RUNNING")
    stopped = svc.keep(svc.runner.stop(svc.cluster_id, svc.state))
    assert stopped.progress.phase is ServicePhase.PROVISIONING
    assert svc.cloud.kube.get("ray.io/v1", "RayService", "shop", svc.namespace) is None
    wait_for(
        lambda: not svc.cloud.kube.pods(svc.namespace, "ray.io/is-ray-node=yes") or None, timeout=30, what="no pod"
    )
    assert svc.runner.observe(svc.cluster_id, VersionTarget(1, svc.target()), svc.state) == {}

    again = svc.until(1, serve, _running(1), what="version 1 RUNNING again")
    assert again.progress.endpoint_url
    assert len(svc.clusters()) == 1
    assert svc.routes() == {"fruit": "/fruit", "veg": "/veg"}

    state = svc.state
    waits: list[str | None] = []

    def torn_down() -> ServiceStep | None:
        try:
            return svc.runner.teardown(svc.cluster_id, state)
        except RetriableError as exc:
            waits.append(exc.code)
            return None

    gone = wait_for(torn_down, timeout=30, what="the teardown done")
    assert set(waits) <= {"GcsCleanupPending"}
    assert gone.state == {}
    assert svc.clusters() == []
    wait_for(
        lambda: svc.cloud.kube.get("v1", "Namespace", svc.namespace) is None, timeout=30, what="the namespace gone"
    )
    assert svc.runner.teardown(svc.cluster_id, state).state == {}  # again, with the old state
    assert svc.runner.teardown(svc.cluster_id, {}).state == {}


def test_an_incremental_rollout_moves_traffic_in_steps(new_service: NewService, app_dir: Path) -> None:
    rollout = RolloutSpec.from_json(
        {"strategy": "incremental", "step_percent": 50, "interval_seconds": 2, "max_surge_percent": 50}
    )
    svc = new_service(rollout)
    serve = serve_spec(str(app_dir))
    first = svc.until(1, serve, _running(1), what="version 1 RUNNING")
    assert first.progress.endpoint_url == "http://10.224.100.10:80"  # the emulated Gateway's address
    svc.steps.clear()
    second = svc.until(2, serve, _running(2), spec=NEW_IMAGE, what="version 2 RUNNING")
    shares = [s.progress.traffic_percent for s in svc.steps if s.progress.phase is ServicePhase.ROLLING_OUT]
    assert 50 in shares  # one step of 50 % (the surge), then the rest
    assert shares == sorted(shares)
    assert second.progress.endpoint_url == first.progress.endpoint_url
    assert second.progress.traffic_percent == 0


def test_an_incremental_rollout_of_a_failing_version_is_rolled_back_behind_the_gateway(
    new_service: NewService, app_dir: Path
) -> None:
    rollout = RolloutSpec.from_json(
        {"strategy": "incremental", "step_percent": 50, "interval_seconds": 1, "health_timeout_seconds": 2}
    )
    svc = new_service(rollout)
    serve = serve_spec(str(app_dir))
    svc.until(1, serve, _running(1), what="version 1 RUNNING")
    [v1_cluster] = svc.clusters()
    broken = serve_spec(str(app_dir), import_path="nosuchmodule.graph:app")
    svc.steps.clear()
    after = svc.until(
        2, broken, lambda s: s.progress.phase is ServicePhase.RUNNING and 2 in s.state["failed"], spec=NEW_IMAGE
    )
    assert after.progress.failure
    assert "ModuleNotFoundError: No module named 'nosuchmodule'" in after.progress.failure
    assert all(s.progress.traffic_percent == 0 for s in svc.steps)  # no traffic ever moved to it
    # KubeRay's RollbackInProgress: the pending cluster is dropped, the active one stays.
    wait_for(lambda: svc.clusters() == [v1_cluster], timeout=30, what="the failed cluster deleted")
    final = svc.until(2, broken, _running(1), spec=NEW_IMAGE, what="version 1 RUNNING after the rollback")
    assert final.state["clusters"] == {v1_cluster: 1}
    assert svc.routes() == {"fruit": "/fruit", "veg": "/veg"}


def test_a_version_applied_before_the_cluster_label_keeps_its_cluster(
    new_service: NewService, app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading Rayplane must not roll a running service for a label: a version whose
    RayService an earlier Rayplane applied without ``rayplane.io/cluster-id`` on its pod
    templates is applied again as it was, so KubeRay keeps its cluster. The earlier Rayplane
    is this one with the labelling turned off for the first deploy."""
    svc = new_service()
    serve = serve_spec(str(app_dir))
    with monkeypatch.context() as earlier:
        earlier.setattr(observability, "with_cluster_label", lambda manifest, labels: manifest)
        svc.until(1, serve, _running(1), what="version 1 RUNNING, deployed unlabelled")
    [cluster] = svc.clusters()
    before = svc.cloud.kube.get("ray.io/v1", "RayService", "shop", svc.namespace)
    assert before is not None
    assert not monitors.labelled(before)
    svc.steps.clear()
    svc.until(1, serve, _running(1), what="version 1 RUNNING after the upgrade")
    # An in-place change of the same version (its Serve config) is applied, still unlabelled.
    svc.until(1, _moved("v2", serve), _running(1), what="the new Serve config RUNNING")
    after = svc.cloud.kube.get("ray.io/v1", "RayService", "shop", svc.namespace)
    assert after is not None
    assert not monitors.labelled(after)
    assert svc.routes() == {"fruit": "/v2/fruit", "veg": "/v2/veg"}
    assert svc.clusters() == [cluster]
    assert "RolloutStarted" not in svc.codes()
