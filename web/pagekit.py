"""What the console's pages share: the signed-in member, the page context, checked writes,
and field errors next to their fields.

A page's GET answers with the page (saving the session, whose CSRF token the forms carry), a
sign-in redirect (nobody signed in) or a 403 page (signed in, but no member of a tenant). A
write (:func:`writer`) checks the form's CSRF token before anything else (403), then that a
member is signed in and the tenant is not suspended (``require_writable``, as the API's
``get_principal`` does for a mutating request). The role is the core's: each form asks the
service's own check (``authorize_submit``, ``authorize_api_key_create`` …) before it reads
the input, so a viewer's post is a 403 whatever it holds, and the service checks again as it
acts, refusing with ``Forbidden`` exactly as it refuses the API's caller. The request's
unit of work (``api.deps.Session``) then commits the change with its audit row before the
answer, as for the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.deps import app_state
from rayplane.common.errors import FieldError, Forbidden, InvalidInput
from rayplane.common.principal import Principal, Role
from rayplane.tenants.service import require_writable
from web.forms import Visitor, checked_form, simulation_enabled, to_sign_in, visitor
from web.render import error_page, page


@dataclass
class Member:
    """A signed-in member of a tenant, with the session behind it."""

    who: Visitor
    principal: Principal

    def at_least(self, role: Role) -> bool:
        return self.principal.role.at_least(role)

    def context(self, request: Request) -> dict[str, Any]:
        """What every console page's template gets (``base.html`` and the write controls)."""
        settings = app_state(request).settings
        return {
            "user": self.who.user,
            "csrf": self.who.session.csrf,
            "role": self.principal.role.value,
            "can_write": self.at_least(Role.MEMBER),
            "is_admin": self.at_least(Role.ADMIN),
            "simulate": simulation_enabled(settings),
        }

    async def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        response = page(request, template, status_code=status_code, **self.context(request), **context)
        await self.who.store.save(self.who.session, response)
        return response


async def member(request: Request, db: AsyncSession) -> Member | Response:
    """The signed-in member, or the answer for whoever else is here (sign-in, or a 403 page)."""
    who = await visitor(request, db)
    if who.user is None:
        return to_sign_in(request)
    if who.principal is None:
        response = error_page(request, 403, who.no_tenant or "no access", title="No Rayplane tenant")
        await who.store.save(who.session, response)
        return response
    return Member(who, who.principal)


async def writer(request: Request, db: AsyncSession) -> tuple[Member, dict[str, str]]:
    """A form post's member and fields: CSRF first, then a member of a writable tenant."""
    who = await visitor(request, db)
    fields = await checked_form(request, who.session)  # 403 before anything else on a forged form
    if who.principal is None:  # signed in without a tenant (anonymous posts failed the CSRF check)
        raise Forbidden(who.no_tenant or "you are not signed in")
    await require_writable(db, who.principal.tenant_id)
    return Member(who, who.principal), fields


async def refuse(request: Request, db: AsyncSession) -> None:
    """A form refused for its input: roll back whatever the service flushed, and take the
    principal off the request so the unit of work records no success for it (the page
    answers 422 with the errors next to the fields; nothing changed, so nothing is audited)."""
    await db.rollback()
    request.state.principal = None


@dataclass
class FormErrors:
    """Messages per form field, shown next to the fields (``errors.get('entrypoint')``)."""

    by_field: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.by_field.setdefault(name, message)

    def get(self, name: str) -> str | None:
        return self.by_field.get(name)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    @classmethod
    def of_validation(cls, exc: ValidationError, names: dict[str, str]) -> FormErrors:
        """``names`` maps a model's first location segment (``runtime_env``) to a form field."""
        found = cls()
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ())]
            name = names.get(".".join(loc[:2]), names.get(loc[0] if loc else "", "form"))
            found.add(name, str(error.get("msg", "invalid")).removeprefix("Value error, "))
        return found

    @classmethod
    def of_domain(cls, exc: InvalidInput, names: dict[str, str]) -> FormErrors:
        """The core's field errors (``body.amount_usd``) on the form's fields."""
        found = cls()
        errors = exc.errors or [FieldError("form", exc.detail)]
        for error in errors:
            path = error.field.removeprefix("body.")
            name = names.get(path, names.get(path.split(".")[0], "form"))
            found.add(name, error.message)
        return found
