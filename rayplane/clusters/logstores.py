"""Which log store holds a cluster's Ray logs: the customer's own storage account for a cluster
on an Azure cloud with durable logs (its pods' shippers write there), else the deployment's
store (local clusters' shippers write there). Tenant isolation as everywhere: the cluster is
found with the caller's tenant first."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clouds.repository import CloudRepository
from rayplane.logstore import LogStore
from rayplane.providers.azure.logreads import customer_store
from rayplane.providers.azure.observability import enabled
from rayplane.settings import Settings


async def store_for(
    session: AsyncSession, tenant_id: str, cloud_id: str | None, settings: Settings, default: LogStore
) -> LogStore:
    """The store of the logs of a cluster of ``tenant_id`` on ``cloud_id`` (found by the caller
    with its tenant: ``rayplane.clusters.logs.source``)."""
    if cloud_id is None:
        return default
    cloud = await CloudRepository(session).get(tenant_id, cloud_id)
    if cloud is None or cloud.provider != "azure" or not enabled(dict(cloud.config or {})):
        return default
    found = await asyncio.to_thread(customer_store, settings, dict(cloud.config))
    return found or default
