"""A typed HTTP client for the Rayplane REST API (``/v1``), shared by the CLI and its tests.

Every endpoint the CLI drives has one method here. Bodies are returned as ``TypedDict``s,
exactly as the API sends them. Failures raise:

* :class:`ApiError` for an error answer, carrying the RFC 9457 problem document;
* :class:`ApiUnreachable` when no answer came back at all (connection refused, DNS, timeout).

The client imports nothing from the server side (no FastAPI, no Celery, no ``api`` package).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

import httpx

from cli import __version__
from cli.resources import (
    ApiKey,
    ApiKeyCreated,
    Cloud,
    Cluster,
    ClusterEvent,
    Job,
    Member,
    Operation,
    Package,
    Page,
    Resource,
    Service,
    ServiceApplication,
    Tenant,
)

T = TypeVar("T")
#: Billing answers (usage, overview, budget, estimate) as the API sends them. Kept open: the
#: renderers read them with ``.get`` so that fields the API adds later are not an error.
Report = dict[str, Any]
Token = str | Callable[[], str] | None

__all__ = [
    "Accepted",
    "ApiError",
    "ApiKey",
    "ApiKeyCreated",
    "ApiUnreachable",
    "Cloud",
    "Cluster",
    "ClusterEvent",
    "Job",
    "Member",
    "Operation",
    "Package",
    "Page",
    "RayplaneClient",
    "Report",
    "Resource",
    "Service",
    "ServiceApplication",
    "Tenant",
    "Versioned",
]


JOB_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
ClusterAction = Literal["stop", "start", "retry"]
ServiceAction = Literal["stop", "start", "retry", "rollback"]


class ApiError(Exception):
    """The API answered with an error; ``problem`` is its RFC 9457 document."""

    def __init__(self, status: int, problem: dict[str, Any], request_id: str | None = None) -> None:
        self.status = status
        self.problem = problem
        self.request_id = request_id
        super().__init__(f"{self.title}: {self.detail}")

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or f"HTTP {self.status}")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or "")

    @property
    def field_errors(self) -> list[tuple[str, str]]:
        """``(field, message)`` pairs from the problem's ``errors[]``."""
        found = self.problem.get("errors") or []
        return [(str(e.get("field", "")), str(e.get("message", ""))) for e in found if isinstance(e, dict)]


