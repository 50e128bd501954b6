"""A Rayplane service on Azure as a KubeRay ``RayService`` (``ray.io/v1``, KubeRay v1.7.0).

Plain data and small read helpers, no writes: the provider applies what
:func:`service_objects` returns with server-side apply, and reads back with :func:`observe`.

Contracts of the manifest (:func:`ray_service`), each checked against the v1.7.0 CRD in
``infra/kuberay/ray.io_rayservices.yaml`` and KubeRay's Go source:

* ``metadata``: the name, namespace (one per cluster) and labels of the RayCluster that
  :func:`manifests.ray_cluster` makes for the same target.
* ``spec.rayClusterConfig``: that RayCluster's ``spec``, for the target with head fault
  tolerance on (a service always has it: its Redis-backed GCS keeps the Serve applications
  through a head crash), plus one port on the head's Ray container, ``serve`` 8000. KubeRay
  builds the serve Service from the head container's ``serve``/``serve-*`` ports
  (``common/service.go``, ``BuildServeService``; only they, since the head lists its ports) and
  ignores ``spec.serveService`` under an incremental upgrade, so without that port it creates
  no serve Service at all.
* ``spec.serveConfigV2``: the Serve declarative config as YAML. KubeRay passes it to
  ``PUT /api/serve/applications/`` as is (``updateServeDeployment`` in
  ``rayservice_controller.go``: YAML to map to JSON, adding only ``target_capacity`` during
  an incremental upgrade), so ``http_options`` and ``proxy_location`` are neither refused
  nor overridden: they are set to what the serve Service needs, ``0.0.0.0:8000`` (KubeRay's
  ``DefaultServingPort``) and ``EveryNode`` (a proxy on every node, each a serve endpoint
  once healthy).
* ``spec.serveService``: a ``LoadBalancer`` Service ``<name>-serve-svc`` on port 8000, so the
  endpoint is the Azure load balancer's public IP (``status.loadBalancer.ingress``).
* ``spec.upgradeStrategy``: ``NewCluster`` for ``blue_green``; for ``incremental``,
  ``NewClusterWithIncrementalUpgrade`` with ``clusterUpgradeOptions`` (``gatewayClassName``
  from the cloud's ``gateway_class``, ``stepSizePercent``, ``intervalSeconds``,
  ``maxSurgePercent``). KubeRay then routes through a Gateway ``<name>-gateway`` and an
  HTTPRoute, and the endpoint is the Gateway's address (:func:`gateway_endpoint`).

``ServeSpec`` and ``RolloutSpec`` (``rayplane.clusters.serve``) live in a layer above the
providers, so this module takes them through the protocols :class:`ServeConfig` and
:class:`RolloutPolicy`, which they satisfy.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from rayplane.providers.azure import manifests
from rayplane.providers.azure.kube import Kube
from rayplane.providers.base import ClusterTarget, TerminalError

SERVE_PORT = 8000  # KubeRay's DefaultServingPort and Serve's default HTTP port
SERVE_PORT_NAME = "serve"  # KubeRay's ServingPortName
PROXY_LOCATION = "EveryNode"
GATEWAY_CLASS_KEY = "gateway_class"  # the cloud config key naming the Gateway API class
NEW_CLUSTER = "NewCluster"
INCREMENTAL = "NewClusterWithIncrementalUpgrade"


class ServeConfig(Protocol):
    """What a service runs (``rayplane.clusters.serve.ServeSpec``)."""

    def deploy_config(self, *, http_host: str, http_port: int, proxy_location: str = ...) -> dict[str, Any]: ...


class RolloutPolicy(Protocol):
    """How a new version takes the traffic (``rayplane.clusters.serve.RolloutSpec``)."""

    @property
    def strategy(self) -> str: ...
    @property
    def step_percent(self) -> int: ...
    @property
    def interval_seconds(self) -> int: ...
    @property
    def max_surge_percent(self) -> int: ...


def service_target(target: ClusterTarget) -> ClusterTarget:
    """The target a service's clusters are made from: ``target`` with head fault tolerance on."""
    return dataclasses.replace(target, gcs_fault_tolerance=True)


def serve_config_v2(serve: ServeConfig) -> str:
    """``spec.serveConfigV2``: the Serve declarative config, as KubeRay wants it (YAML)."""
    config = serve.deploy_config(http_host="0.0.0.0", http_port=SERVE_PORT, proxy_location=PROXY_LOCATION)  # noqa: S104
    return yaml.safe_dump(config, sort_keys=False)


