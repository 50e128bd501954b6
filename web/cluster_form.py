"""The console's create form: ``/console/clusters/new``, its estimate fragment, and the create.

The form's inputs are named by the API's field paths without the ``body.`` prefix
(``name``, ``head.vm_size``, ``worker_groups.0.max_nodes`` …), so an error the core reports
for ``body.worker_groups.0.max_nodes`` (problem+json's field path) lands next to the input
of that name, and the form is shown again with every value as typed.

The create is ``POST /v1/clusters``'s: ``ClusterCreate`` validated by pydantic, then
``rayplane.clusters.service.create_cluster`` with the API's ``ClusterPolicy``, its audit
target and after-commit nudge (``api.routers.clusters.accept``), in the request's unit of
work. The estimate is ``POST /v1/clusters:estimate``'s (``rayplane.billing.estimate``) with
the tenant's fee plans. Worker groups are added without JavaScript: "Add a worker group"
posts the form back with one more (empty) group; a group left without a name is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse, Response

from api.deps import Session, app_state, audit_event
from api.routers.clusters import accept, policy
from rayplane import catalog
from rayplane.audit.service import record
from rayplane.billing.estimate import estimate
from rayplane.billing.fees import fee_plans
from rayplane.billing.schemas import Estimate, EstimateRequest
from rayplane.clouds.service import LOCAL, list_clouds
from rayplane.clusters import service
from rayplane.clusters.schemas import ClusterCreate
from rayplane.common.errors import Conflict, FieldError, InvalidInput
from rayplane.common.principal import Principal, Role
from rayplane.tenants.service import require_writable
from web.console import _context
from web.forms import Visitor, checked_form, visitor
from web.pagekit import member
from web.render import error_page, page

router = APIRouter(include_in_schema=False)
MAX_GROUPS = 16  # ClusterCreate's limit
GROUP_KEYS = ("name", "vm_size", "min_nodes", "max_nodes", "spot", "fallback_to_on_demand")
DEFAULT_HEAD = "Standard_D4s_v5"


@dataclass(frozen=True)
class Shape:
    """One catalog size as the picker shows it."""

    name: str
    label: str


@dataclass
class Draft:
    """The form's values as typed (strings; switches as "on"), and the errors by input name."""

    values: dict[str, str]
    groups: int
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    @classmethod
    def blank(cls) -> Draft:
        values = {"name": "", "cloud": "", "head.vm_size": DEFAULT_HEAD}
        values |= {"worker_groups.0.name": "cpu", "worker_groups.0.vm_size": "Standard_D4s_v5"}
        values |= {"worker_groups.0.min_nodes": "0", "worker_groups.0.max_nodes": "2"}
        return cls(values, groups=1)

    @classmethod
    def of(cls, fields: dict[str, str]) -> Draft:
        values = {k: v for k, v in fields.items() if k != "csrf"}
        indices = [int(k.split(".")[1]) for k in values if k.startswith("worker_groups.") and k.split(".")[1].isdigit()]
        groups = min(MAX_GROUPS, max(indices, default=-1) + 1)
        return cls(values, groups=groups)

    def body(self) -> dict[str, Any]:
        """The API's JSON body for these values (numbers and switches typed; what cannot be
        read as a number is passed on as typed, for pydantic to name)."""
        head: dict[str, Any] = {"vm_size": self.values.get("head.vm_size", "")}
        if self.values.get("head.gcs_fault_tolerance") == "on":
            head["gcs_fault_tolerance"] = True
        body: dict[str, Any] = {"name": self.values.get("name", "").strip(), "head": head, "worker_groups": []}
        if self.values.get("cloud"):
            body["cloud"] = self.values["cloud"]
        for i in range(self.groups):
            get = self.values.get
            if not get(f"worker_groups.{i}.name", "").strip():
                continue
            body["worker_groups"].append(
                {
                    "name": get(f"worker_groups.{i}.name", "").strip(),
                    "vm_size": get(f"worker_groups.{i}.vm_size", ""),
                    "min_nodes": _number(get(f"worker_groups.{i}.min_nodes", "0")),
                    "max_nodes": _number(get(f"worker_groups.{i}.max_nodes", "1")),
                    "spot": get(f"worker_groups.{i}.spot") == "on",
                    "fallback_to_on_demand": get(f"worker_groups.{i}.fallback_to_on_demand") == "on",
                }
            )
        return body

    def _input(self, path: str, body: dict[str, Any]) -> str:
        """The input named by an API field path (``body.worker_groups.0.min_nodes``); group
        indices are the body's, which skips unnamed groups, so they are mapped back."""
        parts = path.removeprefix("body.").split(".")
        if len(parts) >= 2 and parts[0] == "worker_groups" and parts[1].isdigit():
            named = [i for i in range(self.groups) if self.values.get(f"worker_groups.{i}.name", "").strip()]
            index = int(parts[1])
            if index < len(named):
                parts[1] = str(named[index])
        return ".".join(parts)

    def fail(self, errors: list[FieldError], body: dict[str, Any]) -> None:
        for error in errors:
            name = self._input(error.field, body)
            if name in self.known_inputs():
                self.errors.setdefault(name, error.message)
            else:
                self.general.append(f"{name}: {error.message}")

    def known_inputs(self) -> set[str]:
        names = {"name", "cloud", "head.vm_size", "head.gcs_fault_tolerance"}
        return names | {f"worker_groups.{i}.{k}" for i in range(self.groups) for k in GROUP_KEYS}


