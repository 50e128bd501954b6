"""Wiring of the Kubernetes surface: one :class:`KubeService` per emulator context.

It owns the object store, the verbs, the controllers, the Ray job manager and dashboard, the
service and pod proxies and the control loop, and registers a ``cluster_deleted`` callback so
that ARM deleting a managed cluster drops its Kubernetes objects and kills its Ray jobs. The loop runs
from the router's lifespan; on shutdown the loop stops and running Ray jobs are killed. Open
watches end earlier, when the server starts shutting down (``EmulatorContext.stopping``), so
that it need not wait for them.

With ``ray_backend: "real"`` it also owns the real Ray nodes (:class:`RayNodes`): processes
left by a previous run on the same data dir are killed when the service is made, the
kubelet's gate starts a Ray pod's node, and shutdown stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from emulators.azure.kube import config as config_module
from emulators.azure.kube.api import KubeAPI
from emulators.azure.kube.controller import Controller
from emulators.azure.kube.dashboard import Dashboard
from emulators.azure.kube.events import EventRecorder
from emulators.azure.kube.jobs import JobManager
from emulators.azure.kube.kuberay import KubeRayOperator
from emulators.azure.kube.objects import ObjectStore
from emulators.azure.kube.podproxy import PodProxy
from emulators.azure.kube.proxy import ServiceProxy, ray_token
from emulators.azure.kube.raynodes import RayNodes
from emulators.azure.kube.rayservice import RayServiceController
from emulators.azure.kube.serve import ServeManager
from emulators.azure.kube.serveclient import ServeBackend
from emulators.azure.kube.watch import ChangeFeed
from emulators.azure.kube.workloads import Workloads

if TYPE_CHECKING:
    from emulators.azure.app import EmulatorContext


class KubeService:
    """Everything behind the routes; see the module docstring."""

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.fleet = ctx.fleet
        self.origin = ctx.settings.origin.rstrip("/")
        self.config = config_module.load(ctx.store, ctx.fleet)
        self.objects = ObjectStore(ctx.store)
        self.feed = ChangeFeed(self.objects)
        ctx.stopping.append(self.feed.close)
        self.api = KubeAPI(self.objects, ctx.fleet)
        self.api.missing_images = lambda: self.config.missing_images
        self.jobs = JobManager(ctx.store, ctx.settings.data_dir, self.config)
        self.serve = ServeManager(lambda: self.config.serve_deploy_seconds)
        self.dashboard = Dashboard(self.jobs, self.serve)
        self.raynodes = RayNodes(ctx.settings.data_dir, stop_seconds=lambda: self.config.ray_stop_seconds)
        self.raynodes.kill_stale()
        self.proxy = ServiceProxy(self.objects, self.dashboard, self.config, self.raynodes)
        self.podproxy = PodProxy(self.objects, self.config, self.raynodes)
        self.workloads = Workloads(self.api, ctx.fleet, self.config)
        self.kuberay = KubeRayOperator(self.api, self.config)
        backend = ServeBackend(
            self.serve, self.config, self.raynodes.dashboard, lambda c, rc: ray_token(self.objects, c, rc)
        )
        self.kuberay.rayservices = RayServiceController(self.api, self.config, backend)
        self.workloads.gate = self._gate
        self.events = EventRecorder(self.api, enabled=lambda: self.config.record_events)
        self.workloads.events = self.kuberay.events = self.kuberay.rayservices.events = self.events
        self.controller = Controller(
            self.objects, ctx.fleet, self.config, self.workloads, self.kuberay, self.jobs, self.dashboard, self.proxy
        )
        self.controller.raynodes = self.raynodes
        ctx.cluster_deleted.append(self.drop_cluster)

    def _gate(self, cluster: str, pod: Any) -> bool:
        """Whether a bound pod's containers may run: a Ray worker waits for its head pod
        (``wait-gcs-ready``); with real Ray, a Ray pod is Running once its node serves."""
        if not self.kuberay.gcs_ready(cluster, pod):
            return False
        if self.config.ray_backend != "real":
            return True
        rc = self.controller.owner_rc(cluster, pod)
        if rc is None or rc.get("kind") != "RayCluster":
            return True
        return self.raynodes.gate(cluster, pod, rc, ray_token(self.objects, cluster, rc))

    def touch(self, cluster: str) -> None:
        """A request reached ``cluster``: make sure it has its default namespaces."""
        self.api.ensure_cluster(cluster)

    def wake(self) -> None:
        self.controller.wake()

    def drop_cluster(self, cluster: str) -> None:
        """ARM deleted the managed cluster: forget its objects, IPs and Ray jobs."""
        self.objects.drop_cluster(cluster)
        self.api.ips.forget(cluster)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        task = asyncio.create_task(self.controller.run(), name="kube-controller")
        try:
            yield
        finally:
            self.feed.close()  # (already closed when the server's stopping hook ran)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.jobs.shutdown()
            await self.proxy.close()
            await self.podproxy.close()
            self.raynodes.shutdown()
