"""The pages in process (no browser): redirects, refusals and headers that need no sign-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.state import AppState
from web.app import create_app


@pytest.fixture
async def pages(state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state.settings, state=state)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_anonymous_console_goes_to_sign_in_with_a_local_next(pages: httpx.AsyncClient) -> None:
    answer = await pages.get("/console")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/auth/sign-in?next=/console"
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert (await pages.get("/")).headers["location"] == "/console"


async def test_sign_in_without_a_configured_app_is_a_clear_page(pages: httpx.AsyncClient) -> None:
    answer = await pages.get("/auth/sign-in?next=/console")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert "Sign-in is not configured" in answer.text
    assert "Traceback" not in answer.text


async def test_the_purchase_token_leaves_the_url_at_once(pages: httpx.AsyncClient) -> None:
    answer = await pages.get("/marketplace/landing", params={"token": "a+b/c=="})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/marketplace/landing"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("rayplane_session=")
    assert "a+b" not in cookie
    assert "httponly" in cookie.lower()


async def test_forms_without_the_session_token_are_refused(pages: httpx.AsyncClient) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    for path in ("/auth/sign-out", "/console/clusters/cls_x/stop", "/marketplace/landing/activate"):
        answer = await pages.post(path, content="csrf=forged", headers=form)
        assert answer.status_code == 403, path
        assert "security token" in answer.text
    # The API's JSON routes keep refusing form bodies.
    assert (await pages.post("/v1/clusters", content="a=1", headers=form)).status_code == 415


async def test_simulated_purchases_need_an_emulated_marketplace(pages: httpx.AsyncClient) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    answer = await pages.post("/dev/simulate-purchase", content="csrf=x", headers=form)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")


async def test_csp_reports_are_accepted(pages: httpx.AsyncClient) -> None:
    report = '{"csp-report": {"violated-directive": "script-src"}}'
    answer = await pages.post("/csp-report", content=report, headers={"content-type": "application/csp-report"})
    assert answer.status_code == 204


async def test_the_polled_rows_send_an_ended_session_back_to_the_console(pages: httpx.AsyncClient) -> None:
    answer = await pages.get("/console/clusters/rows")
    assert answer.status_code == 200
    assert answer.headers["hx-redirect"] == "/console"
    assert answer.text == ""