class ApiUnreachable(Exception):
    """No HTTP answer: the server is down, the name does not resolve, or it timed out."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the API at {url}: {reason}")


@dataclass
class Versioned(Generic[T]):
    """A resource with its ``ETag``."""

    body: T
    etag: str | None


@dataclass
class Accepted(Generic[T]):
    """A ``202 Accepted`` answer: the resource (cluster, service) as it is now and the operation to follow."""

    resource: T
    operation_id: str | None
    etag: str | None = None


@dataclass
class RayplaneClient:
    """Synchronous client. ``token`` is a bearer string or a callable giving a fresh one."""

    base_url: str
    token: Token = None
    timeout: float = 30.0
    transport: httpx.BaseTransport | None = None
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            headers={"User-Agent": f"rayplane-cli/{__version__}", "Accept": "application/json"},
            # Retries only failed connection attempts, which never reached the server.
            transport=self.transport or httpx.HTTPTransport(retries=2),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RayplaneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ---------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        token = self.token() if callable(self.token) else self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; raise :class:`ApiError` unless the answer is 2xx."""
        all_headers = {**self._auth(), **(headers or {})}
        try:
            response = self._http.request(
                method, path, params=_clean(params), json=json, content=content, headers=all_headers
            )
        except httpx.TimeoutException:
            raise ApiUnreachable(self.base_url, f"no answer within {self.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, _reason(exc)) from None
        if response.is_error:
            raise error_from(response)
        return response

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    def _pages(self, path: str, params: Mapping[str, Any] | None = None, limit: int = 200) -> Iterator[Any]:
        cursor: str | None = None
        while True:
            page = self._json("GET", path, params={**(params or {}), "limit": limit, "cursor": cursor})
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def log_files(self, base: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """``GET <base>/logs``: every stored file (``base``: a cluster's or a service's path),
        following ``next_cursor`` to the last page."""
        return list(self._pages(f"{base}/logs", params, limit=1000))

    def _accepted(self, response: httpx.Response) -> Accepted[Any]:
        op = response.headers.get("Operation-Location")
        return Accepted(response.json(), op.rsplit("/", 1)[-1] if op else None, response.headers.get("ETag"))

    # ---- clusters ---------------------------------------------------------------------
    def create_cluster(self, spec: Mapping[str, Any], idempotency_key: str | None = None) -> Accepted[Cluster]:
        """``POST /v1/clusters`` (202, with an ``Idempotency-Key``)."""
        key = idempotency_key or str(uuid.uuid4())
        return self._accepted(self.request("POST", "/v1/clusters", json=spec, headers={"Idempotency-Key": key}))

    def list_clusters(
        self,
        *,
        states: list[str] | None = None,
        cloud: str | None = None,
        labels: list[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Cluster]:
        """``GET /v1/clusters``: one page, filtered by state, cloud and ``k=v`` labels."""
        params = {"state": states, "cloud": cloud, "label": labels, "limit": limit, "cursor": cursor}
        return cast(Page[Cluster], self._json("GET", "/v1/clusters", params=params))

    def iter_clusters(
        self, *, states: list[str] | None = None, cloud: str | None = None, labels: list[str] | None = None
    ) -> Iterator[Cluster]:
        """Every matching cluster, following ``next_cursor`` to the last page."""
        return self._pages("/v1/clusters", {"state": states, "cloud": cloud, "label": labels})

    def get_cluster(self, cluster_id: str) -> Versioned[Cluster]:
        """``GET /v1/clusters/{id}``, with its ETag."""
        r = self.request("GET", f"/v1/clusters/{cluster_id}")
        return Versioned(cast(Cluster, r.json()), r.headers.get("ETag"))

    def ray_token(self, cluster_id: str) -> str:
        """``GET /v1/clusters/{id}/ray-token``: the cluster's Ray token (members and above)."""
        return str(self._json("GET", f"/v1/clusters/{cluster_id}/ray-token")["token"])

    def update_cluster(
        self, cluster_id: str, patch: Mapping[str, Any], if_match: str | None = None
    ) -> Accepted[Cluster]:
        """``PATCH /v1/clusters/{id}`` (``worker_groups`` replaces the whole list)."""
        headers = {"If-Match": if_match} if if_match else {}
        return self._accepted(self.request("PATCH", f"/v1/clusters/{cluster_id}", json=patch, headers=headers))

    def cluster_action(self, cluster_id: str, action: ClusterAction, if_match: str | None = None) -> Accepted[Cluster]:
        """``POST /v1/clusters/{id}:stop|start|retry``."""
        headers = {"If-Match": if_match} if if_match else {}
        return self._accepted(self.request("POST", f"/v1/clusters/{cluster_id}:{action}", headers=headers))

    def delete_cluster(self, cluster_id: str, if_match: str | None = None) -> Accepted[Cluster]:
        """``DELETE /v1/clusters/{id}``."""
        headers = {"If-Match": if_match} if if_match else {}
        return self._accepted(self.request("DELETE", f"/v1/clusters/{cluster_id}", headers=headers))

    def list_events(self, cluster_id: str, *, cursor: str | None = None, limit: int = 200) -> Page[ClusterEvent]:
        """``GET /v1/clusters/{id}/events``: oldest first; ``next_cursor`` is null on the last page."""
        params = {"cursor": cursor, "limit": limit}
        return cast(Page[ClusterEvent], self._json("GET", f"/v1/clusters/{cluster_id}/events", params=params))

    # ---- services -------------------------------------------------------------------
    def create_service(self, body: Mapping[str, Any], idempotency_key: str | None = None) -> Accepted[Service]:
        """``POST /v1/services`` (202, with an ``Idempotency-Key``)."""
        key = idempotency_key or str(uuid.uuid4())
        return self._accepted(self.request("POST", "/v1/services", json=body, headers={"Idempotency-Key": key}))

    def iter_services(
        self, *, states: list[str] | None = None, cloud: str | None = None, labels: list[str] | None = None
    ) -> Iterator[Service]:
        """``GET /v1/services``, every page, filtered by state, cloud and ``k=v`` labels
        (deleted ones only when asked for by state)."""
        return self._pages("/v1/services", {"state": states, "cloud": cloud, "label": labels})

    def get_service(self, service_id: str) -> Versioned[Service]:
        """``GET /v1/services/{id}``, with its ETag."""
        r = self.request("GET", f"/v1/services/{service_id}")
        return Versioned(cast(Service, r.json()), r.headers.get("ETag"))

    def update_service(
        self, service_id: str, patch: Mapping[str, Any], if_match: str | None = None
    ) -> Accepted[Service]:
        """``PATCH /v1/services/{id}``: any of ``serve``, ``rollout``, ``ray_version``, ``image``,
        ``head``, ``worker_groups`` (the whole list) and ``labels``."""
        headers = {"If-Match": if_match} if if_match else {}
        return self._accepted(self.request("PATCH", f"/v1/services/{service_id}", json=patch, headers=headers))

    def service_action(self, service_id: str, action: ServiceAction, if_match: str | None = None) -> Accepted[Service]:
        """``POST /v1/services/{id}:stop|start|retry|rollback``."""
        headers = {"If-Match": if_match} if if_match else {}
        return self._accepted(self.request("POST", f"/v1/services/{service_id}:{action}", headers=headers))

    def delete_service(self, service_id: str, if_match: str | None = None) -> Accepted[Service]:
        """``DELETE /v1/services/{id}``."""
        headers = {"If-Match": if_match} if if_match else {}
        return self._accepted(self.request("DELETE", f"/v1/services/{service_id}", headers=headers))

    def list_service_events(
        self, service_id: str, *, cursor: str | None = None, limit: int = 200
    ) -> Page[ClusterEvent]:
        """``GET /v1/services/{id}/events``: oldest first, the same shape as a cluster's."""
        params = {"cursor": cursor, "limit": limit}
        return cast(Page[ClusterEvent], self._json("GET", f"/v1/services/{service_id}/events", params=params))

    # ---- operations -------------------------------------------------------------------
    def get_operation(self, operation_id: str) -> Operation:
        """``GET /v1/operations/{id}``."""
        return cast(Operation, self._json("GET", f"/v1/operations/{operation_id}"))

    def list_clouds(self) -> Iterator[Cloud]:
        """``GET /v1/clouds``, every page."""
        return self._pages("/v1/clouds")

    def create_cloud(self, body: Mapping[str, Any]) -> Cloud:
        """``POST /v1/clouds`` (an Azure cloud starts VALIDATING)."""
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return cast(Cloud, self._json("POST", "/v1/clouds", json=body, headers=headers))

    def get_cloud(self, cloud_id: str) -> Cloud:
        """``GET /v1/clouds/{id}``."""
        return cast(Cloud, self._json("GET", f"/v1/clouds/{cloud_id}"))

    def validate_cloud(self, cloud_id: str) -> Cloud:
        """``POST /v1/clouds/{id}:validate``: check an Azure cloud's access again (202)."""
        return cast(Cloud, self._json("POST", f"/v1/clouds/{cloud_id}:validate"))

    def delete_cloud(self, cloud_id: str) -> None:
        """``DELETE /v1/clouds/{id}`` (409 while clusters live on it)."""
        self.request("DELETE", f"/v1/clouds/{cloud_id}")

    def probe(self, path: str) -> httpx.Response:
        """``GET path`` answered as it is, error or not (``/healthz``, ``/readyz``)."""
        try:
            return self._http.get(path, timeout=5)
        except httpx.TimeoutException:
            raise ApiUnreachable(self.base_url, "no answer within 5s") from None
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, _reason(exc)) from None

    # ---- jobs -------------------------------------------------------------------------
    def upload_package(self, cluster_id: str, data: bytes) -> Package:
        """``POST /v1/clusters/{id}/packages`` with a zip body."""
        headers = {"Content-Type": "application/zip"}
        return cast(Package, self._json("POST", f"/v1/clusters/{cluster_id}/packages", content=data, headers=headers))

    def submit_job(self, cluster_id: str, body: Mapping[str, Any], idempotency_key: str | None = None) -> Job:
        """``POST /v1/clusters/{id}/jobs``."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return cast(Job, self._json("POST", f"/v1/clusters/{cluster_id}/jobs", json=body, headers=headers))

    def iter_jobs(self, cluster_id: str) -> Iterator[Job]:
        """``GET /v1/clusters/{id}/jobs``, every page, oldest first."""
        return self._pages(f"/v1/clusters/{cluster_id}/jobs")

    def get_job(self, cluster_id: str, job_id: str) -> Job:
        """``GET /v1/clusters/{id}/jobs/{job}``."""
        return cast(Job, self._json("GET", f"/v1/clusters/{cluster_id}/jobs/{job_id}"))

    def job_logs(self, cluster_id: str, job_id: str) -> str:
        """``GET /v1/clusters/{id}/jobs/{job}/logs``: the whole log as text."""
        return self.request("GET", f"/v1/clusters/{cluster_id}/jobs/{job_id}/logs").text

    def follow_job_logs(self, cluster_id: str, job_id: str) -> Iterator[str]:
        """Yield log text as the job writes it; ends when the job does (or the stream drops:
        ``httpx.TransportError`` then propagates, so a caller can resume)."""
        path = f"/v1/clusters/{cluster_id}/jobs/{job_id}/logs"
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            with self._http.stream(
                "GET", path, params={"follow": "true"}, headers=self._auth(), timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise error_from(response)
                yield from response.iter_text()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ApiUnreachable(self.base_url, _reason(exc)) from None

    def stream_text(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[str]:
        """Yield a streamed text answer as it arrives (no read timeout); ``ApiError`` for an
        error answer, ``ApiUnreachable`` when none came."""
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            with self._http.stream("GET", path, params=_clean(params), headers=self._auth(), timeout=timeout) as resp:
                if resp.is_error:
                    resp.read()
                    raise error_from(resp)
                yield from resp.iter_text()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ApiUnreachable(self.base_url, _reason(exc)) from None

    def stop_job(self, cluster_id: str, job_id: str) -> Job:
        """``POST /v1/clusters/{id}/jobs/{job}:stop``."""
        return cast(Job, self._json("POST", f"/v1/clusters/{cluster_id}/jobs/{job_id}:stop"))

    # ---- billing ----------------------------------------------------------------------
    def estimate_cluster(self, spec: Mapping[str, Any]) -> Report:
        """``POST /v1/clusters:estimate``: the hourly cost range of a create body; creates nothing."""
        return cast(Report, self._json("POST", "/v1/clusters:estimate", json=spec))

    def get_usage(self, *, frm: str | None = None, to: str | None = None, group_by: str = "day") -> Report:
        """``GET /v1/usage``: vCPU-, GPU- and node-hours with their cost, grouped."""
        return cast(Report, self._json("GET", "/v1/usage", params={"from": frm, "to": to, "group_by": group_by}))

    def get_overview(self) -> Report:
        """``GET /v1/overview``: clusters by state, nodes, spend against the budget, recent events."""
        return cast(Report, self._json("GET", "/v1/overview"))

    def get_budget(self) -> Versioned[Report]:
        """``GET /v1/budget`` with its ETag (404 when none is set)."""
        r = self.request("GET", "/v1/budget")
        return Versioned(cast(Report, r.json()), r.headers.get("ETag"))

    def put_budget(self, body: Mapping[str, Any], if_match: str | None = None) -> Report:
        """``PUT /v1/budget``: set or replace the monthly budget."""
        headers = {"If-Match": if_match} if if_match else {}
        return cast(Report, self._json("PUT", "/v1/budget", json=body, headers=headers))

    def delete_budget(self, if_match: str | None = None) -> None:
        """``DELETE /v1/budget``."""
        self.request("DELETE", "/v1/budget", headers={"If-Match": if_match} if if_match else {})

    # ---- account ----------------------------------------------------------------------
    def get_tenant(self) -> Tenant:
        """``GET /v1/tenant``."""
        return cast(Tenant, self._json("GET", "/v1/tenant"))

    def iter_api_keys(self, include_revoked: bool = False) -> Iterator[ApiKey]:
        """``GET /v1/api-keys``, every page."""
        return self._pages("/v1/api-keys", {"include_revoked": str(include_revoked).lower()})

    def create_api_key(self, name: str, role: str, expires_at: str | None = None) -> ApiKeyCreated:
        """``POST /v1/api-keys``; the answer carries the secret, once."""
        body = {"name": name, "role": role, "expires_at": expires_at}
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return cast(ApiKeyCreated, self._json("POST", "/v1/api-keys", json=_drop_none(body), headers=headers))

    def revoke_api_key(self, key_id: str) -> ApiKey:
        """``DELETE /v1/api-keys/{id}``."""
        return cast(ApiKey, self._json("DELETE", f"/v1/api-keys/{key_id}"))

    def iter_members(self) -> Iterator[Member]:
        """``GET /v1/members``, every page."""
        return self._pages("/v1/members")

    def add_member(self, oid: str, role: str, email: str | None = None, display_name: str | None = None) -> Member:
        """``POST /v1/members``."""
        body = _drop_none({"oid": oid, "role": role, "email": email, "display_name": display_name})
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return cast(Member, self._json("POST", "/v1/members", json=body, headers=headers))

    def remove_member(self, member_id: str) -> None:
        """``DELETE /v1/members/{id}``."""
        self.request("DELETE", f"/v1/members/{member_id}")


def error_from(response: httpx.Response) -> ApiError:
    """An :class:`ApiError` for an error answer, problem+json or not."""
    request_id = response.headers.get("X-Request-ID")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        return ApiError(response.status_code, body, request_id)
    text = " ".join(response.text.split())[:200]
    detail = text or response.reason_phrase
    return ApiError(response.status_code, {"title": f"HTTP {response.status_code}", "detail": detail}, request_id)


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None and v != []}


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text:
        return "connection refused"
    return text
