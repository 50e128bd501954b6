"""Which store holds a cluster's logs: the deployment's for a local cluster or an Azure cloud that
opted out of durable logs, the customer's account (found through the emulated ARM with the
cloud's own credential) for an Azure cluster once the account exists, and never another
tenant's cluster."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from emulators.azure.server import EmulatorProcess
from rayplane.clouds.models import Cloud
from rayplane.clusters.logs import source
from rayplane.clusters.logstores import store_for
from rayplane.clusters.models import Cluster
from rayplane.clusters.spec import ClusterSpec
from rayplane.common.errors import NotFound
from rayplane.common.principal import Principal, Role
from rayplane.db.ids import new_id
from rayplane.logstore.blob import BlobLogStore
from rayplane.logstore.directory import DirectoryLogStore
from rayplane.providers.azure.credentials import credential_for
from rayplane.providers.azure.logsink import Storage
from rayplane.settings import Settings
from tests.support.factories import Factory

SPEC = {"ray_version": "2.52.0", "head": {"vm_size": "Standard_D4s_v5"}, "worker_groups": []}


def _principal(tenant_id: str) -> Principal:
    return Principal(tenant_id, Role.OWNER, "api_key", "key_1")


async def _cluster(session: AsyncSession, tenant_id: str, provider: str, config: dict[str, Any]) -> str:
    cloud = Cloud(id=new_id("cld"), tenant_id=tenant_id, name=f"c{uuid.uuid4().hex[:8]}", provider=provider)
    cloud.config, cloud.ray_versions = config, ["2.52.0"]
    session.add(cloud)
    await session.flush()
    cluster = Cluster(id=new_id("clu"), tenant_id=tenant_id, cloud_id=cloud.id, name=f"logs-{uuid.uuid4().hex[:6]}")
    cluster.spec = ClusterSpec.from_json(SPEC)
    session.add(cluster)
    await session.flush()
    return cluster.id


async def test_the_store_follows_the_clusters_cloud(
    session: AsyncSession, factory: Factory, azure_settings: Settings, emulator: EmulatorProcess, tmp_path: Any
) -> None:
    settings = azure_settings.model_copy(
        update={
            "azure_client_id": str(uuid.uuid4()),
            "azure_client_secret": SecretStr("emulator-secret"),
            "azure_arm_url": emulator.origin,
        }
    )
    tenant = await factory.tenant()
    default = DirectoryLogStore(tmp_path, "logs")
    config = {
        "subscription_id": str(uuid.uuid4()),
        "resource_group": "ml",
        "region": "eastus2",
        "tenant_id": str(uuid.uuid4()),
        "auth_mode": "app_consent",
    }
    local = await _cluster(session, tenant.id, "local", {})
    opted_out = await _cluster(session, tenant.id, "azure", {**config, "durable_logs": False})
    azure = await _cluster(session, tenant.id, "azure", config)
    me = _principal(tenant.id)

    async def store_of(principal: Principal, cluster_id: str) -> Any:
        src = await source(session, principal, cluster_id)  # the caller's cluster, else 404
        return await store_for(session, src.tenant, src.cloud_id, settings, default)

    assert await store_of(me, local) is default
    assert await store_of(me, opted_out) is default
    # No account yet (no cluster has run there): the deployment's store.
    assert await store_of(me, azure) is default

    ca = str(settings.ca_bundle)
    storage = Storage(
        credential_for(settings, config), config["subscription_id"], arm_url=emulator.origin, ca_bundle=ca
    )
    sink = storage.ensure("ml", "eastus2", 30)
    assert sink is not None
    found = await store_of(me, azure)
    assert isinstance(found, BlobLogStore)
    assert found._service.url.rstrip("/") == sink.blob_url.rstrip("/")
    assert found._name == "ray-logs"

    other = _principal((await factory.tenant()).id)
    with pytest.raises(NotFound):
        await store_of(other, azure)
