"""How the API process reaches a cluster's Ray Jobs API: the URL is on the cluster row; the
headers and TLS trust depend on the cloud (none for a local dashboard; a bearer token and
the API server's CA for the Kubernetes service proxy of an AKS cluster).

The process wires in its providers' ``jobs_auth`` once at start (:func:`configure`); the
call may reach Azure (a kubeconfig read), so it runs in a thread, and providers cache it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clouds.models import Cloud
from rayplane.clusters.models import Cluster
from rayplane.common.errors import Unavailable
from rayplane.jobs.ray_api import RayJobsClient

Auth = tuple[dict[str, str], str | bool]
AuthResolver = Callable[[str, dict[str, Any]], Auth]

_resolver: AuthResolver | None = None


def configure(resolver: AuthResolver | None) -> None:
    """Set how (provider kind, cloud config) maps to headers and TLS trust for this process."""
    global _resolver
    _resolver = resolver


async def auth_for(session: AsyncSession, cluster: Cluster) -> Auth:
    cloud = await session.get(Cloud, cluster.cloud_id) if cluster.cloud_id else None
    if cloud is None or cloud.provider == "local" or _resolver is None:
        return {}, True
    try:
        return await asyncio.to_thread(_resolver, cloud.provider, dict(cloud.config))
    except Exception as exc:  # noqa: BLE001 - surfaced as 503 with the reason
        raise Unavailable(f"cannot reach the cluster's API server: {exc}") from None


async def client_for(session: AsyncSession, cluster: Cluster, url: str, *, http_timeout: float = 10.0) -> RayJobsClient:
    headers, verify = await auth_for(session, cluster)
    return RayJobsClient(url, timeout=http_timeout, headers=headers, verify=verify)
