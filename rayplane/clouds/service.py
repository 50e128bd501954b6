"""Cloud use cases.

In dev mode every tenant gets a ``local`` cloud (this machine, capacity from settings) the
first time it lists clouds or creates a cluster; it becomes the default when the tenant has
none. Azure clouds start VALIDATING; a worker task checks access and sets READY or ERROR.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clouds.models import Cloud
from rayplane.clouds.repository import CloudRepository
from rayplane.clouds.schemas import CloudCreate
from rayplane.common.errors import Conflict, FieldError, InvalidInput, found, invalid
from rayplane.common.etags import check_if_match
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.common.principal import Principal, Role
from rayplane.db.ids import has_prefix, new_id
from rayplane.tenants.service import validate_name

LOCAL = "local"


def installed_ray_versions() -> list[str]:
    """The Ray this machine can run (read from package metadata; ``ray`` is not imported)."""
    try:
        return [importlib.metadata.version("ray")]
    except importlib.metadata.PackageNotFoundError:
        return []


async def ensure_local_cloud(session: AsyncSession, tenant_id: str, capacity: dict[str, Any]) -> Cloud:
    repo = CloudRepository(session)
    cloud = await repo.get_by_name(tenant_id, LOCAL)
    versions = installed_ray_versions()
    if cloud is None:
        make_default = await repo.get_default(tenant_id) is None
        cloud = Cloud(
            id=new_id("cld"),
            tenant_id=tenant_id,
            name=LOCAL,
            provider="local",
            status="READY",
            is_default=make_default,
            config={"capacity": capacity},
            ray_versions=versions,
        )
        await repo.add(cloud)
    elif cloud.provider == "local" and cloud.ray_versions != versions:
        cloud.ray_versions = versions  # the local extra was installed or upgraded
        await session.flush()
    return cloud


def admin_consent_url(cloud: Cloud, *, authority: str, client_id: str | None, redirect_uri: str | None) -> str | None:
    """For an ``app_consent`` Azure cloud: the Entra v2 admin-consent URL of Rayplane's
    multi-tenant app in the customer's tenant, asking for Azure Resource Manager access."""
    if cloud.provider != "azure" or cloud.config.get("auth_mode") != "app_consent" or not client_id:
        return None
    query = {"client_id": client_id, "scope": "https://management.azure.com/.default", "state": cloud.id}
    if redirect_uri:
        query["redirect_uri"] = redirect_uri
    return f"{authority.rstrip('/')}/{cloud.config['tenant_id']}/v2.0/adminconsent?{urlencode(query)}"


async def _create_azure(
    session: AsyncSession, principal: Principal, body: CloudCreate, *, azure_enabled: bool
) -> Cloud:
    repo = CloudRepository(session)
    if body.azure is None:
        raise InvalidInput.on("body.azure", "required for azure clouds: subscription, resource group, region, tenant")
    if body.capacity is not None:
        raise InvalidInput.on("body.capacity", "only local clouds have a capacity; Azure scales with quotas")
    if not azure_enabled:
        raise InvalidInput.on("body.provider", "this deployment has no Azure app configured (RAYPLANE_AZURE_CLIENT_ID)")
    if await repo.get_by_name(principal.tenant_id, body.name) is not None:
        raise Conflict(f"a cloud named {body.name!r} already exists")
    if body.default:
        await repo.clear_default(principal.tenant_id)
    cloud = Cloud(
        id=new_id("cld"),
        tenant_id=principal.tenant_id,
        name=body.name,
        provider="azure",
        status="VALIDATING",
        status_reason="checking access to the subscription",
        is_default=body.default or await repo.get_default(principal.tenant_id) is None,
        config=body.azure.config(),
        ray_versions=[],
    )
    return await repo.add(cloud)


# Capacity fields the operator bounds, and where the bound comes from.
CAPACITY_SETTINGS = {
    "cpus": "RAYPLANE_LOCAL_CPUS",
    "memory_gib": "RAYPLANE_LOCAL_MEMORY_GIB",
    "gpus": "local clouds get no GPUs",
    "max_nodes": "RAYPLANE_LOCAL_MAX_NODES",
}


def capacity_overruns(capacity: dict[str, Any], limit: dict[str, Any]) -> list[FieldError]:
    """Where a tenant's local capacity goes beyond what the operator allows: a tenant's
    settings may only narrow the operator's."""
    return [
        FieldError(f"body.capacity.{key}", f"at most {limit[key]} on this server ({setting})")
        for key, setting in CAPACITY_SETTINGS.items()
        if key in capacity and key in limit and float(capacity[key]) > float(limit[key])
    ]


def effective_capacity(capacity: dict[str, Any], limit: dict[str, Any]) -> dict[str, Any]:
    """A local cloud's capacity within the operator's limits (a cloud stored before a limit
    was lowered is held to the new one)."""
    return {key: min(value, limit[key]) if key in limit else value for key, value in capacity.items()}


def authorize_create(principal: Principal) -> None:
    """The role a create needs; checked before an idempotent replay too."""
    principal.require(Role.ADMIN)


