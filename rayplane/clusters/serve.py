"""What a service runs on its cluster: Ray Serve applications and a rollout policy.

A service (issue 14, ``docs/architecture.md`` "Services") is a cluster that also carries a
``ServeSpec``, the applications Ray Serve runs on it, and a ``RolloutSpec``, how a change
that needs a new cluster moves traffic to it. Both are frozen values built once from the
request or the stored JSON, like ``ClusterSpec``, and keep the wire spelling in JSON.

- ``serve_errors`` returns every rule a Serve config breaks that a request schema cannot
  express (unique names and route prefixes, replicas given one way, an autoscaling range, GPUs
  asked of a cluster without any), all at once, with the request's field paths.
- ``code_errors`` says where an application's code (``runtime_env.working_dir`` and
  ``py_modules``) may come from on a given kind of cloud.
- ``ServeSpec.deploy_config`` is the body of Ray's Serve REST API
  ``PUT /api/serve/applications/`` (``ServeDeploySchema`` in ``ray/serve/schema.py``): the
  whole declarative config, which replaces the set of applications Serve runs.
- ``needs_new_cluster`` says whether a change can be applied in place (the Serve config, or
  a worker group's node range) or needs a new cluster and a rollout (the Ray version, the
  image, a VM size, Spot, the set of worker groups, head fault tolerance).
"""

from __future__ import annotations

import copy
import enum
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rayplane.clusters.spec import ClusterSpec
from rayplane.common.errors import FieldError

APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
# ``package.module:attribute`` or ``package.module.attribute``, as Serve's ``import_path``.
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*[.:][A-Za-z_]\w*")
ROUTE_PREFIX = re.compile(r"/|(/[A-Za-z0-9._~-]+)+")


class RolloutStrategy(enum.StrEnum):
    """``blue_green`` moves all traffic at once; ``incremental`` in steps of ``step_percent``."""

    BLUE_GREEN = "blue_green"
    INCREMENTAL = "incremental"


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    strategy: RolloutStrategy = RolloutStrategy.BLUE_GREEN
    step_percent: int = 20
    interval_seconds: int = 30
    max_surge_percent: int = 100
    # A new version whose applications are not all RUNNING and healthy this long after its
    # cluster is up is rolled back; traffic never moved to it.
    health_timeout_seconds: int = 600

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RolloutSpec:
        data = data or {}
        default = cls()
        return cls(
            strategy=RolloutStrategy(data.get("strategy", default.strategy)),
            step_percent=int(data.get("step_percent", default.step_percent)),
            interval_seconds=int(data.get("interval_seconds", default.interval_seconds)),
            max_surge_percent=int(data.get("max_surge_percent", default.max_surge_percent)),
            health_timeout_seconds=int(data.get("health_timeout_seconds", default.health_timeout_seconds)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": str(self.strategy),
            "step_percent": self.step_percent,
            "interval_seconds": self.interval_seconds,
            "max_surge_percent": self.max_surge_percent,
            "health_timeout_seconds": self.health_timeout_seconds,
        }

    def traffic_steps(self) -> tuple[int, ...]:
        """The new version's share of traffic after each step, ending at 100."""
        if self.strategy is RolloutStrategy.BLUE_GREEN:
            return (100,)
        return (*tuple(range(self.step_percent, 100, self.step_percent)), 100)


@dataclass(frozen=True, slots=True)
class Autoscaling:
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas}
        if self.target_ongoing_requests is not None:
            out["target_ongoing_requests"] = self.target_ongoing_requests
        return out


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """One deployment's overrides of what the application's code declares."""

    name: str
    num_replicas: int | None = None
    autoscaling: Autoscaling | None = None
    # Ray's ``ray_actor_options`` (num_cpus, num_gpus, memory, resources), kept as given.
    actor_options: Mapping[str, Any] = field(default_factory=dict)
    user_config: Any = None

    @property
    def gpus(self) -> float:
        return float(self.actor_options.get("num_gpus") or 0)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.num_replicas is not None:
            out["num_replicas"] = self.num_replicas
        if self.autoscaling is not None:
            out["autoscaling_config"] = self.autoscaling.to_json()
        if self.actor_options:
            out["ray_actor_options"] = copy.deepcopy(dict(self.actor_options))
        if self.user_config is not None:
            out["user_config"] = copy.deepcopy(self.user_config)
        return out