def upgrade_strategy(target: ClusterTarget, rollout: RolloutPolicy) -> dict[str, Any]:
    """``spec.upgradeStrategy`` for the rollout policy; TerminalError for an incremental
    rollout on a cloud without a Gateway class, or with steps bigger than the surge (which
    KubeRay's ``ValidateClusterUpgradeOptions`` refuses)."""
    if str(rollout.strategy) != "incremental":
        return {"type": NEW_CLUSTER}
    gateway_class = target.cloud_config.get(GATEWAY_CLASS_KEY)
    if not isinstance(gateway_class, str) or not gateway_class:
        raise TerminalError(
            "an incremental rollout moves traffic through the Gateway API: the cloud names no Gateway class "
            f"({GATEWAY_CLASS_KEY!r} in its config, e.g. 'azure-alb-external' or 'approuting-istio')",
            code="GatewayClassNotConfigured",
        )
    if rollout.step_percent > rollout.max_surge_percent:
        raise TerminalError(
            f"step_percent ({rollout.step_percent}) must not exceed max_surge_percent ({rollout.max_surge_percent})",
            code="InvalidRollout",
        )
    return {
        "type": INCREMENTAL,
        "clusterUpgradeOptions": {
            "gatewayClassName": gateway_class,
            "stepSizePercent": rollout.step_percent,
            "intervalSeconds": rollout.interval_seconds,
            "maxSurgePercent": rollout.max_surge_percent,
        },
    }


def serve_service_name(target: ClusterTarget) -> str:
    """The stable serve Service (``utils.GenerateServeServiceName``: ``<name>-serve-svc``)."""
    return f"{manifests.resource_name(target)[1]}-serve-svc"


def gateway_name(target: ClusterTarget) -> str:
    """The Gateway of an incremental service (``common.RayServiceGatewayNamespacedName``: ``<name>-gateway``)."""
    return f"{manifests.resource_name(target)[1]}-gateway"


def ray_service(
    target: ClusterTarget, serve: ServeConfig, rollout: RolloutPolicy, *, replicas: dict[str, int]
) -> dict[str, Any]:
    """The RayService for ``target`` running ``serve`` with ``rollout`` (see the module doc).

    ``replicas`` is passed to :func:`manifests.ray_cluster` as for a RayCluster. Raises
    TerminalError when the cloud names no GCS Redis (every service needs one) or when
    :func:`upgrade_strategy` refuses the rollout."""
    ft = service_target(target)
    try:
        cluster = manifests.ray_cluster(ft, replicas=replicas)
    except ValueError as exc:
        raise TerminalError(str(exc), code="GcsRedisNotConfigured") from exc
    spec = cluster["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    head["ports"] = [*head["ports"], {"containerPort": SERVE_PORT, "name": SERVE_PORT_NAME}]
    namespace, name = manifests.resource_name(target)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": copy.deepcopy(cluster["metadata"]),
        "spec": {
            "serveConfigV2": serve_config_v2(serve),
            "rayClusterConfig": spec,
            "upgradeStrategy": upgrade_strategy(target, rollout),
            "serveService": {
                "metadata": {
                    "name": f"{name}-serve-svc",
                    "namespace": namespace,
                    "labels": {manifests.MANAGED_LABEL: "true"},
                },
                "spec": {
                    "type": "LoadBalancer",
                    "ports": [{"name": SERVE_PORT_NAME, "port": SERVE_PORT, "targetPort": SERVE_PORT}],
                },
            },
        },
    }


def service_objects(
    target: ClusterTarget,
    serve: ServeConfig,
    rollout: RolloutPolicy,
    *,
    replicas: dict[str, int],
    gcs_password_b64: str,
) -> list[dict[str, Any]]:
    """Everything a service needs, in apply order: its namespace, the Ray token Secret, the
    copy of the GCS Redis password (base64, as read from the operator's Secret), the
    RayService that names both. ValueError without a Ray token (``manifests.auth_secret``);
    TerminalError as :func:`ray_service`."""
    ft = service_target(target)
    return [
        manifests.namespace(ft),
        manifests.auth_secret(ft),
        manifests.gcs_redis_secret(ft, gcs_password_b64),
        ray_service(target, serve, rollout, replicas=replicas),
    ]


