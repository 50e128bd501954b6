"""The cluster pages and the Ray dashboard in a real browser, against ``rayplane dev`` with local
Ray: a cluster created from the form comes up on its page without a reload, and its dashboard
loads through Rayplane's proxy; a job's log-tail websocket opens through the proxy with the Ray
token Rayplane adds (Ray refuses it without) and relays what Ray sends; the pages fit a phone.
Frame-by-frame relaying both ways is tested in process (tests/web/test_cluster_pages.py)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack
from tests.emulators.test_marketplace_support import Marketplace
from tests.support.entra import mint
from tests.web.conftest import Browser
from tests.web.support import AUDIENCE, TIMEOUT_MS, Person, sign_in

NAME = "web-form"


@pytest.fixture(scope="module")
def owner(web_stack: Stack, emulator: EmulatorProcess, market: Marketplace, entra_admin: httpx.Client) -> Person:
    person = Person("Fiona Former").register(entra_admin)
    _, token = market.purchase(plan_id="starter", purchaser=person.party)
    done = person.api(emulator, web_stack, "POST", "/v1/marketplace/activate", json={"token": token})
    assert done.status_code == 200, done.text
    return person


def _no_reloads(page: Any) -> list[str]:
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    return navigations


def test_create_from_the_form_watch_it_run_and_open_its_dashboard(
    web_stack: Stack, emulator: EmulatorProcess, owner: Person, browser: Browser
) -> None:
    page = browser.page
    sign_in(page, web_stack, owner)
    page.get_by_role("link", name="New cluster").click()
    page.get_by_role("heading", name="New cluster").wait_for(timeout=TIMEOUT_MS)
    page.get_by_label("Name", exact=True).fill(NAME)
    page.locator("#head-vm_size").select_option("Standard_D2s_v5")
    page.locator("#worker_groups-0-vm_size").select_option("Standard_D2s_v5")
    # The estimate follows the form (htmx posts it on every change), before anything is created.
    for most in ("1", "3"):
        page.get_by_label("Most nodes").fill(most)
        page.get_by_label("Most nodes").dispatch_event("change")
        page.locator("#estimate td", has_text=f"0\u2013{most}").wait_for(timeout=TIMEOUT_MS)
    assert "an hour" in page.locator("#estimate").inner_text()
    page.get_by_role("button", name="Create cluster").click()
    page.wait_for_url(re.compile(rf"{re.escape(web_stack.url)}/console/clusters/cls_\w+$"), timeout=TIMEOUT_MS)
    page.get_by_role("heading", name=f"Cluster {NAME}").wait_for(timeout=TIMEOUT_MS)
    cluster_id = page.url.rsplit("/", 1)[1]
    navigations = _no_reloads(page)
    # htmx polls the live fragment; the page itself is never loaded again.
    page.locator('#live [data-state="RUNNING"]').wait_for(timeout=240_000)
    assert navigations == []
    assert page.locator("ol.timeline li").count() >= 2  # created, and the way to RUNNING
    assert page.get_by_role("link", name="Stop").is_visible()
    assert "kubernetes" not in page.locator("main").inner_text().lower()

    link = page.get_by_role("link", name="Open the Ray dashboard")
    assert link.get_attribute("href") == f"/clusters/{cluster_id}/dashboard/"
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    link.click()
    page.wait_for_url(f"{web_stack.url}/clusters/{cluster_id}/dashboard/**", timeout=TIMEOUT_MS)
    expect(page).to_have_title(re.compile(r"Ray Dashboard$"), timeout=TIMEOUT_MS)
    # The React app rendered and read the cluster through the proxy (its API calls carry
    # the Ray token that Rayplane adds; without it they would be refused).
    page.get_by_text("Cluster Status", exact=False).first.wait_for(timeout=60_000)
    answer = page.request.get(f"{web_stack.url}/clusters/{cluster_id}/dashboard/api/version")
    assert answer.status == 200, answer.text()
    assert "ray_version" in answer.json()
    # Ray's dashboard answers its Grafana and Prometheus health checks with 500 when neither
    # runs (none does here): those two, and nothing else, may fail; the browser logs each.
    assert all(re.search(r"/api/(grafana|prometheus)_health$", f) for f in failed), failed
    logged = [e for e in browser.watch.errors if "status of 500" in e]
    assert len(logged) == len(failed), (logged, failed)
    for entry in logged:
        browser.watch.errors.remove(entry)


def test_a_job_log_tail_websocket_goes_through_the_proxy_with_the_ray_token(
    web_stack: Stack, emulator: EmulatorProcess, owner: Person
) -> None:
    clusters = owner.api(emulator, web_stack, "GET", "/v1/clusters").json()["items"]
    running = [c for c in clusters if c["name"] == NAME and c["state"] == "RUNNING"]
    if not running:
        pytest.skip(f"needs {NAME} RUNNING (the test before this one makes it)")
    cluster_id = running[0]["id"]
    token = mint(emulator, owner.tid, {"tid": owner.tid, "oid": owner.oid, "aud": AUDIENCE})
    auth = {"Authorization": f"Bearer {token}"}
    marker = f"through-the-proxy-{uuid.uuid4().hex[:8]}"
    submitted = httpx.post(
        f"{web_stack.url}/clusters/{cluster_id}/dashboard/api/jobs/",
        # Still running when the tail opens (a job that ends before Ray's log tail starts
        # gets a tail that closes at once, by design).
        json={"entrypoint": f"sleep 3 && echo {marker} && sleep 15"},
        headers=auth,
        timeout=60,
    )
    assert submitted.status_code == 200, submitted.text
    submission = submitted.json()["submission_id"]
    tail = f"/clusters/{cluster_id}/dashboard/api/jobs/{submission}/logs/tail"
    url = web_stack.url.replace("http://", "ws://") + tail
    proxied = _tail(url, auth, marker)
    # The same tail straight from the head, with the cluster's Ray token: what the proxy relays
    # must be what Ray sends (Ray may close a tail before any line; then both are empty).
    ray = owner.api(emulator, web_stack, "GET", f"/v1/clusters/{cluster_id}/ray-token").json()
    direct_url = ray["dashboard_url"].replace("http://", "ws://") + f"/api/jobs/{submission}/logs/tail"
    direct = _tail(direct_url, {"Authorization": f"Bearer {ray['token']}"}, marker)
    assert (marker in proxied) == (marker in direct), (proxied, direct)
    # Ray refuses the socket without its token, so the proxied one opened with the token that
    # Rayplane added; and without a Rayplane credential the proxy refuses before Ray is asked.
    with pytest.raises(InvalidStatus, match=r"401|403"), ws_connect(direct_url, open_timeout=30):
        pass
    with pytest.raises(InvalidStatus, match="403"), ws_connect(url, open_timeout=30):
        pass
    job = httpx.get(f"{web_stack.url}/clusters/{cluster_id}/dashboard/api/jobs/{submission}", headers=auth)
    assert json.loads(job.text)["submission_id"] == submission


def _tail(url: str, headers: dict[str, str], marker: str) -> str:
    """A job's log lines from a websocket tail, until ``marker`` or until the tail closes."""
    seen = ""
    with ws_connect(url, additional_headers=headers, open_timeout=30) as socket:
        for message in socket:
            seen += str(message)
            if marker in seen:
                break
    return seen


def test_the_cluster_pages_fit_a_phone(
    web_stack: Stack, emulator: EmulatorProcess, owner: Person, browser: Browser
) -> None:
    clusters = owner.api(emulator, web_stack, "GET", "/v1/clusters").json()["items"]
    made = [c["id"] for c in clusters if c["name"] == NAME]
    if not made:
        pytest.skip(f"needs {NAME} (the first test makes it)")
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, web_stack, owner)
    for path, heading in (
        ("/console/clusters/new", "New cluster"),
        (f"/console/clusters/{made[0]}", f"Cluster {NAME}"),
    ):
        page.goto(f"{web_stack.url}{path}")
        page.get_by_role("heading", name=heading).wait_for(timeout=TIMEOUT_MS)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
    # Every control of the cluster page is reachable from the keyboard, by its name.
    names = []
    for _ in range(12):
        page.keyboard.press("Tab")
        names.append(page.evaluate("document.activeElement.innerText || document.activeElement.name || ''"))
    assert "Stop" in names, names
