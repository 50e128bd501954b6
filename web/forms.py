"""Reading the pages' urlencoded forms, and who is signed in.

Forms are parsed with the standard library (no multipart parser needed: the pages post no
files), after ``api.limits`` has bounded the body's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import RedirectResponse

from rayplane.common.errors import Forbidden, Unauthenticated
from rayplane.common.principal import Principal
from rayplane.identity.auth import member_principal
from rayplane.settings import Settings
from web.security import check_csrf
from web.sessions import SessionStore, WebSession

MICROSOFT_MARKETPLACE = "https://marketplaceapi.microsoft.com"


def simulation_enabled(settings: Settings) -> bool:
    """Whether the pages offer "Simulate a purchase" (web.devtools): dev mode, against an
    emulated Marketplace."""
    return settings.is_dev and settings.marketplace_api_url.rstrip("/") != MICROSOFT_MARKETPLACE


async def form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


async def checked_form(request: Request, session: WebSession) -> dict[str, str]:
    """The form's fields once its CSRF token matched the session's (else 403)."""
    fields = await form(request)
    check_csrf(session.csrf, fields.get("csrf"))
    return fields


def to_sign_in(request: Request) -> RedirectResponse:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/auth/sign-in?next={quote(path, safe='/')}", status_code=303)


@dataclass
class Visitor:
    """The browser's session and, when signed in to a tenant, its principal."""

    store: SessionStore
    session: WebSession
    principal: Principal | None = None
    no_tenant: str | None = None  # why a signed-in user has no principal

    @property
    def user(self) -> dict[str, str] | None:
        return self.session.user


async def visitor(request: Request, db: AsyncSession) -> Visitor:
    store = SessionStore.of(request)
    session = await store.load(request)
    found = Visitor(store, session)
    user = session.user
    if user is not None:
        try:
            found.principal = await member_principal(db, user["tid"], user["oid"])
        except (Unauthenticated, Forbidden) as exc:
            found.no_tenant = exc.detail
        if found.principal is not None:
            # The API's audit and unit of work read the caller from here (api/deps.py).
            request.state.principal = found.principal
    return found
