"""The console's browser tests: the whole control plane (``rayplane dev``: API with its pages,
worker, beat, local Ray) with the session's Azure emulator as Entra ID and as the Marketplace,
driven by Playwright for Python in Debian's chromium (headless, ``executable_path``: no browser
download). One stack for the package; each test gets a fresh browser context (no cookies).

Every page a test opens is watched (:class:`Watch`): console errors, uncaught exceptions and
CSP violations (the ``securitypolicyviolation`` event, recorded by an init script that runs
outside the page's CSP) fail the test, and so does any ``csp_violation`` the server logged
from the browsers' reports.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack, local_stack
from tests.emulators.test_marketplace_support import Marketplace
from tests.web.support import stack_env

playwright_api = pytest.importorskip("playwright.sync_api")

WEB_REDIS_DB = 5  # 6-15 are the e2e and CLI modules'
CHROMIUM = shutil.which("chromium")

# Runs in every page before its own scripts, outside its CSP (Playwright injects it).
WATCH_SCRIPT = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
});
"""


@dataclass
class Watch:
    """What went wrong in the pages of one browser context."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda msg: self._console(msg))
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = str(msg.text)
        # A page answered with 4xx on purpose (a refused form, an invalid link) is logged by
        # chromium as a failed load; the tests check those statuses themselves.
        if text.startswith("Failed to load resource: the server responded with a status of 4"):
            return
        self.errors.append(text)


@dataclass
class Browser:
    """A fresh context (no cookies) with its watched page."""

    context: Any
    page: Any
    watch: Watch


@pytest.fixture(scope="session")
def web_stack(admin_db_url: str, redis_url: str, emulator: EmulatorProcess) -> Iterator[Stack]:
    with local_stack(admin_db_url, redis_url, WEB_REDIS_DB, stack_env(emulator)) as stack:
        yield stack
        assert "csp_violation" not in stack.log.read_text(), "a browser reported a CSP violation"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Per module: Playwright's sync API runs an event loop in this thread while it is open,
    which async tests (pytest-asyncio) running after it must not find."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: install chromium (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Browser]:
    """A new context: the emulator's self-signed certificate is accepted (its CA is not the
    browser's), every page is watched, and the test fails on any error the watch saw."""
    context = chromium.new_context(ignore_https_errors=True)
    context.add_init_script(WATCH_SCRIPT)
    watch = Watch()
    context.on("page", watch.attach)
    page = context.new_page()
    try:
        yield Browser(context, page, watch)
    finally:
        context.close()
    assert watch.errors == [], watch.errors


@pytest.fixture
def new_browser(chromium: Any) -> Iterator[Any]:
    """A factory of further independent browsers (a second user, an attacker), each watched."""
    made: list[Browser] = []

    def make() -> Browser:
        context = chromium.new_context(ignore_https_errors=True)
        context.add_init_script(WATCH_SCRIPT)
        watch = Watch()
        context.on("page", watch.attach)
        made.append(Browser(context, context.new_page(), watch))
        return made[-1]

    yield make
    for b in made:
        b.context.close()
    assert [e for b in made for e in b.watch.errors] == []


@pytest.fixture(scope="session")
def entra_admin(emulator: EmulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.origin, verify=emulator.ssl_context() or False, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def market(emulator: EmulatorProcess) -> Iterator[Marketplace]:
    client = Marketplace(emulator, None)
    yield client
    client.close()
