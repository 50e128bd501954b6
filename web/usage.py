"""Console usage and billing: usage per day and per dimension (a chart), month to date against
the budget, the estimate for the month, the budget with its alerts, and (admins) its form.

Figures come from the same core as ``/v1/usage``, ``/v1/budget`` and the portal's overview
(``rayplane.billing.reports`` and ``budgets``) with the member's principal. The chart's series
are in the page as a ``<script type="application/json">`` block (data, never run), which
``/static/usage-chart.js`` draws with the vendored uPlot: no inline script under the CSP.

The estimate for the month is a straight line through the month so far: month-to-date times
the month's length over the time elapsed. It is only shown once an hour of the month has
passed, as a guide, never as a bill.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from api.deps import Session, set_audit_target
from rayplane.billing import budgets, reports
from rayplane.billing.periods import month_start
from rayplane.billing.schemas import BudgetIn, BudgetOut, UsageReport
from rayplane.common.errors import InvalidInput, NotFound
from rayplane.common.principal import Role
from rayplane.db.base import utcnow
from web.pagekit import FormErrors, Member, member, refuse, writer

router = APIRouter(include_in_schema=False)
CHART_DAYS = 30
BUDGET_FIELDS = {"amount_usd": "amount", "alert_thresholds": "thresholds", "hard_stop": "hard_stop"}
#: The chart's series: the usage report's per-day fields and their labels.
SERIES = (("vcpu_hours", "vCPU hours"), ("gpu_hours", "GPU hours"), ("node_hours", "Node hours"))


def month_estimate(month_to_date: float | None, now: datetime) -> float | None:
    """Month-to-date extrapolated to the month's end (None before the first hour has passed)."""
    start = month_start(now)
    elapsed = (now - start).total_seconds()
    if month_to_date is None or elapsed < 3600:
        return None
    days = calendar.monthrange(start.year, start.month)[1]
    return round(month_to_date * days * 86400 / elapsed, 2)


def chart_data(report: UsageReport, first_day: datetime, days: int) -> dict[str, Any]:
    """Every day of the window (a day without usage is 0), as uPlot's columns."""
    by_day = {row.key: row for row in report.items}
    stamps: list[int] = []
    columns: dict[str, list[float]] = {name: [] for name, _ in SERIES}
    for n in range(days):
        day = first_day + timedelta(days=n)
        stamps.append(int(day.timestamp()))
        row = by_day.get(day.date().isoformat())
        for name, _ in SERIES:
            value = getattr(row, name) if row is not None else None
            columns[name].append(round(value or 0.0, 3))
    return {
        "x": stamps,
        "series": [{"label": label, "values": columns[name]} for name, label in SERIES],
    }


async def _budget(db: AsyncSession, who: Member) -> BudgetOut | None:
    try:
        return (await budgets.get_budget(db, who.principal))[1]
    except NotFound:
        return None


async def _page(
    request: Request,
    db: AsyncSession,
    who: Member,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    first_day = (now - timedelta(days=CHART_DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    daily = await reports.usage_report(db, who.principal, frm=first_day, to=None, group_by="day")
    month = await reports.usage_report(db, who.principal, frm=None, to=None, group_by="dimension")
    overview = await reports.overview(db, who.principal)
    budget = await _budget(db, who)
    spend = overview.spend
    if values is None:
        values = {
            "amount": f"{budget.amount_usd:.2f}" if budget else "",
            "thresholds": ", ".join(str(t) for t in budget.alert_thresholds) if budget else "50, 80, 100",
            "hard_stop": "on" if budget and budget.hard_stop else "",
        }
    return await who.render(
        request,
        "usage.html",
        status_code=status_code,
        chart=chart_data(daily, first_day, CHART_DAYS),
        daily=daily,
        month=month,
        spend=spend,
        estimate=month_estimate(spend.month_to_date_usd, now),
        fee_estimate=month_estimate(month.fee_usd, now),
        budget=budget,
        alerts=overview.budget_alerts,
        values=values,
        errors=errors or FormErrors(),
    )


@router.get("/console/usage", name="web.usage")
async def usage_page(request: Request, db: Session) -> Response:
    who = await member(request, db)
    if not isinstance(who, Member):
        return who
    return await _page(request, db, who)


def parse_budget(fields: dict[str, str]) -> tuple[BudgetIn | None, FormErrors]:
    errors = FormErrors()
    try:
        amount = Decimal(fields.get("amount", "").strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        errors.add("amount", "write an amount in US dollars, such as 500 or 1250.50")
        amount = None
    thresholds: list[int] = []
    for part in fields.get("thresholds", "").replace(",", " ").split():
        if not part.isdigit():
            errors.add("thresholds", f"{part!r} is not a whole percent")
            break
        thresholds.append(int(part))
    if errors:
        return None, errors
    try:
        body = BudgetIn(amount_usd=amount, alert_thresholds=thresholds, hard_stop=fields.get("hard_stop") == "on")
    except ValidationError as exc:
        return None, FormErrors.of_validation(exc, BUDGET_FIELDS)
    return body, errors


@router.post("/console/usage/budget", name="web.budget_put")
async def put_budget(request: Request, db: Session) -> Response:
    """Set or replace the budget (admins; the service refuses others with 403)."""
    who, fields = await writer(request, db)
    who.principal.require(Role.ADMIN)  # put_budget's rule, before the input is read
    values = {k: fields.get(k, "") for k in ("amount", "thresholds", "hard_stop")}
    body, errors = parse_budget(fields)
    if body is not None:
        try:
            budget, _, lifted = await budgets.put_budget(db, who.principal, body, if_match=None)
        except InvalidInput as exc:  # a hard stop the catalog cannot enforce, named by field
            errors = FormErrors.of_domain(exc, BUDGET_FIELDS)
        else:
            set_audit_target(request, "budget", budget.id, amount_usd=float(body.amount_usd), hard_stop=body.hard_stop)
            if lifted:
                request.state.audit_detail = {**request.state.audit_detail, "lifted_hard_stop": True}
            return RedirectResponse("/console/usage", status_code=303)
    await refuse(request, db)
    return await _page(request, db, who, values=values, errors=errors, status_code=422)
