"""Ray Serve applications on one cluster, through the Serve REST API of its dashboard (httpx).

Neither this module nor its callers import ``ray``. The wire shapes are Ray 2.60's:

- ``PUT /api/serve/applications/`` (``ray/dashboard/modules/serve/serve_head.py``,
  ``put_all_applications``): the body is a ``ServeDeploySchema`` (``ray/serve/schema.py``;
  ``serve_config.ServeConfig`` builds it). It declares the whole set: the controller's
  ``apply_config`` (``ray/serve/_private/controller.py``) deletes applications the body does
  not name and updates the others in place (a deployment option alone restarts no other
  application). Answers: 200 with no body; 400 with ``repr`` of pydantic's
  ``ValidationError`` or the controller's refusal; 500 with a traceback
  (``optional_utils.init_ray_and_catch_exceptions``); 501 when the head lacks Serve's
  packages. ``http_options`` and ``proxy_location`` count only when Serve starts: a running
  Serve keeps its own (``validate_http_options`` only logs).
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
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import httpx

from rayplane.common.upstream import one_line
from rayplane.providers.base import ray_headers
from rayplane.providers.local.serve_config import ServeConfig

SERVE_PATH = "/api/serve/applications/"
# Directories and files never packed into a working dir.
SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache"})
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed times: the same files give the same package


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


def routes_ready(url: str, raw: dict[str, Any]) -> bool:
    """Serve's proxy at ``url`` routes every application of ``raw`` that has a prefix
    (its ``/-/routes`` maps route prefixes to application names)."""
    prefixes = {a["route_prefix"] for a in raw.get("applications") or () if a.get("route_prefix") is not None}
    try:
        response = httpx.get(f"{url}/-/routes", timeout=5.0, trust_env=False)
        return response.status_code == 200 and prefixes <= set(response.json())
    except (httpx.HTTPError, ValueError, TypeError):
        return False


def failure_text(status: ServeStatus | None, names: list[str]) -> str | None:
    """Serve's messages for the applications that failed (DEPLOY_FAILED or UNHEALTHY); when
    none did, the statuses of those not RUNNING yet (e.g. still DEPLOYING at a timeout)."""
    if status is None:
        return None
    bad = (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY)
    apps = [(n, status.applications.get(n)) for n in names]
    # Serve's message is a whole traceback: users read its exception line (the full text is
    # in Serve's own logs), without the control plane's file paths.
    failed = [f"{n}: {app.status}: {one_line(app.message, 300)}" for n, app in apps if app and app.status in bad]
    if failed:
        return "\n".join(failed)
    waiting = [
        f"{n}: {app.status if app else 'not reported'}"
        + (f": {one_line(app.message, 300)}" if app and app.message else "")
        for n, app in apps
        if app is None or app.status is not ApplicationStatus.RUNNING
    ]
    return "\n".join(waiting) or None
