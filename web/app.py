"""The application with its pages: the API's app (``api.app.create_app``) plus the console.

``uvicorn --factory web.app:app_from_env`` serves both on one port, as ``rayplane dev`` and the
operator's ``rayplane api`` do: the pages call the same core services through the same unit of
work (``api.deps``), so there is no second code path. What is added here:

- ``/static`` (the vendored htmx and the stylesheet), the pages' routers, ``/csp-report``;
- :class:`web.security.PageSecurityHeaders` (CSP, framing) for the pages' paths only;
- HTML error pages for the pages' paths (``web.render.install_error_pages``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from api.app import create_app as create_api_app
from api.state import AppState
from rayplane.settings import Settings, get_settings
from web import (
    account,
    cluster_detail,
    cluster_form,
    console,
    dashboard,
    devtools,
    jobs,
    landing,
    metrics_page,
    services,
    signin,
    usage,
)
from web.render import install_error_pages
from web.security import PageSecurityHeaders, log

STATIC = Path(__file__).parent / "static"
MAX_REPORT_BYTES = 16 * 1024


async def csp_report(request: Request) -> Response:
    """Browsers post CSP violations here (``report-uri``); they are logged, never stored."""
    body = (await request.body())[:MAX_REPORT_BYTES]
    log.warning("csp_violation", report=body.decode("utf-8", "replace"))
    return Response(status_code=204)


def install(app: FastAPI) -> FastAPI:
    """Add the pages to an API app built by ``api.app.create_app``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (
        signin.router,
        landing.router,
        console.router,
        jobs.router,
        usage.router,
        account.router,
        devtools.router,
        cluster_form.router,
        cluster_detail.router,
        metrics_page.router,
        services.router,
        dashboard.router,
    ):
        app.include_router(router)
    app.add_api_route("/csp-report", csp_report, methods=["POST"], include_in_schema=False)
    install_error_pages(app)
    app.add_middleware(PageSecurityHeaders)
    return app


def create_app(settings: Settings | None = None, *, state: AppState | None = None) -> FastAPI:
    return install(create_api_app(settings, state=state))


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory web.app:app_from_env``."""
    from rayplane.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
