"""Tenant use cases. Services flush; the caller's unit of work commits."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from rayplane.common.etags import check_if_match
from rayplane.common.principal import Principal, Role
from rayplane.db.ids import new_id
from rayplane.tenants.models import Tenant
from rayplane.tenants.repository import TenantRepository

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")

# Tenant statuses. The Marketplace subscription's lifecycle moves them (rayplane.marketplace):
# suspended (no cluster may be created or started), read_only (cancelled: every write is
# refused while the data stays readable) and closed (after the retention period).
ACTIVE = "active"
SUSPENDED = "suspended"
READ_ONLY = "read_only"
CLOSED = "closed"


def validate_name(name: str, field: str = "body.name") -> str:
    if not _NAME.match(name):
        raise InvalidInput.on(
            field, "3-63 lowercase letters, digits or '-', starting with a letter, not ending with '-'"
        )
    return name


def validate_tid(tid: str, field: str = "body.entra_tenant_id") -> str:
    try:
        return str(uuid.UUID(tid))
    except ValueError:
        raise InvalidInput.on(field, "must be an Entra tenant id (a GUID)") from None


async def create_tenant(
    session: AsyncSession, *, name: str, display_name: str | None = None, entra_tenant_id: str | None = None
) -> Tenant:
    repo = TenantRepository(session)
    validate_name(name)
    if await repo.get_by_name(name) is not None:
        raise Conflict(f"a tenant named {name!r} already exists")
    if entra_tenant_id is not None:
        entra_tenant_id = validate_tid(entra_tenant_id)
        if await repo.get_by_entra_tid(entra_tenant_id) is not None:
            raise Conflict("that Entra tenant is already bound to another Rayplane tenant")
    tenant = Tenant(id=new_id("ten"), name=name, display_name=display_name or name, entra_tenant_id=entra_tenant_id)
    return await repo.add(tenant)


async def require_writable(session: AsyncSession, tenant_id: str) -> None:
    """Refuse any write for a tenant whose subscription was cancelled (read-only or closed).

    Read from the row on every write (not from a cached credential), so the refusal starts
    the moment the webhook's processing commits.
    """
    tenant = await TenantRepository(session).get(tenant_id)
    if tenant is not None and tenant.status in (READ_ONLY, CLOSED):
        raise Forbidden(
            f"this tenant is {tenant.status.replace('_', '-')}: its Azure Marketplace subscription was cancelled; "
            "data stays readable until the retention period ends, and nothing can be changed"
        )


async def get_tenant(session: AsyncSession, principal: Principal) -> Tenant:
    tenant = await TenantRepository(session).get(principal.tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def update_tenant(
    session: AsyncSession,
    principal: Principal,
    *,
    if_match: str | None,
    display_name: str | None = None,
    entra_tenant_id: str | None = None,
    log_retention_days: int | None = None,
) -> Tenant:
    """Change the display name or the logs' retention, or bind an Entra tenant; binding needs
    the owner role."""
    principal.require(Role.ADMIN)
    tenant = await get_tenant(session, principal)
    check_if_match(if_match, tenant.etag)
    if display_name is not None:
        if not display_name.strip() or len(display_name) > 200:
            raise InvalidInput.on("body.display_name", "1 to 200 characters")
        tenant.display_name = display_name.strip()
    if entra_tenant_id is not None:
        principal.require(Role.OWNER)
        tid = validate_tid(entra_tenant_id)
        other = await TenantRepository(session).get_by_entra_tid(tid)
        if other is not None and other.id != tenant.id:
            raise Conflict("that Entra tenant is already bound to another Rayplane tenant")
        tenant.entra_tenant_id = tid
    if log_retention_days is not None:
        tenant.log_retention_days = log_retention_days
    await session.flush()
    return tenant
