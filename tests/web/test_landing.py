"""The Marketplace landing page in a real browser: from a fresh purchase token to an activated
tenant, the token out of the URL, a second visit straight to the console, invalid links."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack, wait_for
from tests.emulators.test_marketplace_support import Marketplace
from tests.web.conftest import Browser
from tests.web.support import TIMEOUT_MS, Person, pick_account


def _landing_url(stack: Stack, token: str) -> str:
    return f"{stack.url}/marketplace/landing?token={quote(token, safe='')}"


def test_the_whole_purchase_flow_activates_a_tenant(
    web_stack: Stack, emulator: EmulatorProcess, market: Marketplace, entra_admin: httpx.Client, browser: Browser
) -> None:
    buyer = Person("Ada Purchaser").register(entra_admin)
    sub_id, token = market.purchase(plan_id="starter", quantity=3, name="Contoso ML", purchaser=buyer.party)
    page = browser.page
    page.goto(_landing_url(web_stack, token))
    # The token went into the session; the address bar no longer has it.
    page.wait_for_url(f"{web_stack.url}/marketplace/landing", timeout=TIMEOUT_MS)
    assert "token" not in page.url
    details = page.get_by_role("definition")
    assert page.locator('[data-field="offer"]').inner_text() == "rayplane"
    assert "starter" in page.locator('[data-field="plan"]').inner_text()
    assert page.locator('[data-field="quantity"]').inner_text() == "3"
    assert page.locator('[data-field="tenant"]').inner_text() == buyer.tid
    assert details.count() >= 6

    page.get_by_role("link", name="Sign in to activate").click()
    pick_account(page, buyer)
    page.wait_for_url(f"{web_stack.url}/marketplace/landing", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Activate").click()
    page.wait_for_load_state()
    assert page.url == f"{web_stack.url}/console", page.content()
    assert page.get_by_role("heading", name="Clusters").is_visible()
    assert "owner" in page.locator(".who").inner_text()

    status = market.admin("GET", f"/subscriptions/{sub_id}")["subscription"]["saasSubscriptionStatus"]
    assert status == "Subscribed"
    tenant = buyer.api(emulator, web_stack, "GET", "/v1/tenant")
    assert tenant.status_code == 200, tenant.text
    assert tenant.json()["entra_tenant_id"] == buyer.tid

    # Azure's "Open SaaS account" later: a new token for the same subscription goes straight in.
    again = market.admin("POST", f"/subscriptions/{sub_id}/token")["token"]
    page.goto(_landing_url(web_stack, again))
    page.wait_for_url(f"{web_stack.url}/console", timeout=TIMEOUT_MS)


def test_after_activation_a_signed_out_visit_signs_in_and_lands_in_the_console(
    web_stack: Stack, emulator: EmulatorProcess, market: Marketplace, entra_admin: httpx.Client, browser: Browser
) -> None:
    buyer = Person("Bo Returning").register(entra_admin)
    sub_id, token = market.purchase(plan_id="starter", purchaser=buyer.party)
    done = buyer.api(emulator, web_stack, "POST", "/v1/marketplace/activate", json={"token": token})
    assert done.status_code == 200, done.text
    again = market.admin("POST", f"/subscriptions/{sub_id}/token")["token"]
    page = browser.page
    page.goto(_landing_url(web_stack, again))
    pick_account(page, buyer)
    page.wait_for_url(f"{web_stack.url}/console", timeout=TIMEOUT_MS)


def _invalid_link_page(page: Any) -> None:
    heading = page.get_by_role("heading", name="This purchase link is not valid")
    heading.wait_for(timeout=TIMEOUT_MS)
    text = page.locator("main").inner_text()
    assert "does not recognise this purchase link" in text
    assert "Traceback" not in page.content()


def test_forged_and_expired_tokens_get_a_clear_page(web_stack: Stack, market: Marketplace, browser: Browser) -> None:
    page = browser.page
    response = page.goto(_landing_url(web_stack, "Zm9yZ2VkLXRva2Vu"))
    assert response is not None
    _invalid_link_page(page)
    assert "token" not in page.url

    config = market.admin("GET", "/config")
    market.configure(purchase_token_ttl_seconds=1)
    try:
        _, token = market.purchase(plan_id="starter")
    finally:
        market.configure(purchase_token_ttl_seconds=config["purchase_token_ttl_seconds"])

    def expired() -> bool:
        page.goto(_landing_url(web_stack, token))
        return bool(page.get_by_role("heading", name="This purchase link is not valid").count() == 1)

    wait_for(expired, 20, "the token to expire")
    _invalid_link_page(page)


def test_a_visit_without_a_purchase_says_so(web_stack: Stack, browser: Browser) -> None:
    answer = browser.page.goto(f"{web_stack.url}/marketplace/landing")
    assert answer is not None
    assert answer.status == 400
    assert browser.page.get_by_role("heading", name="No purchase to show").is_visible()
    csp = answer.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


def test_dev_mode_simulates_a_purchase_end_to_end(web_stack: Stack, browser: Browser) -> None:
    page = browser.page
    page.goto(f"{web_stack.url}/marketplace/landing")
    page.get_by_role("button", name="Simulate a purchase").click()
    page.wait_for_url(f"{web_stack.url}/marketplace/landing", timeout=TIMEOUT_MS)
    email = page.locator('[data-field="purchaser"]').inner_text()
    assert email.startswith("buyer-")
    page.get_by_role("link", name="Sign in to activate").click()
    page.get_by_role("button", name=email, exact=False).click()
    page.get_by_role("button", name="Accept").click()
    page.wait_for_url(f"{web_stack.url}/marketplace/landing", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url(f"{web_stack.url}/console", timeout=TIMEOUT_MS)
    assert "owner" in page.locator(".who").inner_text()


def test_errors_on_the_pages_are_html_with_the_api_status(web_stack: Stack, browser: Browser) -> None:
    answer = browser.page.goto(f"{web_stack.url}/console/no-such-page")
    assert answer is not None
    assert answer.status == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert browser.page.get_by_role("heading", name="Not found").is_visible()
    api = httpx.get(f"{web_stack.url}/v1/no-such-thing", timeout=10)
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"
    assert "content-security-policy" not in api.headers
