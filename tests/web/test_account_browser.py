"""The account page in a real browser: a new API key shown once (gone after a reload, its
prefix listed), and a viewer without write controls. Pages are watched for console errors
and CSP violations by the ``browser`` fixture."""

from __future__ import annotations

import httpx
import pytest

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack
from tests.emulators.test_marketplace_support import Marketplace
from tests.web.conftest import Browser
from tests.web.support import TIMEOUT_MS, Person, sign_in


@pytest.fixture(scope="module")
def people(
    web_stack: Stack, emulator: EmulatorProcess, market: Marketplace, entra_admin: httpx.Client
) -> tuple[Person, Person]:
    owner = Person("Kai Owner").register(entra_admin)
    viewer = Person("Vera Viewer", tid=owner.tid).register(entra_admin)
    _, token = market.purchase(plan_id="starter", purchaser=owner.party)
    done = owner.api(emulator, web_stack, "POST", "/v1/marketplace/activate", json={"token": token})
    assert done.status_code == 200, done.text
    added = owner.api(emulator, web_stack, "POST", "/v1/members", json={"oid": viewer.oid, "role": "viewer"})
    assert added.status_code == 201, added.text
    return owner, viewer


def test_a_new_api_key_is_shown_once(
    web_stack: Stack, emulator: EmulatorProcess, people: tuple[Person, Person], browser: Browser
) -> None:
    owner, _ = people
    page = browser.page
    sign_in(page, web_stack, owner, "/console/account")
    page.get_by_label("Name", exact=True).fill("notebook")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_label("The whole key")
    shown.wait_for(timeout=TIMEOUT_MS)
    key = shown.input_value()
    assert key.startswith("rpk_")
    assert "shown this once" in page.locator("#new-key").inner_text()
    # The key works against the API...
    me = httpx.get(f"{web_stack.url}/v1/api-keys", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert me.status_code == 200, me.text
    # ...and is gone after a reload; the list keeps only its prefix.
    page.reload()
    page.get_by_role("heading", name="API keys").wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_label("The whole key").count() == 0
    assert key not in page.content()
    prefix = key.split("_")[1]
    row = page.locator("tr", has_text="notebook")
    assert row.locator(".key-prefix").inner_text() == f"rpk_{prefix}_…"
    # Revoking it (with its confirmation) stops it working.
    row.get_by_text("Revoke…").click()
    row.get_by_role("button", name="Yes, revoke notebook").click()
    page.get_by_role("heading", name="API keys").wait_for(timeout=TIMEOUT_MS)
    assert page.locator("tr", has_text="notebook").count() == 0
    gone = httpx.get(f"{web_stack.url}/v1/api-keys", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert gone.status_code == 401


def test_a_viewer_sees_members_keys_and_clouds_without_write_controls(
    web_stack: Stack, people: tuple[Person, Person], browser: Browser
) -> None:
    _, viewer = people
    page = browser.page
    sign_in(page, web_stack, viewer, "/console/account")
    members = page.locator("#members")
    members.get_by_text("viewer").first.wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_role("button", name="Create key").count() == 0
    assert page.get_by_role("button", name="Add member").count() == 0
    assert page.locator("#members select").count() == 0
    assert page.get_by_role("heading", name="Cloud accounts").is_visible()
    csrf = page.locator('form[action="/auth/sign-out"] input[name="csrf"]').get_attribute("value")
    forged = page.request.post(f"{web_stack.url}/console/account/api-keys", form={"csrf": csrf, "name": "x"})
    assert forged.status == 403


def test_the_new_pages_fit_a_phone(web_stack: Stack, people: tuple[Person, Person], browser: Browser) -> None:
    owner, _ = people
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, web_stack, owner, "/console/account")
    for path, heading in (
        ("/console/account", "Account"),
        ("/console/jobs", "Jobs"),
        ("/console/usage", "Usage and billing"),
    ):
        page.goto(f"{web_stack.url}{path}")
        page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=TIMEOUT_MS)
        if path == "/console/usage":
            page.locator("#usage-chart canvas").wait_for(timeout=TIMEOUT_MS)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, path
