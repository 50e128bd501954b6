"""Templates and the HTML error pages.

Pages are Jinja2 templates under ``web/templates`` with autoescaping on. Every page gets the
session's CSRF token and the signed-in user. Errors under the pages' paths are rendered as an
HTML page with the same status and detail the API's problem+json would carry
(``api.problems``); elsewhere the API's handlers answer as before. A page never shows a
stack trace: an unexpected error is logged and shown with the request id only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api import problems
from rayplane.common import errors
from rayplane.logs import get_logger
from web.security import is_web_path

log = get_logger("rayplane.web")
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """Render template ``name`` with ``context`` (plus ``request``)."""
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, status: int, detail: str, *, title: str | None = None, **context: Any) -> Response:
    heading = title or problems.TITLES.get(status, "Error")
    return page(request, "error.html", status_code=status, title=heading, detail=detail, status=status, **context)


def _status(exc: errors.DomainError) -> int:
    return next((code for cls, code in problems.STATUS.items() if isinstance(exc, cls)), 400)


def install_error_pages(app: FastAPI) -> None:
    """HTML for errors under the pages' paths; the API's problem+json everywhere else."""
    api_handlers = dict(app.exception_handlers)

    def either(kind: type[Exception], html: Any) -> None:
        fallback = api_handlers[kind]

        async def handler(request: Request, exc: Exception) -> Response:
            if is_web_path(request.url.path):
                return await html(request, exc)  # type: ignore[no-any-return]
            return await fallback(request, exc)  # type: ignore[no-any-return]

        app.add_exception_handler(kind, handler)

    async def domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.DomainError)
        return error_page(request, _status(exc), exc.detail)

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else problems.TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404:
            detail = f"There is no page at {request.url.path}."
        return error_page(request, exc.status_code, detail)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:5])
        return error_page(request, 422, f"The request was not understood ({fields}).")

    async def unexpected(request: Request, exc: Exception) -> Response:
        request_id = getattr(request.state, "request_id", None)
        log.error("unhandled_error", path=request.url.path, exc_info=exc)
        return error_page(request, 500, f"Something went wrong on our side. Quote request id {request_id} to support.")

    either(errors.DomainError, domain)
    either(StarletteHTTPException, http)
    either(RequestValidationError, invalid)
    either(Exception, unexpected)