UNAVAILABLE = "UNAVAILABLE"


def unavailable_reason(cloud: Cloud, served: frozenset[str]) -> str | None:
    """Why no cluster can run on ``cloud`` here (this control plane has no provider of its
    kind, ``served``), with what to do; None when its provider is there."""
    if cloud.provider in served:
        return None
    if cloud.provider == "azure":
        return (
            "this control plane has no Azure app configured, so nothing can reach this cloud: set "
            "RAYPLANE_AZURE_CLIENT_ID (and its secret or certificate); in dev mode, start with RAYPLANE_DEMO_AZURE=1"
        )
    return (
        f"this control plane runs no {cloud.provider!r} provider (local clouds need dev mode or RAYPLANE_LOCAL_CLOUDS)"
    )


async def create_cloud(
    session: AsyncSession,
    principal: Principal,
    body: CloudCreate,
    *,
    local_enabled: bool,
    local_capacity: dict[str, Any],
    azure_enabled: bool = False,
) -> Cloud:
    """Create a cloud. An Azure cloud starts VALIDATING; the caller nudges the validation task
    after commit (``rayplane.clouds.validate``), which sets READY or ERROR."""
    authorize_create(principal)
    validate_name(body.name)
    repo = CloudRepository(session)
    if body.provider == "azure":
        return await _create_azure(session, principal, body, azure_enabled=azure_enabled)
    if body.azure is not None:
        raise InvalidInput.on("body.azure", "only for azure clouds")
    if not local_enabled:
        raise InvalidInput.on("body.provider", "local clouds are available in dev mode only")
    if await repo.get_by_name(principal.tenant_id, body.name) is not None:
        raise Conflict(f"a cloud named {body.name!r} already exists")
    capacity = dict(local_capacity)
    if body.capacity is not None:
        capacity = body.capacity.model_dump()
        over = capacity_overruns(capacity, local_capacity)
        if over:
            raise invalid(over)
    if body.default:
        await repo.clear_default(principal.tenant_id)
    cloud = Cloud(
        id=new_id("cld"),
        tenant_id=principal.tenant_id,
        name=body.name,
        provider="local",
        status="READY",
        is_default=body.default or await repo.get_default(principal.tenant_id) is None,
        config={"capacity": capacity},
        ray_versions=installed_ray_versions(),
    )
    return await repo.add(cloud)


async def list_clouds(session: AsyncSession, principal: Principal, *, cursor: str | None, limit: int) -> Page[Cloud]:
    rows = await CloudRepository(session).list(principal.tenant_id, after=decode_cursor(cursor), limit=limit)
    return page_of(rows, limit)


async def get_cloud(session: AsyncSession, principal: Principal, cloud_id: str) -> Cloud:
    return found(await CloudRepository(session).get(principal.tenant_id, cloud_id), "cloud", cloud_id)


async def resolve_cloud(session: AsyncSession, tenant_id: str, ref: str | None, field: str = "body.cloud") -> Cloud:
    """A cloud by id or name, or the tenant's default; ``InvalidInput`` on ``field`` otherwise."""
    repo = CloudRepository(session)
    if ref is None:
        cloud = await repo.get_default(tenant_id)
        if cloud is None:
            raise InvalidInput.on(field, "the tenant has no default cloud; name one, or create a cloud first")
        return cloud
    cloud = await repo.get(tenant_id, ref) if has_prefix(ref, "cld") else await repo.get_by_name(tenant_id, ref)
    if cloud is None:
        raise InvalidInput.on(field, f"no cloud {ref!r} in this tenant")
    if cloud.status != "READY":
        raise InvalidInput.on(field, f"cloud {cloud.name!r} is {cloud.status}, not READY")
    return cloud


async def delete_cloud(
    session: AsyncSession,
    principal: Principal,
    cloud_id: str,
    *,
    if_match: str | None,
    clusters_on: Callable[[str], Awaitable[int]],
) -> None:
    """Delete a cloud no live cluster uses. ``clusters_on(cloud_id)`` counts them (a rule of
    the clusters noun, handed in so clouds do not import it).

    Race: the count is not a lock; a cluster created on this cloud in the same instant is
    not counted, and is left with no cloud (the foreign key sets it NULL)."""
    principal.require(Role.ADMIN)
    repo = CloudRepository(session)
    cloud = await get_cloud(session, principal, cloud_id)
    check_if_match(if_match, cloud.etag)
    in_use = await clusters_on(cloud.id)
    if in_use:
        raise Conflict(f"cloud {cloud.name!r} still has {in_use} cluster(s); delete them first")
    await repo.delete(cloud)


async def revalidate(session: AsyncSession, principal: Principal, cloud_id: str) -> Cloud:
    """Put an Azure cloud back to VALIDATING; the caller nudges the check after commit."""
    principal.require(Role.ADMIN)
    cloud = await get_cloud(session, principal, cloud_id)
    if cloud.provider != "azure":
        raise InvalidInput.on("path.cloud_id", "only Azure clouds are validated")
    cloud.status, cloud.status_reason = "VALIDATING", "checking access to the subscription"
    await session.flush()
    return cloud