@dataclass(frozen=True, slots=True)
class ApplicationSpec:
    name: str
    import_path: str
    route_prefix: str | None = "/"
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    deployments: tuple[DeploymentSpec, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "import_path": self.import_path,
            "route_prefix": self.route_prefix,
            "runtime_env": copy.deepcopy(dict(self.runtime_env)),
            "deployments": [d.to_json() for d in self.deployments],
        }


@dataclass(frozen=True, slots=True)
class ServeSpec:
    applications: tuple[ApplicationSpec, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServeSpec:
        """The spec of a stored (or wire) ``serve`` object; shapes were checked at the API."""
        return cls(applications=tuple(_application(a) for a in data.get("applications") or ()))

    def to_json(self) -> dict[str, Any]:
        return {"applications": [a.to_json() for a in self.applications]}

    def deploy_config(self, *, http_host: str, http_port: int, proxy_location: str = "HeadOnly") -> dict[str, Any]:
        """The body of ``PUT /api/serve/applications/``: every application, replacing what runs."""
        return {
            "proxy_location": proxy_location,
            "http_options": {"host": http_host, "port": http_port},
            "applications": [a.to_json() for a in self.applications],
        }


def _application(data: Mapping[str, Any]) -> ApplicationSpec:
    return ApplicationSpec(
        name=str(data["name"]),
        import_path=str(data["import_path"]),
        route_prefix=data.get("route_prefix", "/"),
        runtime_env=copy.deepcopy(dict(data.get("runtime_env") or {})),
        deployments=tuple(_deployment(d) for d in data.get("deployments") or ()),
    )


def _deployment(data: Mapping[str, Any]) -> DeploymentSpec:
    scaling = data.get("autoscaling_config")
    return DeploymentSpec(
        name=str(data["name"]),
        num_replicas=data.get("num_replicas"),
        autoscaling=Autoscaling(
            min_replicas=int(scaling.get("min_replicas", 1)),
            max_replicas=int(scaling.get("max_replicas", 1)),
            target_ongoing_requests=scaling.get("target_ongoing_requests"),
        )
        if scaling is not None
        else None,
        actor_options=copy.deepcopy(dict(data.get("ray_actor_options") or {})),
        user_config=copy.deepcopy(data.get("user_config")),
    )


def _duplicates(names: Sequence[str | None]) -> set[str]:
    """Names given more than once (None, an application without a route, never clashes)."""
    return {name for name, times in Counter(names).items() if name is not None and times > 1}


def serve_errors(serve: ServeSpec, cluster: ClusterSpec, base: str = "body.serve") -> list[FieldError]:
    """Every rule the Serve config breaks, in the order a user reads it (see the module doc)."""
    errors: list[FieldError] = []
    apps = serve.applications
    if not apps:
        errors.append(FieldError(f"{base}.applications", "a service runs at least one application"))
    twice_named = _duplicates([a.name for a in apps])
    twice_routed = _duplicates([a.route_prefix for a in apps])
    cluster_gpus = (cluster.head.size.gpus if cluster.head.size else 0) + sum(
        (g.size.gpus if g.size else 0) for g in cluster.worker_groups
    )
    for i, app in enumerate(apps):
        at = f"{base}.applications.{i}"
        if not APP_NAME.fullmatch(app.name):
            errors.append(
                FieldError(f"{at}.name", "1 to 63 letters, digits, '-' or '_', starting with a letter or digit")
            )
        elif app.name in twice_named:
            errors.append(FieldError(f"{at}.name", f"application name {app.name!r} is used twice"))
        if not IMPORT_PATH.fullmatch(app.import_path):
            errors.append(FieldError(f"{at}.import_path", "a Python path to the application, as 'package.module:app'"))
        if app.route_prefix is not None:
            if not ROUTE_PREFIX.fullmatch(app.route_prefix):
                errors.append(
                    FieldError(f"{at}.route_prefix", "'/' or a path such as '/echo' (no trailing '/', no query)")
                )
            elif app.route_prefix in twice_routed:
                errors.append(FieldError(f"{at}.route_prefix", f"route prefix {app.route_prefix!r} is used twice"))
        twice_deployed = _duplicates([d.name for d in app.deployments])
        for j, dep in enumerate(app.deployments):
            errors += _deployment_errors(dep, f"{at}.deployments.{j}", twice_deployed, cluster_gpus)
    return errors


# Schemes a Ray node fetches a runtime_env package from by itself (Ray's remote runtime_env
# protocols; ``azure://`` and ``abfss://`` authenticate with the node's Azure identity).
REMOTE_CODE = ("https://", "http://", "azure://", "abfss://", "s3://", "gs://")


def code_errors(serve: ServeSpec, *, uploads_local: bool, base: str = "body.serve") -> list[FieldError]:
    """Where each application's ``runtime_env.working_dir`` and ``py_modules`` entries may point.

    - Never ``gcs://``: such a package lives in the store of one Ray cluster, and every version
      of a service runs on a cluster of its own that would not have it.
    - ``py_modules`` entries are URIs everywhere (a local module goes in the working_dir).
    - A local ``working_dir`` (or ``file://``) only where ``uploads_local``: the local provider uploads
      it to each version's cluster from the control plane's disk. An AKS node cannot read that
      disk, so on Azure the code must be a remote URI the nodes fetch themselves
      (``REMOTE_CODE``: an https zip, ``azure://`` or ``abfss://`` Blob Storage, S3, GCS).
    """
    errors: list[FieldError] = []
    for i, app in enumerate(serve.applications):
        env = app.runtime_env
        refs: list[tuple[str, Any]] = [("working_dir", env.get("working_dir"))]
        refs += [(f"py_modules.{j}", m) for j, m in enumerate(env.get("py_modules") or [])]
        for where, ref in refs:
            if not isinstance(ref, str) or not ref:
                continue
            at = f"{base}.applications.{i}.runtime_env.{where}"
            if ref.startswith("gcs://"):
                errors.append(
                    FieldError(at, "a gcs:// package belongs to one Ray cluster; give a local path or a remote URI")
                )
            elif where != "working_dir" and "://" not in ref:
                errors.append(FieldError(at, "py_modules takes URIs; put local modules in the working_dir"))
            elif not ref.startswith(REMOTE_CODE) and not uploads_local:
                errors.append(
                    FieldError(
                        at,
                        "this cloud's nodes cannot read a local path; give a URI they fetch "
                        "(https://…zip, azure://, abfss://, s3:// or gs://)",
                    )
                )
    return errors


def _deployment_errors(dep: DeploymentSpec, at: str, twice: set[str], cluster_gpus: int) -> list[FieldError]:
    errors: list[FieldError] = []
    if dep.name in twice:
        errors.append(FieldError(f"{at}.name", f"deployment name {dep.name!r} is used twice in this application"))
    if dep.num_replicas is not None and dep.autoscaling is not None:
        errors.append(FieldError(f"{at}.num_replicas", "give num_replicas or autoscaling_config, not both"))
    if dep.num_replicas is not None and dep.num_replicas < 0:
        errors.append(FieldError(f"{at}.num_replicas", "must be 0 or more"))
    scaling = dep.autoscaling
    if scaling is not None:
        if scaling.min_replicas < 0 or scaling.max_replicas < 1 or scaling.min_replicas > scaling.max_replicas:
            errors.append(
                FieldError(f"{at}.autoscaling_config", "needs 0 <= min_replicas <= max_replicas and max_replicas >= 1")
            )
        if scaling.target_ongoing_requests is not None and scaling.target_ongoing_requests <= 0:
            errors.append(FieldError(f"{at}.autoscaling_config.target_ongoing_requests", "must be more than 0"))
    for key in ("num_cpus", "num_gpus", "memory"):
        value = dep.actor_options.get(key)
        if value is not None and (not isinstance(value, int | float) or value < 0):
            errors.append(FieldError(f"{at}.ray_actor_options.{key}", "must be a number, 0 or more"))
    if dep.gpus > 0 and cluster_gpus == 0:
        errors.append(
            FieldError(f"{at}.ray_actor_options.num_gpus", "asks for GPUs, but no node of this service has a GPU")
        )
    return errors


def rollout_errors(rollout: RolloutSpec, base: str = "body.rollout") -> list[FieldError]:
    errors: list[FieldError] = []
    for name, low, high in (
        ("step_percent", 1, 100),
        ("interval_seconds", 1, 3600),
        ("max_surge_percent", 1, 100),
        ("health_timeout_seconds", 10, 7200),
    ):
        value = getattr(rollout, name)
        if not low <= value <= high:
            errors.append(FieldError(f"{base}.{name}", f"must be from {low} to {high}"))
    return errors


def needs_new_cluster(old: ClusterSpec, new: ClusterSpec) -> bool:
    """Whether moving from ``old`` to ``new`` needs a new cluster (and so a rollout).

    In place: the Serve config and a worker group's ``min_nodes``/``max_nodes`` (the autoscaler
    resizes a running cluster). Everything a node is started with is not: the Ray version,
    the image, the head's size and fault tolerance, and each group's name, size and Spot."""

    def nodes(spec: ClusterSpec) -> tuple[Any, ...]:
        groups = tuple((g.name, g.vm_size, g.spot, g.fallback_to_on_demand) for g in spec.worker_groups)
        return (spec.ray_version, spec.image, spec.head.vm_size, spec.head.gcs_fault_tolerance, groups)

    return nodes(old) != nodes(new)


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """What the serving version runs while a rollout to a newer one is under way: where a
    rollback (automatic or asked for) returns the service's spec to."""

    spec: ClusterSpec
    serve: ServeSpec

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.to_json(), "serve": self.serve.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServedVersion:
        return cls(spec=ClusterSpec.from_json(data["spec"]), serve=ServeSpec.from_json(data["serve"]))


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """The service part of a cluster of kind ``service`` (column ``clusters.service``).

    ``version`` is the version the user wants running: it grows only when a change needs a
    new cluster (``needs_new_cluster``), to ``latest + 1``, so a number is never given twice
    (the runner remembers failed numbers and never tries one again). ``previous`` is set
    while ``version`` is not yet the serving one, and cleared when the rollout completes or
    is rolled back (then the spec and Serve config return to it)."""

    serve: ServeSpec
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    version: int = 1
    latest: int = 1
    previous: ServedVersion | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serve": self.serve.to_json(),
            "rollout": self.rollout.to_json(),
            "version": self.version,
            "latest": self.latest,
            "previous": self.previous.to_json() if self.previous else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceSpec:
        previous = data.get("previous")
        return cls(
            serve=ServeSpec.from_json(data["serve"]),
            rollout=RolloutSpec.from_json(data.get("rollout")),
            version=int(data.get("version", 1)),
            latest=int(data.get("latest", data.get("version", 1))),
            previous=ServedVersion.from_json(previous) if previous else None,
        )

    def changed(
        self, old_spec: ClusterSpec, new_spec: ClusterSpec, serve: ServeSpec, rollout: RolloutSpec
    ) -> ServiceSpec:
        """The service after a change from ``old_spec`` to ``new_spec`` with ``serve`` and
        ``rollout``: a new version number when the nodes change, else the same one (in
        place). The serving version is kept as ``previous`` once, at the first change that
        needs a new cluster; a further one during that rollout supersedes the pending one."""
        if not needs_new_cluster(old_spec, new_spec):
            return ServiceSpec(serve, rollout, self.version, self.latest, self.previous)
        previous = self.previous or ServedVersion(old_spec, self.serve)
        return ServiceSpec(serve, rollout, self.latest + 1, self.latest + 1, previous)
