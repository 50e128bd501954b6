"""Ray Serve applications on one cluster, through the Serve REST API of its dashboard (httpx).

Neither this module nor its callers import ``ray``. The wire shapes are Ray 2.60's:

- ``PUT /api/serve/applications/`` (``ray/dashboard/modules/serve/serve_head.py``,
  ``put_all_applications``): the body is a ``ServeDeploySchema`` (``ray/serve/schema.py``):
  ``proxy_location``, ``http_options`` (``HTTPOptionsSchema``: ``host``, ``port``) and
  ``applications`` (``ServeApplicationSchema``: ``name``, ``route_prefix``, ``import_path``,
  ``runtime_env``, ``deployments``: ``DeploymentSchema`` with ``name``, ``num_replicas`` *or*
  ``autoscaling_config``, ``user_config``, ``ray_actor_options``). It declares the whole set:
  the controller's ``apply_config`` deletes applications the body does not name, and updates
  the others in place (a deployment option alone restarts no other application). Answers: 200
  with no body; 400 with ``repr`` of pydantic's ``ValidationError`` or the controller's
  refusal; 500 with a traceback (``optional_utils.init_ray_and_catch_exceptions``); 501 when
  the head lacks Serve's packages. ``http_options`` and ``proxy_location`` count only when
  Serve starts: a running Serve keeps its own (``validate_http_options`` only logs).
- ``runtime_env.working_dir`` and ``py_modules`` must be URIs there
  (``ServeApplicationSchema.runtime_env_contains_remote_uris``: a local path is refused, and
  nothing is uploaded for the caller): ``ServeClient.upload_directory`` puts a directory in
  the cluster's package store (``GET``/``PUT /api/packages/gcs/<name>``,
  ``ray/dashboard/modules/job/job_head.py``) and returns its ``gcs://`` URI.
- ``GET /api/serve/applications/``: a ``ServeInstanceDetails``: ``proxy_location``,
  ``http_options``, ``proxies`` (per node id, with ``status``) and ``applications`` (per name,
  ``ApplicationDetails``: ``status``, ``message``, ``route_prefix``, ``deployments`` per name,
  ``DeploymentDetails``: ``status``, ``message``, ``target_num_replicas``, ``replicas`` with
  each ``replica_id`` and ``state``). Without Serve it is
  ``ServeInstanceDetails.get_empty_schema_dict()``: empty ``applications``, no ``http_options``.
- ``DELETE /api/serve/applications/``: ``serve.shutdown()`` when a controller runs: every
  application, the controller and the proxies go (so the next deploy starts Serve again, with
  that deploy's ``http_options``).

Every call carries the cluster's token (``X-Ray-Authorization``, as the provider's own calls).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import httpx

from rayplane.providers.base import ray_headers

SERVE_PATH = "/api/serve/applications/"
# Directories and files never packed into a working dir.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache"})
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed times: the same files give the same package


class ProxyLocation(StrEnum):
    """Where Serve runs its HTTP proxies (``ray.serve.config.ProxyLocation``)."""

    HEAD_ONLY = "HeadOnly"
    EVERY_NODE = "EveryNode"
    DISABLED = "Disabled"


class ApplicationStatus(StrEnum):
    """``ray.serve.schema.ApplicationStatus``."""

    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    RUNNING = "RUNNING"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class DeploymentStatus(StrEnum):
    """``ray.serve._private.common.DeploymentStatus``."""

    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"


class ServeError(Exception):
    """A Serve call that failed: ``status`` is the dashboard's HTTP status (None when it did not
    answer), ``text`` its answer as sent (a 400's validation error names the field at fault).
    ``retriable``: no answer or a 5xx (the head is down or starting, the GCS is away); a 4xx
    (a config Serve refuses, a token it refuses) will not change by asking again."""

    def __init__(self, message: str, *, status: int | None = None, text: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.text = text

    @property
    def retriable(self) -> bool:
        return self.status is None or self.status >= 500


class ServeConfigError(ValueError):
    """A spec that cannot become a ``ServeConfig``; ``field`` is the dotted path at fault
    (``applications.1.deployments.0.num_replicas``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _frozen(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else MappingProxyType(dict(value))


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
                out[key] = dict(value) if isinstance(value, Mapping) else value
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
            "runtime_env": dict(self.runtime_env),
            "deployments": [d.to_json() for d in self.deployments],
        }


@dataclass(frozen=True)
class HttpOptions:
    """Where Serve's HTTP proxy listens (``HTTPOptionsSchema``); applied when Serve starts."""

    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True)
class ServeEndpoint:
    """A running local cluster's Serve: the dashboard to call and the proxy's address."""

    dashboard_url: str
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, as a proxy upstream (``proxy_config.Upstream``)."""
        return f"{self.host}:{self.port}"


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
        runtime_env=MappingProxyType(dict(runtime_env)),
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
        autoscaling_config=_frozen(_mapping(autoscaling, f"{where}.autoscaling_config") if autoscaling else None),
        user_config=_frozen(_mapping(raw.get("user_config"), f"{where}.user_config") if "user_config" in raw else None),
        ray_actor_options=_frozen(_mapping(raw.get("ray_actor_options"), f"{where}.ray_actor_options") or None),
    )


@dataclass(frozen=True)
class DeploymentState:
    """One deployment as Serve reports it; ``replicas`` counts replicas per state
    (``STARTING``, ``RUNNING``, ``STOPPING`` ...)."""

    name: str
    status: DeploymentStatus
    message: str
    target_replicas: int
    replicas: Mapping[str, int]
    replica_ids: tuple[str, ...]

    @property
    def running_replicas(self) -> int:
        return self.replicas.get("RUNNING", 0)


@dataclass(frozen=True)
class ApplicationState:
    name: str
    status: ApplicationStatus
    message: str
    route_prefix: str | None
    deployments: Mapping[str, DeploymentState]


@dataclass(frozen=True)
class ServeStatus:
    """What ``GET /api/serve/applications/`` says. ``http_host``/``http_port`` are where the
    running Serve listens (None when Serve is not running); ``proxies`` maps node ids to
    their proxy's status (``HEALTHY``, ``STARTING`` ...)."""

    applications: Mapping[str, ApplicationState]
    proxies: Mapping[str, str]
    http_host: str | None
    http_port: int | None

    def all_running(self, names: Sequence[str]) -> bool:
        """Every named application is RUNNING."""
        return all(
            (app := self.applications.get(n)) is not None and app.status is ApplicationStatus.RUNNING for n in names
        )


def parse_status(doc: Mapping[str, Any]) -> ServeStatus:
    """A ``ServeInstanceDetails`` document as a ``ServeStatus``; ``ServeError`` for a shape or
    a status value this Ray does not write (a newer Ray's answer is not guessed at)."""
    try:
        apps = {str(name): _app_state(str(name), raw) for name, raw in (doc.get("applications") or {}).items()}
        http = doc.get("http_options") or {}
        proxies = {str(node): str(raw.get("status", "")) for node, raw in (doc.get("proxies") or {}).items()}
        port = http.get("port")
        return ServeStatus(
            applications=MappingProxyType(apps),
            proxies=MappingProxyType(proxies),
            http_host=str(http["host"]) if http.get("host") else None,
            http_port=int(port) if port is not None else None,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ServeError(f"unexpected Serve status document ({exc})", text=str(doc)[:2000]) from None


def _app_state(name: str, raw: Mapping[str, Any]) -> ApplicationState:
    deployments = {}
    for dname, dep in (raw.get("deployments") or {}).items():
        replicas = dep.get("replicas") or []
        counts: dict[str, int] = {}
        for rep in replicas:
            counts[str(rep["state"])] = counts.get(str(rep["state"]), 0) + 1
        deployments[str(dname)] = DeploymentState(
            name=str(dname),
            status=DeploymentStatus(dep["status"]),
            message=str(dep.get("message") or ""),
            target_replicas=int(dep.get("target_num_replicas") or 0),
            replicas=MappingProxyType(counts),
            replica_ids=tuple(sorted(str(rep.get("replica_id", "")) for rep in replicas)),
        )
    prefix = raw.get("route_prefix")
    return ApplicationState(
        name=name,
        status=ApplicationStatus(raw["status"]),
        message=str(raw.get("message") or ""),
        route_prefix=str(prefix) if prefix is not None else None,
        deployments=MappingProxyType(deployments),
    )


def zip_directory(root: Path) -> bytes:
    """A zip of ``root``'s files (paths relative to it, as Ray unpacks a ``gcs://`` working
    dir), without ``SKIP_DIRS`` or ``*.pyc``; byte-identical for identical files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if not path.is_file() or path.suffix == ".pyc" or SKIP_DIRS.intersection(rel.parts):
                continue
            info = zipfile.ZipInfo(rel.as_posix(), ZIP_EPOCH)
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


class ServeClient:
    """Serve on one cluster, synchronously: ``ServeClient(dashboard_url, token=...)``.

    Contract: each method is one round trip or raises ``ServeError`` (``status`` None when the
    dashboard did not answer, the dashboard's text otherwise); nothing is retried here, so a
    reconciler decides with ``ServeError.retriable``."""

    def __init__(
        self,
        dashboard_url: str,
        *,
        token: str = "",
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = dashboard_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base, headers=ray_headers(token), timeout=timeout, trust_env=False, transport=transport
        )

    def __enter__(self) -> ServeClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def deploy(self, config: ServeConfig) -> None:
        """PUT the whole config: applications it does not name are deleted, the others are
        created or updated in place. Returns once Serve accepted it (status() follows it)."""
        self._call("PUT", SERVE_PATH, json=config.to_json())

    def status(self) -> ServeStatus:
        """Serve's applications and deployments now (empty when Serve is not running)."""
        response = self._call("GET", SERVE_PATH)
        try:
            doc = response.json()
        except ValueError:
            raise ServeError("Serve's status is not JSON", status=response.status_code, text=response.text) from None
        if not isinstance(doc, Mapping):
            raise ServeError("Serve's status is not an object", status=response.status_code, text=response.text)
        return parse_status(doc)

    def delete_all(self) -> None:
        """Shut Serve down on the cluster: every application, the controller and the proxies."""
        self._call("DELETE", SERVE_PATH)

    def upload_directory(self, root: Path) -> str:
        """Pack ``root`` (``zip_directory``) into the cluster's package store under its hash,
        unless a package of that hash is there already; returns its ``gcs://`` URI for
        ``runtime_env.working_dir``."""
        data = zip_directory(root)
        name = f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"
        path = f"/api/packages/gcs/{name}"
        if self._call("GET", path, ok=(200, 404)).status_code == 404:
            self._call("PUT", path, content=data)
        return f"gcs://{name}"

    def _call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServeError(f"{method} {self.base}{path}: the dashboard did not answer ({exc!r})") from None
        if response.status_code not in ok:
            why = "refused the cluster's token" if response.status_code in (401, 403) else "answered"
            raise ServeError(
                f"{method} {self.base}{path}: the dashboard {why} (HTTP {response.status_code}): "
                + response.text[:500],
                status=response.status_code,
                text=response.text,
            )
        return response