class AppStatus(enum.StrEnum):
    """A Serve application's status (Ray's ``ApplicationStatus``, KubeRay's ``ApplicationStatusEnum``)."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    RUNNING = "RUNNING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


@dataclass(frozen=True, slots=True)
class ApplicationStatus:
    name: str
    status: AppStatus
    message: str
    # Deployment name -> Serve's deployment status (HEALTHY, UPDATING, UNHEALTHY, ...).
    deployments: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SideStatus:
    """The active or the pending side of a RayService (``RayServiceStatus``); ``cluster`` is
    None when there is no such side.

    While a pending cluster exists under ``NewCluster``, KubeRay v1.7.0 reads Serve only on the
    pending cluster (``Reconcile`` in ``rayservice_controller.go``), so the active side then has
    no ``applications``: it still serves; ``ServiceStatus.ready`` says so."""

    cluster: str | None
    applications: tuple[ApplicationStatus, ...] = ()
    # Incremental upgrades only: Serve's target_capacity and the HTTPRoute weight, in percent.
    target_capacity: int | None = None
    traffic_percent: int | None = None

    def application(self, name: str) -> ApplicationStatus | None:
        return next((a for a in self.applications if a.name == name), None)

    def all_running(self, names: set[str] | None = None) -> bool:
        """Every application (of ``names``, when given) is RUNNING, and there is at least one."""
        apps = {a.name: a.status for a in self.applications}
        wanted = names if names is not None else set(apps)
        return bool(wanted) and all(apps.get(n) is AppStatus.RUNNING for n in wanted)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What a RayService's ``status`` says. ``current`` is False until the controller has seen
    the latest spec (``observedGeneration`` equal to ``metadata.generation``): until then the
    rest describes an older spec."""

    active: SideStatus
    pending: SideStatus
    ready: bool
    ready_reason: str
    ready_message: str
    upgrading: bool
    serve_endpoints: int
    current: bool
    endpoint: str | None = None

    @classmethod
    def parse(cls, obj: Mapping[str, Any], *, endpoint: str | None = None) -> ServiceStatus:
        """From a RayService object as the API server returns it (a dict); missing parts are
        read as empty, an application status KubeRay has not filled in as NOT_STARTED."""
        status = obj.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        ready = conditions.get("Ready") or {}
        upgrade = conditions.get("UpgradeInProgress") or {}
        generation = (obj.get("metadata") or {}).get("generation")
        return cls(
            active=_side(status.get("activeServiceStatus")),
            pending=_side(status.get("pendingServiceStatus")),
            ready=ready.get("status") == "True",
            ready_reason=str(ready.get("reason") or ""),
            ready_message=str(ready.get("message") or ""),
            upgrading=upgrade.get("status") == "True",
            serve_endpoints=int(status.get("numServeEndpoints") or 0),
            current=generation is not None and status.get("observedGeneration") == generation,
            endpoint=endpoint,
        )


def _app_status(value: Any) -> AppStatus:
    try:
        return AppStatus(str(value))
    except ValueError:
        return AppStatus.NOT_STARTED


def _side(data: Mapping[str, Any] | None) -> SideStatus:
    data = data or {}
    apps = tuple(
        ApplicationStatus(
            name=str(name),
            status=_app_status(app.get("status")),
            message=str(app.get("message") or ""),
            deployments={
                str(d): str((dep or {}).get("status") or "")
                for d, dep in (app.get("serveDeploymentStatuses") or {}).items()
            },
        )
        for name, app in sorted((data.get("applicationStatuses") or {}).items())
    )
    capacity, traffic = data.get("targetCapacity"), data.get("trafficRoutedPercent")
    return SideStatus(
        cluster=str(data["rayClusterName"]) if data.get("rayClusterName") else None,
        applications=apps,
        target_capacity=int(capacity) if capacity is not None else None,
        traffic_percent=int(traffic) if traffic is not None else None,
    )


def endpoint(service: Mapping[str, Any] | None) -> str | None:
    """``http://<ip>:<port>`` of a LoadBalancer serve Service (a dict, as the API server returns
    it), from its first ingress (IP, else host name) and its ``serve`` port; None until Azure
    has given it an address."""
    if not service:
        return None
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    host = next((i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")), None)
    if not host:
        return None
    ports = (service.get("spec") or {}).get("ports") or []
    port = next((p.get("port") for p in ports if p.get("name") == SERVE_PORT_NAME), SERVE_PORT)
    return f"http://{host}:{port}"


def gateway_endpoint(gateway: Mapping[str, Any] | None) -> str | None:
    """``http://<address>:<port>`` of an incremental service's Gateway (its first address and
    first listener's port); None until the Gateway implementation has given it one."""
    if not gateway:
        return None
    addresses = (gateway.get("status") or {}).get("addresses") or []
    host = next((a.get("value") for a in addresses if a.get("value")), None)
    if not host:
        return None
    listeners = (gateway.get("spec") or {}).get("listeners") or []
    port = listeners[0].get("port", 80) if listeners else 80
    return f"http://{host}:{port}"


def observe(kube: Kube, target: ClusterTarget, rollout: RolloutPolicy) -> ServiceStatus | None:
    """The service's RayService status with its endpoint (the Gateway's for an incremental
    rollout, else the serve Service's); None when there is no RayService."""
    namespace, name = manifests.resource_name(target)
    found = read(kube, namespace, name, incremental=str(rollout.strategy) == "incremental")
    return found[1] if found else None


def read(kube: Kube, namespace: str, name: str, *, incremental: bool) -> tuple[dict[str, Any], ServiceStatus] | None:
    """The RayService ``name`` as the API server returns it and its parsed status with the
    endpoint (the Gateway ``<name>-gateway``'s when ``incremental``, else the serve Service
    ``<name>-serve-svc``'s); None when there is no RayService."""
    obj = kube.get("ray.io/v1", "RayService", name, namespace)
    if obj is None:
        return None
    if incremental:
        url = gateway_endpoint(kube.get("gateway.networking.k8s.io/v1", "Gateway", f"{name}-gateway", namespace))
    else:
        url = endpoint(kube.get("v1", "Service", f"{name}-serve-svc", namespace))
    return obj, ServiceStatus.parse(obj, endpoint=url)
