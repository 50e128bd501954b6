"""Screenshots of the pages for the docs, made with the browser the tests drive.

Run ``.venv/bin/python -m tests.web.screenshots`` (about a minute): it starts the Azure emulator
and ``rayplane dev`` as the browser tests do, buys Rayplane on the emulated Marketplace, and
saves ``docs/img/landing.png`` (the landing page before activation), ``docs/img/console.png``
(the console with a cluster that came up while it was open), ``docs/img/cluster.png`` (that
cluster's page: state, worker groups, events), ``docs/img/metrics.png`` (its charts once a
few minutes of figures are stored) and ``docs/img/usage.png`` (the usage page, with that
cluster's usage in the chart and a budget set), at 1000 px wide.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import sync_playwright

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack, local_stack, wait_for
from tests.emulators.test_marketplace_support import Marketplace
from tests.support.services import servers
from tests.web.support import TIMEOUT_MS, Person, pick_account, stack_env

OUT = Path(__file__).resolve().parents[2] / "docs" / "img"
REDIS_DB = 3  # the browser tests use 4 and 5
CLUSTER = {
    "name": "training",
    "head": {"vm_size": "Standard_D2s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D2s_v5", "min_nodes": 0, "max_nodes": 2}],
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    assert chromium, "install chromium (make chromium)"
    with (
        tempfile.TemporaryDirectory(prefix="rp-shots-") as tmp,
        servers() as (admin_db, redis),
        EmulatorProcess(Path(tmp) / "azure") as emulator,
        local_stack(admin_db, redis, REDIS_DB, stack_env(emulator)) as stack,
    ):
        shoot(emulator, stack.url, chromium, stack)


def shoot(emulator: EmulatorProcess, url: str, chromium: str, stack: Stack) -> None:
    admin = httpx.Client(base_url=emulator.origin, verify=emulator.ssl_context() or False, timeout=30)
    buyer = Person("Dana Lead", tid="72f988bf-86f1-41af-91ab-2d7cd011db47").register(admin)
    market = Marketplace(emulator, None)
    _, token = market.purchase(plan_id="team", quantity=5, name="Contoso ML platform", purchaser=buyer.party)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1000, "height": 640})
        page = context.new_page()
        page.goto(f"{url}/marketplace/landing?token={quote(token, safe='')}")
        page.wait_for_url(f"{url}/marketplace/landing", timeout=TIMEOUT_MS)
        page.screenshot(path=str(OUT / "landing.png"), full_page=True)
        page.get_by_role("link", name="Sign in to activate").click()
        pick_account(page, buyer)
        page.get_by_role("button", name="Activate").click()
        page.wait_for_url(f"{url}/console", timeout=TIMEOUT_MS)
        created = buyer.api(emulator, stack, "POST", "/v1/clusters", json=CLUSTER)
        assert created.status_code == 202, created.text
        page.locator('[data-cluster="training"] [data-state="RUNNING"]').wait_for(timeout=240_000)
        page.screenshot(path=str(OUT / "console.png"), full_page=True)
        cid = created.json()["id"]
        page.get_by_role("link", name="training").click()
        page.locator('#live [data-state="RUNNING"]').wait_for(timeout=TIMEOUT_MS)
        page.screenshot(path=str(OUT / "cluster.png"), full_page=True)
        shoot_usage(emulator, url, stack, buyer, page)
        shoot_metrics(url, cid, page)
        buyer.api(emulator, stack, "DELETE", f"/v1/clusters/{cid}")
        browser.close()

    def deleted() -> bool:
        answer = buyer.api(emulator, stack, "GET", f"/v1/clusters/{cid}")
        return answer.status_code == 404 or answer.json()["state"] == "DELETED"

    wait_for(deleted, 180, "the screenshot's cluster to be deleted")
    market.close()
    admin.close()
    print(f"wrote {', '.join(str(OUT / f'{n}.png') for n in ('landing', 'console', 'cluster', 'metrics', 'usage'))}")


def shoot_usage(emulator: EmulatorProcess, url: str, stack: Stack, buyer: Person, page: Any) -> None:
    """The usage page once the running cluster's usage is observed, with a budget set."""
    budget = buyer.api(emulator, stack, "PUT", "/v1/budget", json={"amount_usd": 500, "alert_thresholds": [50, 80]})
    assert budget.status_code == 200, budget.text

    def used() -> bool:
        report = buyer.api(emulator, stack, "GET", "/v1/usage", params={"group_by": "day"}).json()
        return float(report["totals"]["vcpu_hours"]) >= 0.005

    wait_for(used, 120, "the cluster's usage to be observed")
    page.goto(f"{url}/console/usage")
    page.locator("#usage-chart canvas").wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(OUT / "usage.png"), full_page=True)


def shoot_metrics(url: str, cid: str, page: Any) -> None:
    """The cluster's charts once the scraper has stored a few minutes of figures (the page
    polls them in; this waits on the CPU chart's count of values, with a deadline)."""
    page.goto(f"{url}/console/clusters/{cid}/metrics")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-chart=\"cpu\"]')?.getAttribute('data-points')) >= 4",
        timeout=300_000,
    )
    page.screenshot(path=str(OUT / "metrics.png"), full_page=True)


if __name__ == "__main__":
    main()
