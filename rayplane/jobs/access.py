"""How a process reaches a cluster's Ray Jobs API: the URL is on the job's target; the
headers and TLS trust depend on the cloud (none for a local dashboard; a bearer token and
the API server's CA for the Kubernetes service proxy of an AKS cluster), plus the
cluster's own Ray token on every cloud.

The adapter builds one ``JobsAccess`` at start from its providers' ``jobs_auth`` and passes
it to the job use cases; the call may reach Azure (a kubeconfig read), so it runs in a
thread, and providers cache it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rayplane.common import raytoken
from rayplane.common.errors import Unavailable
from rayplane.common.upstream import one_line
from rayplane.jobs.ray_api import RayJobsClient
from rayplane.jobs.target import JobTarget
from rayplane.logs import get_logger
from rayplane.providers.base import ray_headers

log = get_logger("rayplane.jobs")

Auth = tuple[dict[str, str], str | bool]
# (provider kind, cloud config) -> (headers, TLS verify)
AuthResolver = Callable[[str, dict[str, Any]], Auth]


@dataclass(frozen=True)
class JobsAccess:
    """``resolver`` None: every dashboard is reached directly, without a proxy's credentials.
    ``secret_key`` opens each cluster's sealed Ray token, sent on every call."""

    resolver: AuthResolver | None = None
    secret_key: bytes = field(default=b"", repr=False)

    async def auth_for(self, target: JobTarget) -> Auth:
        headers, verify = await self._way_in(target)
        return {**headers, **self._ray_headers(target)}, verify

    def _ray_headers(self, target: JobTarget) -> dict[str, str]:
        if not target.ray_token_sealed:
            return {}  # not given one yet: the cluster has not started, and Ray would refuse
        try:
            token = raytoken.open_token(self.secret_key, target.ray_token_sealed)
        except raytoken.TokenUnreadable as exc:
            raise Unavailable(str(exc)) from None
        return ray_headers(token)

    async def _way_in(self, target: JobTarget) -> Auth:
        if target.provider == "local" or self.resolver is None:
            return {}, True
        try:
            return await asyncio.to_thread(self.resolver, target.provider, dict(target.cloud_config))
        except Exception as exc:  # noqa: BLE001 - surfaced as 503 with the reason
            log.warning("jobs_auth_failed", provider=target.provider, error=str(exc))
            raise Unavailable(f"cannot reach the cluster's API server: {one_line(str(exc))}") from None

    async def client_for(self, target: JobTarget, url: str, *, http_timeout: float = 10.0) -> RayJobsClient:
        headers, verify = await self.auth_for(target)
        return RayJobsClient(url, timeout=http_timeout, headers=headers, verify=verify)
