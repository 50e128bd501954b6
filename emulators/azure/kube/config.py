"""Knobs of the Kubernetes surface, changed through ``POST /_emulator/kube/config`` and persisted.

``node_boot_seconds`` and ``scale_down_seconds`` are the fleet's (``Fleet.boot_seconds``,
``Fleet.scale_down_seconds``); they are applied to ``ctx.fleet`` whenever the config loads
or changes, so a test can speed up the autoscaler without touching ARM.

``ray_backend`` starts from the emulator's environment when ``AZURE_EMULATOR_RAY_BACKEND``
is set there (``rayplane dev``'s Azure demo sets ``real``; tests and the fleet benchmark
leave it ``simulated``), overriding the persisted value; the admin API changes it later.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from emulators.azure.fleet import Fleet
from emulators.azure.store import DocumentStore

_KIND = "kube.config"
_KEY = "config"
BACKEND_ENV = "AZURE_EMULATOR_RAY_BACKEND"
RayBackend = Literal["real", "simulated"]


@dataclass
class KubeConfig:
    """Current values; see :class:`ConfigUpdate` for what each one means."""

    container_start_seconds: float = 0.2
    tick_seconds: float = 0.1
    node_poll_seconds: float = 0.5
    orphan_pod_gc_seconds: float = 1.0
    fail_pod_creation: bool = False
    job_stop_grace_seconds: float = 3.0
    job_start_timeout_seconds: float = 900.0
    node_boot_seconds: float | None = None
    scale_down_seconds: float | None = None
    record_events: bool = True
    ray_backend: RayBackend = "simulated"
    ray_stop_seconds: float = 10.0
    system_daemonsets: bool = True
    extra_daemonset_cpu_m: int = 0
    extra_daemonset_memory_mib: int = 0
    serve_deploy_seconds: float = 1.0
    rayservice_requeue_seconds: float = 2.0
    rayservice_deletion_delay_seconds: float = 60.0
    missing_images: list[str] = field(default_factory=list)


class ConfigUpdate(BaseModel):
    """Body of ``POST /_emulator/kube/config``; omitted fields keep their values.

    * ``container_start_seconds`` -- delay from binding a pod to a node to its containers
      running and ready (default 0.2).
    * ``tick_seconds`` -- period of the controller loop (default 0.1).
    * ``node_poll_seconds`` -- how often an otherwise idle cluster's nodes are compared with
      the fleet, to notice pools ARM created, resized or deleted (default 0.5).
    * ``orphan_pod_gc_seconds`` -- how long a pod whose node vanished stays ``Failed`` before
      the pod garbage collector deletes it, if no controller did first (default 1.0).
    * ``fail_pod_creation`` -- KubeRay's pod creations fail (``ReplicaFailure``), default false.
    * ``job_stop_grace_seconds`` -- SIGTERM to SIGKILL delay when a Ray job is stopped (3.0,
      Ray's ``RAY_JOB_STOP_WAIT_TIME_S``).
    * ``job_start_timeout_seconds`` -- a job whose entrypoint resources never fit fails after
      this long (900, Ray's ``RAY_JOB_START_TIMEOUT_SECONDS``).
    * ``node_boot_seconds`` / ``scale_down_seconds`` -- the fleet's boot time and
      autoscaler scale-down delay (defaults 1.0 / 5.0, from :class:`Fleet`).
    * ``record_events`` -- the simulated scheduler, kubelet and KubeRay operator write
      Events (default true; a fleet benchmark may turn them off to save the writes).
    * ``ray_backend`` -- ``"simulated"`` (default): the head's dashboard is simulated and a
      job's entrypoint runs as a bare process (:mod:`~emulators.azure.kube.dashboard`);
      ``"real"``: every Running Ray pod is a real Ray node and the service proxy reaches the
      real dashboard (:mod:`~emulators.azure.kube.raynodes`). Switching to "real" gives
      Running Ray pods their nodes; switching back leaves real nodes until their pods go.
    * ``ray_stop_seconds`` -- SIGTERM to SIGKILL delay when a real Ray node stops (10).
    * ``system_daemonsets`` -- AKS's own DaemonSet pods (``aksnode.SYSTEM_DAEMONSETS``, and
      ama-logs where Container Insights is on) take their requests out of every node's room
      (default true). They are modelled as a per-node overhead the scheduler subtracts, not
      as Pod objects: seven more pods per node would multiply the objects, writes and
      watch traffic of a 1,000-cluster fleet for nothing Rayplane reads.
    * ``extra_daemonset_cpu_m`` / ``extra_daemonset_memory_mib`` -- more DaemonSet requests
      on every node (default 0): a test's way to model an add-on that leaves a pod sized
      for AKS's documented reservations without room.
    * ``serve_deploy_seconds`` -- how long a simulated Serve application stays ``DEPLOYING``
      (or ``DELETING``) before it is ``RUNNING`` (or ``DEPLOY_FAILED``, or gone) (default 1.0).
    * ``rayservice_requeue_seconds`` -- how often the RayService controller looks at a
      RayService that nothing changed (default 2.0, KubeRay's ``ServiceDefaultRequeueDuration``).
    * ``rayservice_deletion_delay_seconds`` -- how long an old RayCluster of a RayService is
      kept after traffic left it, unless ``spec.rayClusterDeletionDelaySeconds`` says
      (default 60, KubeRay's ``RayClusterDeletionDelayDuration``).
    * ``missing_images`` -- ``fnmatch`` patterns of images no registry has for this emulator:
      a pod with one stays ``Pending`` with ``ErrImagePull`` then ``ImagePullBackOff``
      (:mod:`~emulators.azure.kube.kubelet_faults`; default none). A device plugin
      DaemonSet with such an image never runs: GPU nodes advertise no ``nvidia.com/gpu``
      (:mod:`~emulators.azure.kube.deviceplugin`).
    """

    model_config = ConfigDict(extra="forbid")

    container_start_seconds: float | None = None
    tick_seconds: float | None = None
    node_poll_seconds: float | None = None
    orphan_pod_gc_seconds: float | None = None
    fail_pod_creation: bool | None = None
    job_stop_grace_seconds: float | None = None
    job_start_timeout_seconds: float | None = None
    node_boot_seconds: float | None = None
    scale_down_seconds: float | None = None
    record_events: bool | None = None
    ray_backend: RayBackend | None = None
    ray_stop_seconds: float | None = None
    system_daemonsets: bool | None = None
    extra_daemonset_cpu_m: int | None = None
    extra_daemonset_memory_mib: int | None = None
    serve_deploy_seconds: float | None = None
    rayservice_requeue_seconds: float | None = None
    rayservice_deletion_delay_seconds: float | None = None
    missing_images: list[str] | None = None


def load(store: DocumentStore, fleet: Fleet) -> KubeConfig:
    doc = store.get(_KIND, _KEY) or {}
    known = {f.name for f in fields(KubeConfig)}
    config = KubeConfig(**{k: v for k, v in doc.items() if k in known})
    backend = os.environ.get(BACKEND_ENV)
    if backend:
        try:
            config.ray_backend = ConfigUpdate(ray_backend=backend).ray_backend or config.ray_backend
        except ValidationError as exc:
            raise SystemExit(f"{BACKEND_ENV} must be 'real' or 'simulated', not {backend!r}") from exc
    apply_to_fleet(config, fleet)
    return config


def update(config: KubeConfig, body: ConfigUpdate, store: DocumentStore, fleet: Fleet) -> KubeConfig:
    for key, value in body.model_dump(exclude_none=True).items():
        setattr(config, key, value)
    store.put(_KIND, _KEY, asdict(config))
    apply_to_fleet(config, fleet)
    return config


def apply_to_fleet(config: KubeConfig, fleet: Fleet) -> None:
    if config.node_boot_seconds is not None:
        fleet.boot_seconds = config.node_boot_seconds
    if config.scale_down_seconds is not None:
        fleet.scale_down_seconds = config.scale_down_seconds


def as_dict(config: KubeConfig, fleet: Fleet) -> dict[str, Any]:
    out = asdict(config)
    out["node_boot_seconds"] = fleet.boot_seconds
    out["scale_down_seconds"] = fleet.scale_down_seconds
    return out
