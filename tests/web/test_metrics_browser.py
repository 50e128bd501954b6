"""A cluster's metrics page and the services list in a real browser, against ``rayplane dev``
with local Ray: a running cluster's charts are drawn from figures the stack's scraper stored,
then refreshed by polling without a reload; the pages fit a phone. No console error and no
CSP violation (the Watch)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack
from tests.emulators.test_marketplace_support import Marketplace
from tests.web.conftest import Browser
from tests.web.support import TIMEOUT_MS, Person, sign_in

NAME = "web-metrics"
UP_SECONDS = 240


@pytest.fixture(scope="module")
def owner(web_stack: Stack, emulator: EmulatorProcess, market: Marketplace, entra_admin: httpx.Client) -> Person:
    person = Person("Mira Metrics").register(entra_admin)
    _, token = market.purchase(plan_id="starter", purchaser=person.party)
    done = person.api(emulator, web_stack, "POST", "/v1/marketplace/activate", json={"token": token})
    assert done.status_code == 200, done.text
    return person


@pytest.fixture(scope="module")
def running(web_stack: Stack, emulator: EmulatorProcess, owner: Person) -> Iterator[str]:
    """A head-only local cluster, RUNNING (polled through the API with a deadline)."""
    spec = {"name": NAME, "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}
    made = owner.api(emulator, web_stack, "POST", "/v1/clusters", json=spec)
    assert made.status_code == 202, made.text
    cluster_id = made.json()["id"]
    deadline = time.monotonic() + UP_SECONDS
    state = ""
    while state != "RUNNING":
        assert time.monotonic() < deadline, f"{NAME} is {state} after {UP_SECONDS} s"
        state = owner.api(emulator, web_stack, "GET", f"/v1/clusters/{cluster_id}").json()["state"]
        assert state not in ("FAILED", "DELETED"), state
        time.sleep(1)
    yield cluster_id
    owner.api(emulator, web_stack, "DELETE", f"/v1/clusters/{cluster_id}")


def test_a_running_clusters_charts_fill_in_without_a_reload(
    web_stack: Stack, owner: Person, running: str, browser: Browser
) -> None:
    page = browser.page
    sign_in(page, web_stack, owner, f"/console/clusters/{running}")
    page.get_by_role("link", name="Metrics", exact=False).click()
    page.get_by_role("heading", name=f"Metrics of cluster {NAME}").wait_for(timeout=TIMEOUT_MS)
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    nodes = page.locator('[data-chart="nodes"]')
    nodes.locator("canvas").wait_for(timeout=TIMEOUT_MS)
    # The first scrape may come after the page loaded: the poll (every 15 s) brings it in.
    page.wait_for_function(
        "() => Number(document.querySelector('[data-chart=\"nodes\"]').getAttribute('data-points')) > 0",
        timeout=120_000,
    )
    assert navigations == []
    assert page.locator("#metrics-empty").is_hidden()
    labels = nodes.locator(".u-legend .u-series .u-label").all_inner_texts()
    assert "Ready" in labels
    assert "Wanted" in labels
    assert page.locator('[data-chart="gpu"]').count() == 0  # no GPUs on this size
    page.get_by_role("link", name="30 days").click()
    page.wait_for_url(f"{web_stack.url}/console/clusters/{running}/metrics?range=30d", timeout=TIMEOUT_MS)
    page.locator('[data-chart="cpu"] canvas').wait_for(timeout=TIMEOUT_MS)
    assert page.locator('nav.ranges a[aria-current="true"]').inner_text() == "30 days"


def test_the_services_list_and_the_metrics_fit_a_phone(
    web_stack: Stack, owner: Person, running: str, browser: Browser
) -> None:
    page = browser.page
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, web_stack, owner)
    page.get_by_role("link", name="Services", exact=True).click()
    page.get_by_role("heading", name="Services").wait_for(timeout=TIMEOUT_MS)
    assert "No services yet." in page.locator("#service-rows").inner_text()
    assert "rayplane services deploy -f service.yaml" in page.locator("main").inner_text()
    for path in ("/console/services", f"/console/clusters/{running}/metrics"):
        page.goto(f"{web_stack.url}{path}")
        page.locator("h1").wait_for(timeout=TIMEOUT_MS)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
    assert "kubernetes" not in page.locator("main").inner_text().lower()
