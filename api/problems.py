"""RFC 9457 problem+json for every error the API returns.

Mapping: each domain error class has one status; request validation is 422 with an
``errors[]`` entry per field (``field`` is a dotted path such as ``body.role``); anything
unexpected is a 500 that names the request id and never carries a stack trace.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rayplane.common import errors
from rayplane.logs import get_logger

log = get_logger("rayplane.api")

PROBLEM = "application/problem+json"
TYPE_BASE = "https://rayplane.dev/problems/"

STATUS = {
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.InvalidInput: 422,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}
TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}
SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "rate-limited",
    500: "internal",
    503: "unavailable",
}


def problem_body(
    status: int, detail: str, *, instance: str | None = None, field_errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + SLUGS.get(status, "error"),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    if field_errors:
        body["errors"] = field_errors
    return body


def problem(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    field_errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, instance=instance, field_errors=field_errors),
        status_code=status,
        media_type=PROBLEM,
        headers=headers,
    )


def _instance(request: Request) -> str:
    return request.url.path


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    return domain_problem(exc, instance=_instance(request))


def domain_problem(exc: errors.DomainError, *, instance: str | None) -> JSONResponse:
    """The problem+json answer for a domain error, also for middleware outside the handlers."""
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="rayplane"'
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    field_errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    return problem(status, exc.detail, instance=instance, field_errors=field_errors, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    field_errors = [{"field": _loc(e.get("loc", ())), "message": str(e.get("msg", "invalid"))} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in field_errors[:5]) or "invalid request"
    return problem(422, detail, instance=_instance(request), field_errors=field_errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem(exc.status_code, detail, instance=_instance(request), headers=dict(exc.headers or {}))


async def _stale(request: Request, exc: Exception) -> JSONResponse:
    # Two writers read the same version; the loser's UPDATE matched no row.
    return problem(
        412, "the resource changed while this request ran; fetch it again and retry", instance=_instance(request)
    )


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    # A uniqueness race that the service's own check could not see (a concurrent insert).
    log.info("integrity_conflict", path=request.url.path, error=type(getattr(exc, "orig", exc)).__name__)
    return problem(
        409, "conflicts with a resource created concurrently; retry the request", instance=_instance(request)
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # Last resort: the database refused a value (NUL in text, out of range, malformed) that
    # no check at the edge (api/nul.py, the schemas) caught. The client sent it, so 422; the
    # log names the error class and SQLSTATE only (the engines hide parameters anyway).
    orig = getattr(exc, "orig", exc)
    log.warning(
        "database_refused_value",
        path=request.url.path,
        error=type(orig).__name__,
        sqlstate=getattr(orig, "sqlstate", None),
    )
    return problem(
        422,
        "the database refused a value in this request (for example a NUL character or a number out of range)",
        instance=_instance(request),
        field_errors=[{"field": "request", "message": "a value the database cannot store"}],
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return problem(
        500, f"an internal error occurred; quote request id {request_id} to support", instance=_instance(request)
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StaleDataError, _stale)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(Exception, _unexpected)
