"""A small typed client for Ray's Jobs REST API on a cluster's dashboard (httpx).

Neither the API nor the workers import ``ray``: they talk HTTP, as Ray documents it.
Async for the API, sync for the workers; both share the parsing below.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import httpx

# Keep the tail of very long logs: the end is where a failure explains itself.
MAX_LOG_BYTES = 1_000_000
# How much of a refusal's text is kept (for the log; clients get one line of it).
MAX_REFUSAL_CHARS = 20_000


class RayUnavailable(Exception):
    """The cluster's dashboard did not answer (head down, stopped, or still starting)."""


class RayAuthRefused(RayUnavailable):
    """The dashboard answered but refused the cluster's Ray token (HTTP 401 or 403).

    A kind of ``RayUnavailable`` (the call cannot be made now, and callers that skip an
    unreachable cluster skip this too) whose message says it is an authentication problem."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the cluster's Ray dashboard refused Rayplane's token for it (HTTP {status})")
        self.status = status


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code in (401, 403):
        raise RayAuthRefused(response.status_code)
    return response


@dataclass(frozen=True)
class RayJobInfo:
    submission_id: str
    status: str
    message: str | None
    driver_exit_code: int | None
    started_at: datetime | None
    ended_at: datetime | None


def _ms(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def parse_info(doc: dict[str, Any]) -> RayJobInfo:
    return RayJobInfo(
        submission_id=str(doc.get("submission_id") or doc.get("job_id")),
        status=str(doc.get("status", "PENDING")),
        message=doc.get("message"),
        driver_exit_code=doc.get("driver_exit_code"),
        started_at=_ms(doc.get("start_time")),
        ended_at=_ms(doc.get("end_time")),
    )


def tail(logs: str) -> tuple[str, bool]:
    data = logs.encode()
    if len(data) <= MAX_LOG_BYTES:
        return logs, False
    return data[-MAX_LOG_BYTES:].decode(errors="ignore"), True


def tls_verify(verify: str | bool) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for a CA bundle path (or True/False): a context, as httpx wants it."""
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


class RayJobsClient:
    """Async client (API process)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        headers: dict[str, str] | None = None,
        verify: str | bool = True,
    ) -> None:
        self.base = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout, headers=headers, verify=tls_verify(verify))
        self._owned = client is None

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return _checked(await self._client.request(method, self.base + path, **kw))
        except httpx.HTTPError as exc:
            raise RayUnavailable(f"the cluster's Ray dashboard did not answer ({type(exc).__name__})") from None

    async def submit(self, body: dict[str, Any]) -> str:
        r = await self._call("POST", "/api/jobs/", json=body)
        if r.status_code >= 400:
            # Ray answers a refusal with its traceback; the exception is at the end of it.
            raise ValueError(r.text[-MAX_REFUSAL_CHARS:])
        return str(r.json()["submission_id"])

    async def info(self, submission_id: str) -> RayJobInfo | None:
        r = await self._call("GET", f"/api/jobs/{submission_id}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return parse_info(r.json())

    async def logs(self, submission_id: str) -> str | None:
        r = await self._call("GET", f"/api/jobs/{submission_id}/logs")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return str(r.json().get("logs", ""))

    async def stop(self, submission_id: str) -> bool:
        r = await self._call("POST", f"/api/jobs/{submission_id}/stop")
        if r.status_code == 404:
            return False
        r.raise_for_status()
        return bool(r.json().get("stopped", False))

    async def upload_package(self, name: str, archive: IO[bytes], size: int) -> str:
        """Upload a zipped working dir of ``size`` bytes from ``archive``, streamed in blocks
        (with a Content-Length, as Ray's dashboard expects); returns the ``gcs://`` URI."""

        async def blocks() -> AsyncIterator[bytes]:
            archive.seek(0)
            while block := archive.read(1024 * 1024):
                yield block

        r = await self._call(
            "PUT", f"/api/packages/gcs/{name}", content=blocks(), headers={"Content-Length": str(size)}
        )
        r.raise_for_status()
        return f"gcs://{name}"


class RayJobsSyncClient:
    """Sync client (workers)."""

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None, verify: str | bool = True
    ) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = headers or {}
        self.verify = tls_verify(verify)

    def _get(self, path: str) -> httpx.Response:
        try:
            return _checked(httpx.get(self.base + path, timeout=self.timeout, headers=self.headers, verify=self.verify))
        except httpx.HTTPError as exc:
            raise RayUnavailable(f"the cluster's Ray dashboard did not answer ({type(exc).__name__})") from None

    def info(self, submission_id: str) -> RayJobInfo | None:
        r = self._get(f"/api/jobs/{submission_id}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return parse_info(r.json())

    def logs(self, submission_id: str) -> str | None:
        r = self._get(f"/api/jobs/{submission_id}/logs")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return str(r.json().get("logs", ""))
