"""``/v1/tenant``: the caller's own tenant."""

from __future__ import annotations

from fastapi import Request, Response

from api.common import problems, with_etag
from api.deps import Caller, IfMatch, Session, set_audit_target
from api.routing import Router
from rayplane.tenants import service
from rayplane.tenants.schemas import TenantOut, TenantPatch

router = Router(prefix="/v1/tenant", tags=["tenant"])


@router.get("", name="tenant.get", response_model=TenantOut, responses=problems())
async def get_tenant(session: Session, caller: Caller, response: Response) -> TenantOut:
    tenant = await service.get_tenant(session, caller)
    with_etag(response, tenant.etag)
    return TenantOut.model_validate(tenant)


@router.patch("", name="tenant.update", response_model=TenantOut, responses=problems(403, 409, 412, 415, 422))
async def patch_tenant(
    body: TenantPatch, session: Session, caller: Caller, request: Request, response: Response, if_match: IfMatch = None
) -> TenantOut:
    set_audit_target(request, "tenant", caller.tenant_id)
    tenant = await service.update_tenant(
        session,
        caller,
        if_match=if_match,
        display_name=body.display_name,
        entra_tenant_id=body.entra_tenant_id,
        log_retention_days=body.log_retention_days,
    )
    with_etag(response, tenant.etag)
    return TenantOut.model_validate(tenant)
