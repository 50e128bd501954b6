"""``/v1/usage``, ``/v1/budget`` and ``/v1/billing/metering-records``: what ran, what it cost,
the tenant's spending limit, and what was reported to the Azure Marketplace."""

from __future__ import annotations

from fastapi import Query, Request, Response

from api.common import Cursor, IsoDateTime, Limit, ListPage, problems, with_etag
from api.deps import Caller, IfMatch, Session, set_audit_target
from api.routing import Router
from rayplane.billing import budgets, reports
from rayplane.billing.schemas import BudgetIn, BudgetOut, GroupBy, MeteringRecordOut, MeteringStatus, UsageReport

router = Router(tags=["billing"])

From = Query(None, alias="from", description="Start (ISO 8601; no offset means UTC). Default: this month's start")
To = Query(None, description="End, exclusive (ISO 8601). Default: now")


@router.get(
    "/v1/usage",
    name="usage.get",
    response_model=UsageReport,
    response_model_by_alias=True,
    responses=problems(422),
)
async def get_usage(
    session: Session,
    caller: Caller,
    frm: IsoDateTime | None = From,
    to: IsoDateTime | None = To,
    group_by: GroupBy = Query("day", description="day (UTC), cluster, or dimension (vcpu_hours, gpu_hours)"),
) -> UsageReport:
    """Observed vCPU-hours, GPU-hours and node-hours, with cost at catalog prices where known."""
    return await reports.usage_report(session, caller, frm=frm, to=to, group_by=group_by)


@router.get(
    "/v1/billing/metering-records",
    name="billing.metering_records",
    response_model=ListPage[MeteringRecordOut],
    responses=problems(403, 422),
)
async def list_metering_records(
    session: Session,
    caller: Caller,
    limit: int = Limit,
    cursor: str | None = Cursor,
    frm: IsoDateTime | None = Query(None, alias="from", description="Only hours at or after this time"),
    to: IsoDateTime | None = Query(None, description="Only hours before this time"),
    status: MeteringStatus | None = Query(None, description="Only records in this status"),
) -> ListPage[MeteringRecordOut]:
    """Hourly usage reported (or to be reported) to the Marketplace, per dimension; admins only."""
    page = await reports.metering_records(session, caller, frm=frm, to=to, status=status, cursor=cursor, limit=limit)
    return ListPage[MeteringRecordOut](
        items=[MeteringRecordOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )


@router.get("/v1/budget", name="budget.get", response_model=BudgetOut, responses=problems(404))
async def get_budget(session: Session, caller: Caller, response: Response) -> BudgetOut:
    """The monthly budget, spend month-to-date, alerts raised this month, and any block."""
    budget, view = await budgets.get_budget(session, caller)
    with_etag(response, budget.etag)
    return view


@router.put("/v1/budget", name="budget.put", response_model=BudgetOut, responses=problems(403, 412, 415, 422))
async def put_budget(
    body: BudgetIn, request: Request, session: Session, caller: Caller, response: Response, if_match: IfMatch = None
) -> BudgetOut:
    """Set or replace the budget. Raising it above the spend (or turning hard stop off) lifts a hard stop."""
    budget, view, lifted = await budgets.put_budget(session, caller, body, if_match=if_match)
    set_audit_target(request, "budget", budget.id, amount_usd=float(body.amount_usd), hard_stop=body.hard_stop)
    if lifted:
        request.state.audit_detail = {**request.state.audit_detail, "lifted_hard_stop": True}
    with_etag(response, budget.etag)
    return view


@router.delete("/v1/budget", name="budget.delete", status_code=204, responses=problems(403, 404, 412))
async def delete_budget(request: Request, session: Session, caller: Caller, if_match: IfMatch = None) -> Response:
    """Remove the budget: no more alerts, and no hard stop."""
    budget = await budgets.delete_budget(session, caller, if_match=if_match)
    set_audit_target(request, "budget", budget.id)
    return Response(status_code=204)
