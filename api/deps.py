"""Request-scoped dependencies: the unit of work, the caller, and request metadata.

Unit of work: ``get_session`` opens one session per request and, because its end runs on
FastAPI's function-scoped exit stack, commits *before* the response is sent, so a client that got a
2xx can immediately read what it wrote. On any exception it rolls back. Services only
flush. For a mutating request that succeeds, the audit entry is written inside the same
transaction, so the change and its audit row commit or vanish together; failures are
audited by the middleware in a transaction of their own after the rollback. Safe methods
(GET, HEAD, OPTIONS) get a session in autocommit when the app state has ``read_sessions``
(``api.app.build_state`` sets it): no BEGIN or COMMIT round trip, and a session left with
no pending ORM change is closed without a commit call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any

import structlog
from anyio import CancelScope
from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api import authguard, ratelimit
from api.headers import header
from api.state import AppState
from rayplane.audit.service import AuditEvent, record
from rayplane.common.principal import Principal
from rayplane.jobs.access import JobsAccess
from rayplane.tenants.service import require_writable

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where FastAPI (0.118 and later) keeps the exit stack of function-scoped dependencies: closed
# when the endpoint returns, before the response is sent. tests/api pin the commit-before-
# response contract that depends on it.
_FUNCTION_STACK = "fastapi_function_astack"


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.rayplane
    return state


def jobs_access(request: Request) -> JobsAccess:
    """How this process reaches clusters' Ray Jobs APIs (built once by ``create_app``)."""
    access: JobsAccess = request.app.state.jobs_access
    return access


def action_name(request: Request) -> str:
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    return str(name) if name else f"{request.method.lower()} {request.url.path}"


def set_audit_target(request: Request, target_type: str, target_id: str, **detail: Any) -> None:
    """Routes call this so the audit entry names what the request acted on."""
    request.state.audit_target = (target_type, target_id)
    if detail:
        request.state.audit_detail = detail


def audit_event(request: Request, status_code: int) -> AuditEvent:
    target = getattr(request.state, "audit_target", None)
    client = request.client.host if request.client else None
    return AuditEvent(
        action=action_name(request),
        status_code=status_code,
        target_type=target[0] if target else None,
        target_id=target[1] if target else None,
        request_id=getattr(request.state, "request_id", None),
        client_address=client,
        detail=getattr(request.state, "audit_detail", None),
    )


class _UnitOfWork:
    """The end of a request's session, run by FastAPI's function-scoped exit stack (before the
    response is sent): roll back on an exception, else audit a mutation and commit; close; then
    the after-commit hooks. Shielded from cancellation, as FastAPI shields a dependency's exit,
    where there is something to lose: a commit, a rollback, hooks to run.

    A clean read (an autocommit session with no pending ORM change, no error and no hook) has
    nothing to commit: every statement committed as it ran. It only closes, unshielded: the
    cancel scope cost about 6% of a read's CPU (``benchmarks/api_read_inprocess.py``). The
    request task is cancelled only when the server gives up on it at shutdown (uvicorn does
    not cancel a request whose client went away, and this runs before any response streams);
    a close cut short there leaves a connection that the pool discards, never a half-done
    change."""

    __slots__ = ("autocommit", "request", "session")

    def __init__(self, request: Request, session: AsyncSession, autocommit: bool) -> None:
        self.request = request
        self.session = session
        self.autocommit = autocommit

    async def __call__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        request, session = self.request, self.session
        if (
            exc is None
            and self.autocommit
            and not (session.new or session.dirty or session.deleted)
            and not request.scope["state"].get("after_commit")
        ):
            await session.close()
            return False
        with CancelScope(shield=True):
            try:
                if exc is not None:
                    await session.rollback()
                    return False  # the exception goes on to the app's handlers
                scope_state: dict[str, Any] = request.scope["state"]
                principal: Principal | None = scope_state.get("principal")
                if principal is not None and request.method in MUTATING:
                    route = request.scope.get("route")
                    status = getattr(route, "status_code", None) or 200
                    await record(session, principal, audit_event(request, status))
                    scope_state["audited"] = True
                # In autocommit every statement has committed already; only unflushed ORM
                # changes would need the commit (its flush), so a clean read session just closes.
                if not self.autocommit or session.new or session.dirty or session.deleted:
                    await session.commit()
            finally:
                await session.close()
            for hook in request.scope["state"].get("after_commit", ()):
                await hook()
        return False


def request_session(request: Request) -> AsyncSession:
    """The request's session, opened on first use and kept in the request's scope state: the
    ``Session`` dependency and ``get_principal`` share it without one depending on the other
    (FastAPI walks every declared sub-dependency on every request, cached or not). Its end
    (``_UnitOfWork``) is pushed on the exit stack FastAPI closes after the endpoint returns and
    before the response starts, which is what a generator dependency with ``scope="function"``
    gets, without the generator, context manager and cancel scope FastAPI builds around one on
    every request (a few percent of a read's CPU in a profile of ``benchmarks/api_read.py``)."""
    scope_state: dict[str, Any] = request.scope["state"]
    session: AsyncSession | None = scope_state.get("session")
    if session is None:
        state = app_state(request)
        read_sessions = state.read_sessions if request.method not in MUTATING else None
        session = scope_state["session"] = (read_sessions or state.sessions)()
        stack: AsyncExitStack = request.scope[_FUNCTION_STACK]
        stack.push_async_exit(_UnitOfWork(request, session, autocommit=read_sessions is not None))
    return session


async def get_session(request: Request) -> AsyncSession:
    """The ``Session`` dependency: ``request_session``."""
    return request_session(request)


def after_commit(request: Request, hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook`` once the request's transaction has committed (never if it rolls back)."""
    request.scope["state"].setdefault("after_commit", []).append(hook)


Session = Annotated[AsyncSession, Depends(get_session)]


async def get_principal(request: Request) -> Principal:
    """The caller, authenticated once per request (``api.limits`` may have done it before the
    body was read); the rate limiter charged; a mutation refused on a read-only tenant. The
    session is the request's own (``request_session``), taken only when it is needed: a
    credential this process accepted within the auth cache's ttl needs none."""
    state = app_state(request)
    scope_state: dict[str, Any] = request.scope["state"]
    principal: Principal | None = scope_state.get("principal")
    if principal is None:
        client = request.scope.get("client")
        # Read from the scope, not declared as a ``Header`` parameter: the header is not
        # documented per route (the security scheme documents it) and every declared
        # parameter costs each request a validation pass in FastAPI. ASGI servers give
        # header names in lower case.
        authorization = header(request.scope, b"authorization")
        principal = await authguard.authenticate(
            state, lambda: request_session(request), authorization, client[0] if client else None
        )
        scope_state["principal"] = principal
    structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id)
    await ratelimit.hit(state.redis, principal.tenant_id, state.settings.rate_limit_per_minute)
    if request.method in MUTATING:
        await require_writable(request_session(request), principal.tenant_id)
    return principal


Caller = Annotated[Principal, Depends(get_principal, scope="function")]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="ETag from a previous read; 412 if stale")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Replays the first answer for the same key and body"),
]
