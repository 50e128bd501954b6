"""Jobs and usage in a real browser, on one local-provider cluster: a job submitted from the
form whose log lines arrive while the page stays put, and the usage chart drawn by the
vendored uPlot from the cluster's observed usage. Every page is watched (console errors,
CSP violations) by the ``browser`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack, wait_for
from tests.emulators.test_marketplace_support import Marketplace
from tests.web.conftest import Browser
from tests.web.support import TIMEOUT_MS, Person, sign_in

CLUSTER = {"name": "web-jobs", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}
# Prints a line a second, so the log grows while the page follows it.
JOB = (
    "python -c \"import os, time; print('greeting:', os.environ['GREETING'], flush=True); "
    "[print(f'step {i}', flush=True) or time.sleep(1) for i in range(6)]\""
)


@dataclass
class Org:
    owner: Person
    viewer: Person


@pytest.fixture(scope="module")
def org(web_stack: Stack, emulator: EmulatorProcess, market: Marketplace, entra_admin: httpx.Client) -> Org:
    owner = Person("Jo Owner").register(entra_admin)
    viewer = Person("Val Viewer", tid=owner.tid).register(entra_admin)
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

    def running() -> bool:
        return bool(org.owner.api(emulator, web_stack, "GET", f"/v1/clusters/{cid}").json()["state"] == "RUNNING")

    wait_for(running, 240, f"{cid} to run")
    yield cid
    org.owner.api(emulator, web_stack, "DELETE", f"/v1/clusters/{cid}")


def test_a_job_from_the_form_shows_its_log_lines_without_reloading(
    web_stack: Stack, org: Org, cluster_id: str, browser: Browser
) -> None:
    page = browser.page
    sign_in(page, web_stack, org.owner, "/console/jobs")
    page.get_by_label("Cluster").select_option(cluster_id)
    page.get_by_label("Entrypoint").fill(JOB)
    page.get_by_label("Environment variables").fill("GREETING=hello from the console")
    page.get_by_role("button", name="Submit job").click()
    page.get_by_role("heading", name="Log").wait_for(timeout=TIMEOUT_MS)
    assert "/console/jobs/" + cluster_id + "/job_" in page.url
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    log = page.locator("#log")
    # The lines arrive one by one: an early one is there before the last one is.
    log.get_by_text("step 1", exact=False).wait_for(timeout=120_000)
    early = log.inner_text()
    assert "step 5" not in early
    log.get_by_text("step 5", exact=False).wait_for(timeout=60_000)
    text = log.inner_text()
    assert "greeting: hello from the console" in text
    assert [line for line in text.splitlines() if line.startswith("step")] == [f"step {i}" for i in range(6)]
    page.locator('#job-status[data-status="SUCCEEDED"]').wait_for(timeout=120_000)
    page.locator('#log-poller[data-done="true"]').wait_for(timeout=TIMEOUT_MS)
    assert navigations == []
    # The list shows it, and a viewer sees it without the form or a stop control.
    page.goto(f"{web_stack.url}/console/jobs")
    page.locator('[data-status="SUCCEEDED"]').first.wait_for(timeout=TIMEOUT_MS)


def test_a_viewer_sees_jobs_without_write_controls(
    web_stack: Stack, org: Org, cluster_id: str, browser: Browser
) -> None:
    page = browser.page
    sign_in(page, web_stack, org.viewer, "/console/jobs")
    assert page.get_by_role("button", name="Submit job").count() == 0
    assert page.get_by_label("Entrypoint").count() == 0
    csrf = page.locator('form[action="/auth/sign-out"] input[name="csrf"]').get_attribute("value")
    forged = page.request.post(
        f"{web_stack.url}/console/jobs", form={"csrf": csrf, "cluster": cluster_id, "entrypoint": "python -V"}
    )
    assert forged.status == 403


def test_the_usage_chart_renders_the_clusters_usage(
    web_stack: Stack, emulator: EmulatorProcess, org: Org, cluster_id: str, browser: Browser
) -> None:
    def used() -> float:
        report = org.owner.api(emulator, web_stack, "GET", "/v1/usage", params={"group_by": "day"}).json()
        return float(report["totals"]["vcpu_hours"])

    wait_for(lambda: used() >= 0.002, 120, "the running cluster's usage to be observed")
    page = browser.page
    page.set_viewport_size({"width": 1000, "height": 900})
    sign_in(page, web_stack, org.owner, "/console/usage")
    chart = page.locator("#usage-chart")
    chart.locator("canvas").wait_for(timeout=TIMEOUT_MS)
    assert chart.get_attribute("data-series") == "3"
    labels = page.locator("#usage-chart .u-legend .u-series .u-label").all_inner_texts()
    assert labels[1:] == ["vCPU hours", "GPU hours", "Node hours"]
    values: Any = page.evaluate("JSON.parse(document.getElementById('usage-data').textContent).series[0].values")
    assert sum(values) > 0
    box = chart.locator("canvas").bounding_box()
    assert box is not None
    assert box["width"] > 200
    assert box["height"] > 100
    assert page.get_by_role("heading", name="Budget").is_visible()
