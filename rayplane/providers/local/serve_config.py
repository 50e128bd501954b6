"""The declarative Serve config of a cluster, as typed frozen values: what
``serve.ServeClient.deploy`` PUTs to ``/api/serve/applications/``.

``ServeConfig.to_json`` is Ray 2.60's ``ServeDeploySchema`` (``ray/serve/schema.py``):
``proxy_location``, ``http_options`` (``HTTPOptionsSchema``: ``host``, ``port``) and
``applications`` (``ServeApplicationSchema``: ``name``, ``route_prefix``, ``import_path``,
``runtime_env``, ``deployments``: ``DeploymentSchema`` with ``name``, ``num_replicas`` or
``autoscaling_config``, ``user_config``, ``ray_actor_options``). ``ServeConfig.from_spec``
takes that spelling (the body ``clusters.serve.ServeSpec.deploy_config`` builds included) and
checks, with the field's path, what Serve's schema would refuse: a working dir that is a path
rather than a URI (``runtime_env_contains_remote_uris``), replicas given both ways
(``validate_num_replicas_and_autoscaling_config``), an import path without a module
(``import_path_format_valid``), names used twice (``application_names_unique``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class ProxyLocation(StrEnum):
    """Where Serve runs its HTTP proxies (``ray.serve.config.ProxyLocation``)."""

    HEAD_ONLY = "HeadOnly"
    EVERY_NODE = "EveryNode"
    DISABLED = "Disabled"


class ServeConfigError(ValueError):
    """A spec that cannot become a ``ServeConfig``; ``field`` is the dotted path at fault
    (``applications.1.deployments.0.num_replicas``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _frozen(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A read-only copy, deep: nothing the caller keeps can change the value."""
    return None if value is None else MappingProxyType(copy.deepcopy(dict(value)))


@dataclass(frozen=True)
class DeploymentConfig:
    """Options of one deployment that override its code; None leaves the code's value."""

    name: str
    num_replicas: int | None = None
    autoscaling_config: Mapping[str, Any] | None = None
    user_config: Mapping[str, Any] | None = None
    ray_actor_options: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key in ("num_replicas", "autoscaling_config", "user_config", "ray_actor_options"):
            value = getattr(self, key)
            if value is not None:
                out[key] = copy.deepcopy(dict(value)) if isinstance(value, Mapping) else value
        return out


@dataclass(frozen=True)
class ApplicationConfig:
    """One application: ``import_path`` (``module:attribute`` or ``module.attribute``) names a
    bound deployment; ``route_prefix`` None serves it over handles only."""

    name: str
    import_path: str
    route_prefix: str | None = "/"
    runtime_env: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    deployments: tuple[DeploymentConfig, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "import_path": self.import_path,
            "route_prefix": self.route_prefix,
            "runtime_env": copy.deepcopy(dict(self.runtime_env)),
            "deployments": [d.to_json() for d in self.deployments],
        }


@dataclass(frozen=True)
class HttpOptions:
    """Where Serve's HTTP proxy listens (``HTTPOptionsSchema``); applied when Serve starts."""

    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True)
class ServeConfig:
    """The whole declarative Serve config of a cluster: what ``deploy`` PUTs.

    ``proxy_location`` is ``HeadOnly`` by default: a local cluster's nodes share one host,
    so one proxy on the head is the cluster's one address (docs/architecture.md)."""

    applications: tuple[ApplicationConfig, ...]
    http_options: HttpOptions = HttpOptions()
    proxy_location: ProxyLocation = ProxyLocation.HEAD_ONLY

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ServeConfig:
        """Build from a plain spec (``applications[]``, ``http_options``, ``proxy_location``),
        checking what Serve would refuse without asking it; ``ServeConfigError`` names the field."""
        apps_raw = spec.get("applications")
        if not isinstance(apps_raw, Sequence) or isinstance(apps_raw, str):
            raise ServeConfigError("applications", "a list of applications is required")
        apps = tuple(_application(raw, f"applications.{i}") for i, raw in enumerate(apps_raw))
        _unique([a.name for a in apps], "applications", "name")
        _unique([a.route_prefix for a in apps if a.route_prefix is not None], "applications", "route_prefix")
        http_raw = _mapping(spec.get("http_options"), "http_options")
        http = HttpOptions(
            host=_str(http_raw.get("host", HttpOptions.host), "http_options.host"),
            port=_int(http_raw.get("port", HttpOptions.port), "http_options.port", low=1, high=65535),
        )
        try:
            where = ProxyLocation(spec.get("proxy_location", ProxyLocation.HEAD_ONLY))
        except ValueError:
            allowed = ", ".join(p.value for p in ProxyLocation)
            raise ServeConfigError("proxy_location", f"one of {allowed}") from None
        return cls(applications=apps, http_options=http, proxy_location=where)

    def with_http(self, host: str, port: int) -> ServeConfig:
        """The same config served at ``host:port`` (the address a provider chose)."""
        return replace(self, http_options=HttpOptions(host=host, port=port))

    def to_json(self) -> dict[str, Any]:
        """The ``ServeDeploySchema`` body."""
        return {
            "proxy_location": self.proxy_location.value,
            "http_options": {"host": self.http_options.host, "port": self.http_options.port},
            "applications": [a.to_json() for a in self.applications],
        }


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ServeConfigError(where, "an object is required")
    return raw


def _optional(raw: Any, where: str) -> Mapping[str, Any] | None:
    """An object, or None when absent or null (the code's value stays)."""
    return None if raw is None else _mapping(raw, where)


def _str(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ServeConfigError(where, "a non-empty string is required")
    return raw


def _int(raw: Any, where: str, *, low: int, high: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < low or (high is not None and raw > high):
        raise ServeConfigError(where, f"an integer from {low}" + (f" to {high}" if high is not None else " up"))
    return raw


def _unique(values: list[Any], where: str, key: str) -> None:
    for i, value in enumerate(values):
        if value in values[:i]:
            raise ServeConfigError(f"{where}.{i}.{key}", f"{value!r} is used twice")


def _application(raw: Any, where: str) -> ApplicationConfig:
    raw = _mapping(raw, where)
    import_path = _str(raw.get("import_path"), f"{where}.import_path")
    if ":" not in import_path and "." not in import_path.strip("."):
        raise ServeConfigError(f"{where}.import_path", "write module:attribute or module.attribute")
    prefix = raw.get("route_prefix", "/")
    if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
        raise ServeConfigError(f"{where}.route_prefix", "a path starting with / (or null: no HTTP route)")
    runtime_env = _mapping(raw.get("runtime_env"), f"{where}.runtime_env")
    uris = [runtime_env.get("working_dir"), *(runtime_env.get("py_modules") or [])]
    for uri in uris:
        if uri is not None and (not isinstance(uri, str) or "://" not in uri):
            raise ServeConfigError(
                f"{where}.runtime_env", f"{uri!r} is not a URI: Serve takes gcs://, https://, local:// ... here"
            )
    deps_raw = raw.get("deployments") or []
    if not isinstance(deps_raw, Sequence) or isinstance(deps_raw, str):
        raise ServeConfigError(f"{where}.deployments", "a list is required")
    deployments = tuple(_deployment(d, f"{where}.deployments.{i}") for i, d in enumerate(deps_raw))
    _unique([d.name for d in deployments], f"{where}.deployments", "name")
    return ApplicationConfig(
        name=_str(raw.get("name"), f"{where}.name"),
        import_path=import_path,
        route_prefix=prefix,
        runtime_env=_frozen(runtime_env) or MappingProxyType({}),
        deployments=deployments,
    )


def _deployment(raw: Any, where: str) -> DeploymentConfig:
    raw = _mapping(raw, where)
    replicas = raw.get("num_replicas")
    autoscaling = raw.get("autoscaling_config")
    if replicas is not None and autoscaling is not None:
        raise ServeConfigError(f"{where}.num_replicas", "give num_replicas or autoscaling_config, not both")
    return DeploymentConfig(
        name=_str(raw.get("name"), f"{where}.name"),
        num_replicas=None if replicas is None else _int(replicas, f"{where}.num_replicas", low=1),
        autoscaling_config=_frozen(_optional(autoscaling, f"{where}.autoscaling_config")),
        user_config=_frozen(_optional(raw.get("user_config"), f"{where}.user_config")),
        ray_actor_options=_frozen(_mapping(raw.get("ray_actor_options"), f"{where}.ray_actor_options") or None),
    )
