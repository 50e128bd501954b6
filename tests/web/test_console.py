"""The console in a real browser: roles as in the API, live cluster state without reloading,
CSRF, session fixation, open redirects, sign-out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack, wait_for
from tests.emulators.test_marketplace_support import Marketplace
from tests.web.conftest import Browser
from tests.web.support import TIMEOUT_MS, Person, pick_account, session_cookie, sign_in

CLUSTER = {"name": "web-live", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}


@dataclass
class Org:
    """An organisation that bought and activated Rayplane: its owner and a viewer."""

    owner: Person
    viewer: Person


@pytest.fixture(scope="module")
def org(web_stack: Stack, emulator: EmulatorProcess, market: Marketplace, entra_admin: httpx.Client) -> Org:
    owner = Person("Olga Owner").register(entra_admin)
    viewer = Person("Vic Viewer", tid=owner.tid).register(entra_admin)
    _, token = market.purchase(plan_id="starter", purchaser=owner.party)
    done = owner.api(emulator, web_stack, "POST", "/v1/marketplace/activate", json={"token": token})
    assert done.status_code == 200, done.text
    added = owner.api(emulator, web_stack, "POST", "/v1/members", json={"oid": viewer.oid, "role": "viewer"})
    assert added.status_code == 201, added.text
    return Org(owner, viewer)


@pytest.fixture(scope="module")
def cluster_id(web_stack: Stack, emulator: EmulatorProcess, org: Org) -> Iterator[str]:
    created = org.owner.api(emulator, web_stack, "POST", "/v1/clusters", json=CLUSTER)
    assert created.status_code == 202, created.text
    cid = str(created.json()["id"])
    yield cid
    org.owner.api(emulator, web_stack, "DELETE", f"/v1/clusters/{cid}")

    def gone() -> bool:
        answer = org.owner.api(emulator, web_stack, "GET", f"/v1/clusters/{cid}")
        return answer.status_code == 404 or answer.json()["state"] == "DELETED"

    wait_for(gone, 180, f"{cid} to be deleted")


def _state(page: Any) -> str:
    return str(page.locator('[data-cluster="web-live"] [data-state]').get_attribute("data-state"))


def test_owner_watches_a_cluster_come_up_without_reloading(
    web_stack: Stack, org: Org, cluster_id: str, browser: Browser
) -> None:
    page = browser.page
    navigations: list[str] = []
    sign_in(page, web_stack, org.owner)
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    first = _state(page)
    assert first in {"PENDING", "PROVISIONING", "RUNNING"}
    # htmx polls the rows fragment; the page itself is never loaded again.
    page.locator('[data-cluster="web-live"] [data-state="RUNNING"]').wait_for(timeout=240_000)
    assert navigations == []
    assert page.get_by_role("button", name="Stop web-live").is_visible()
    assert page.get_by_role("columnheader", name="Actions").is_visible()


def test_a_viewer_sees_no_write_controls_and_forged_posts_are_refused(
    web_stack: Stack, emulator: EmulatorProcess, org: Org, cluster_id: str, browser: Browser
) -> None:
    page = browser.page
    sign_in(page, web_stack, org.viewer)
    assert "viewer" in page.locator(".who").inner_text()
    page.locator('[data-cluster="web-live"]').wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_role("button", name="Stop web-live").count() == 0
    assert page.get_by_role("button", name="Start web-live").count() == 0
    assert page.get_by_role("columnheader", name="Actions").count() == 0

    stop = f"{web_stack.url}/console/clusters/{cluster_id}/stop"
    no_csrf = page.request.post(stop, form={"x": "1"}, max_redirects=0)
    assert no_csrf.status == 403
    csrf = page.locator('form[action="/auth/sign-out"] input[name="csrf"]').get_attribute("value")
    as_viewer = page.request.post(stop, form={"csrf": csrf}, max_redirects=0)
    assert as_viewer.status == 403  # the service's role check, as the API answers a viewer
    assert "Forbidden" in as_viewer.text()
    state = org.owner.api(emulator, web_stack, "GET", f"/v1/clusters/{cluster_id}").json()
    assert state["desired_state"] == "running"


def test_an_owner_form_without_its_csrf_token_is_refused(
    web_stack: Stack, emulator: EmulatorProcess, org: Org, cluster_id: str, browser: Browser
) -> None:
    page = browser.page
    sign_in(page, web_stack, org.owner)
    stop = f"{web_stack.url}/console/clusters/{cluster_id}/stop"
    for form in ({}, {"csrf": "guessed"}):
        answer = page.request.post(stop, form=form, max_redirects=0)
        assert answer.status == 403
        assert "security token" in answer.text()
    assert org.owner.api(emulator, web_stack, "GET", f"/v1/clusters/{cluster_id}").json()["desired_state"] == "running"


def test_a_session_id_planted_before_sign_in_is_never_signed_in(
    web_stack: Stack, org: Org, browser: Browser, new_browser: Any
) -> None:
    attacker = new_browser()
    # The attacker gets a real session id from the site (starting a sign-in sets one)...
    attacker.page.goto(f"{web_stack.url}/auth/sign-in?next=/console")
    planted = session_cookie(attacker.context)
    assert planted
    # ...and plants it in the victim's browser, who then signs in.
    victim = browser
    cookie = {"name": "rayplane_session", "value": planted, "url": web_stack.url}
    victim.context.add_cookies([cookie])
    sign_in(victim.page, web_stack, org.owner)
    after = session_cookie(victim.context)
    assert after
    assert after != planted
    # The planted id leads nowhere: the attacker is sent to sign in, not into the console.
    attacker.page.goto(f"{web_stack.url}/console")
    assert attacker.page.url.startswith(f"{web_stack.url}/auth/sign-in") or "/oauth2/v2.0/authorize" in (
        attacker.page.url
    )
    assert attacker.page.get_by_role("heading", name="Clusters").count() == 0


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"]
)
def test_sign_in_never_redirects_off_site(web_stack: Stack, org: Org, browser: Browser, target: str) -> None:
    page = browser.page
    page.goto(f"{web_stack.url}/auth/sign-in?next={quote(target, safe='')}")
    pick_account(page, org.owner)
    page.wait_for_url(f"{web_stack.url}/console", timeout=TIMEOUT_MS)


def test_sign_out_ends_the_session(web_stack: Stack, org: Org, browser: Browser) -> None:
    page = browser.page
    sign_in(page, web_stack, org.owner)
    before = session_cookie(browser.context)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You are signed out").wait_for(timeout=TIMEOUT_MS)
    assert session_cookie(browser.context) != before
    page.goto(f"{web_stack.url}/console")
    assert "/oauth2/v2.0/authorize" in page.url  # sent to sign in again
    browser.context.add_cookies([{"name": "rayplane_session", "value": before, "url": web_stack.url}])
    page.goto(f"{web_stack.url}/console")
    assert "/oauth2/v2.0/authorize" in page.url  # the old cookie is dead server-side


def test_a_signed_in_stranger_gets_a_clear_page(web_stack: Stack, entra_admin: httpx.Client, browser: Browser) -> None:
    stranger = Person("Sam Stranger").register(entra_admin)
    page = browser.page
    page.goto(f"{web_stack.url}/auth/sign-in?next=/console")
    pick_account(page, stranger)
    page.get_by_role("heading", name="No Rayplane tenant").wait_for(timeout=TIMEOUT_MS)
    assert "not a Rayplane tenant" in page.locator("main").inner_text()


def test_the_console_fits_a_phone_and_works_from_the_keyboard(
    web_stack: Stack, org: Org, cluster_id: str, browser: Browser
) -> None:
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, web_stack, org.owner)
    page.locator('[data-cluster="web-live"]').wait_for(timeout=TIMEOUT_MS)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    # Tab reaches the cluster's action with its accessible name (after the header's links, the
    # section nav and the page's own links: a bounded number of stops, in document order).
    names: list[str] = []
    for _ in range(30):
        page.keyboard.press("Tab")
        names.append(
            page.evaluate("document.activeElement.getAttribute('aria-label') || document.activeElement.innerText")
        )
        if names[-1] in ("Stop web-live", "Start web-live"):
            break
    assert names[-1] in ("Stop web-live", "Start web-live"), names