def _number(text: str) -> int | str:
    try:
        return int(text.strip())
    except ValueError:
        return text


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    return [FieldError("body." + ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]


def shapes() -> list[Shape]:
    """The catalog's sizes with what they hold and, where known, their price."""
    out = []
    for size in catalog.all_sizes():
        gpu = f", {size.gpus} GPU ({size.gpu_model})" if size.gpus else ""
        price = f", ${size.price.usd_per_hour:.4f}/h" if size.price else ", price unknown"
        out.append(Shape(size.name, f"{size.name}: {size.vcpus} vCPU, {size.memory_gib:g} GiB{gpu}{price}"))
    return out


async def _clouds(db: AsyncSession, principal: Principal, request: Request) -> list[tuple[str, str]]:
    """(value, label) of the tenant's cloud accounts; "local" too where local clusters run."""
    found = await list_clouds(db, principal, cursor=None, limit=100)
    options = [
        (c.name, f"{c.name} ({'this machine' if c.provider == LOCAL else c.provider.title()})") for c in found.items
    ]
    if policy(request).local_clouds and all(c.provider != LOCAL for c in found.items):
        options.append((LOCAL, "local (this machine)"))
    return options


async def _estimate(db: AsyncSession, principal: Principal, draft: Draft) -> tuple[Estimate | None, str | None]:
    try:
        request = EstimateRequest.model_validate(draft.body())
        return estimate(request, await fee_plans(db, principal.tenant_id)), None
    except ValidationError as exc:
        first = exc.errors()[0]
        return None, f"{draft._input('body.' + '.'.join(str(p) for p in first['loc']), draft.body())}: {first['msg']}"
    except InvalidInput as exc:
        return None, exc.detail.replace("body.", "")


async def _form_page(request: Request, db: AsyncSession, who: Visitor, draft: Draft, status: int = 200) -> Response:
    assert who.principal is not None
    found, problem = await _estimate(db, who.principal, draft)
    context = _context(who, app_state(request).settings)
    return page(
        request,
        "cluster_new.html",
        status_code=status,
        draft=draft,
        shapes=shapes(),
        clouds=await _clouds(db, who.principal, request),
        estimate=found,
        estimate_problem=problem,
        **context,
    )


def unaudited(request: Request) -> None:
    """A form post that changes nothing (the estimate, one more group) is not audited: the
    unit of work audits every POST of a known principal, so the principal is taken off the
    request state (the page has it from the ``Visitor``)."""
    if hasattr(request.state, "principal"):
        del request.state.principal


async def refused(request: Request, db: AsyncSession, principal: Principal, status: int) -> None:
    """Undo what the refused create wrote and audit the refusal with its status, as the API's
    middleware audits a refused ``POST /v1/clusters``. The form is answered (not raised), so
    the unit of work would otherwise audit it as a success: the principal is taken off the
    request state, and the refusal's row commits alone."""
    await db.rollback()
    unaudited(request)
    await record(db, principal, audit_event(request, status))


@router.get("/console/clusters/new", name="web.cluster_new")
async def new(request: Request, db: Session) -> Response:
    found = await member(request, db)
    if isinstance(found, Response):
        return found  # sign-in, or the page for someone with no tenant
    who = found.who
    if not who.principal or not who.principal.role.at_least(Role.MEMBER):
        response = error_page(request, 403, "viewers cannot create clusters; ask an owner or admin for the member role")
    else:
        response = await _form_page(request, db, who, Draft.blank())
    await who.store.save(who.session, response)
    return response


@router.post("/console/clusters/new/estimate", name="web.cluster_estimate")
async def estimate_fragment(request: Request, db: Session) -> Response:
    """The estimate of the form's current values (htmx posts the form here on every change)."""
    who = await visitor(request, db)
    fields = await checked_form(request, who.session)
    if who.principal is None:
        return Response(status_code=200, headers={"HX-Redirect": "/console"})
    unaudited(request)
    found, problem = await _estimate(db, who.principal, Draft.of(fields))
    return page(request, "cluster_estimate.html", estimate=found, estimate_problem=problem)


@router.post("/console/clusters/new", name="web.cluster_create")
async def create(request: Request, db: Session) -> Response:
    who = await visitor(request, db)
    fields = await checked_form(request, who.session)  # 403 before anything else on a forged form
    if who.principal is None:
        return error_page(request, 403, who.no_tenant or "you are not signed in")
    draft = Draft.of(fields)
    if fields.get("op") in ("add", "estimate"):  # the form again, one group more or re-estimated
        unaudited(request)
        if fields["op"] == "add" and draft.groups < MAX_GROUPS:
            draft.groups += 1
        return await _form_page(request, db, who, draft)
    principal = who.principal
    service.authorize_create(principal)  # a viewer's forged form: 403, as the API answers
    await require_writable(db, principal.tenant_id)
    body = draft.body()
    try:
        spec = ClusterCreate.model_validate(body)
    except ValidationError as exc:
        await refused(request, db, principal, 422)
        draft.fail(_pydantic_errors(exc), body)
        return await _form_page(request, db, who, draft, status=422)
    try:
        cluster, op = await service.create_cluster(db, principal, spec, policy(request))
    except InvalidInput as exc:
        await refused(request, db, principal, 422)
        draft.fail(exc.errors or [FieldError("body", exc.detail)], body)
        return await _form_page(request, db, who, draft, status=422)
    except Conflict as exc:  # the name is taken
        await refused(request, db, principal, 409)
        draft.fail([FieldError("body.name", exc.detail)], body)
        return await _form_page(request, db, who, draft, status=409)
    accept(request, cluster, op)  # the API's after-commit nudge and audit target
    return RedirectResponse(f"/console/clusters/{cluster.id}", status_code=303)
