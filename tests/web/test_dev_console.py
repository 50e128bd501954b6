"""``rayplane dev`` with the console's emulator, as ``make run`` starts it: sign in as the dev
tenant's "Dev Owner", then "Simulate a purchase" walks a whole purchase, all in chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, local_stack
from tests.web.conftest import Browser
from tests.web.support import TIMEOUT_MS

DEV_REDIS_DB = 4  # 5: the other browser tests' stack


@pytest.fixture(scope="module")
def dev_stack(admin_db_url: str, redis_url: str) -> Iterator[Stack]:
    env = {"RAYPLANE_TASK_QUEUE": "web-dev-console", "RAYPLANE_DEV_CONSOLE_EMULATOR": "1"}
    with local_stack(admin_db_url, redis_url, DEV_REDIS_DB, env) as stack:
        yield stack
        assert "csp_violation" not in stack.log.read_text(), "a browser reported a CSP violation"


def test_make_run_console_signs_in_the_dev_owner_and_simulates_a_purchase(dev_stack: Stack, browser: Browser) -> None:
    assert "sign in as 'Dev Owner'" in dev_stack.log.read_text()
    page = browser.page
    page.goto(f"{dev_stack.url}/console")
    page.get_by_role("button", name="Dev Owner (dev.owner@rayplane.invalid)").click()
    page.get_by_role("button", name="Accept").click()
    page.wait_for_url(f"{dev_stack.url}/console", timeout=TIMEOUT_MS)
    assert "Dev Owner · owner" in page.locator(".who").inner_text()

    page.get_by_role("button", name="Simulate a purchase").click()
    page.wait_for_url(f"{dev_stack.url}/marketplace/landing", timeout=TIMEOUT_MS)
    email = page.locator('[data-field="purchaser"]').inner_text()
    page.get_by_role("link", name="Sign in to activate").click()
    page.get_by_role("button", name=email, exact=False).click()
    page.get_by_role("button", name="Accept").click()
    page.get_by_role("button", name="Activate").click()
    page.wait_for_url(f"{dev_stack.url}/console", timeout=TIMEOUT_MS)
    assert "Demo Buyer" in page.locator(".who").inner_text()
