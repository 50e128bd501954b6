"""Helpers of the browser tests (no tests here): people in the emulated Entra, signing in on its
pages, and API calls as a signed-in member."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulators.azure.server import EmulatorProcess
from tests.e2e.stack import Stack
from tests.emulators.test_marketplace_support import Marketplace
from tests.marketplace.support import PUBLISHER_APP, PUBLISHER_TENANT, SECRET
from tests.support.entra import mint

TIMEOUT_MS = 30_000
AUDIENCE = "api://rayplane-web-test"
WEB_APP = str(uuid.uuid5(uuid.NAMESPACE_URL, "rayplane-web-test-app"))


def stack_env(emulator: EmulatorProcess) -> dict[str, str]:
    """``rayplane dev``'s environment for the pages: the emulator as Entra ID (the console's
    app signs in with the secret the emulator accepts) and as the Marketplace, whose
    publisher it is made."""
    market = Marketplace(emulator, None)
    try:
        market.configure(publisher_tenant=PUBLISHER_TENANT, publisher_app_id=PUBLISHER_APP, webhook_max_attempts=1)
    finally:
        market.close()
    return {
        "RAYPLANE_TASK_QUEUE": f"web-{os.getpid()}",
        "RAYPLANE_ENTRA_AUTHORITY": emulator.origin,
        "RAYPLANE_ENTRA_AUDIENCE": AUDIENCE,
        "RAYPLANE_CA_BUNDLE": str(emulator.ca_path),
        "RAYPLANE_WEB_CLIENT_ID": WEB_APP,
        "RAYPLANE_WEB_CLIENT_SECRET": "emulator-secret",
        "RAYPLANE_MARKETPLACE_API_URL": emulator.origin,
        "RAYPLANE_MARKETPLACE_CLIENT_ID": PUBLISHER_APP,
        "RAYPLANE_MARKETPLACE_CLIENT_SECRET": SECRET,
        "RAYPLANE_MARKETPLACE_PUBLISHER_TENANT_ID": PUBLISHER_TENANT,
        "RAYPLANE_MARKETPLACE_RESOLVE_RATE_PER_MINUTE": "100000",
    }


@dataclass
class Person:
    """A user of the emulated Entra in organisation ``tid``, who can sign in on its pages."""

    name: str
    tid: str = field(default_factory=lambda: str(uuid.uuid4()))
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def email(self) -> str:
        return f"{self.name.lower().replace(' ', '.')}@{self.tid[:8]}.test"

    def register(self, entra_admin: httpx.Client) -> Person:
        body = {"name": self.name, "preferred_username": self.email, "email": self.email}
        answer = entra_admin.put(f"/_emulator/entra/users/{self.tid}/{self.oid}", json=body)
        assert answer.status_code == 200, answer.text
        return self

    @property
    def party(self) -> dict[str, str]:
        return {"emailId": self.email, "objectId": self.oid, "tenantId": self.tid}

    def api(self, emulator: EmulatorProcess, stack: Stack, method: str, path: str, **kw: Any) -> httpx.Response:
        """Call the API with this person's Entra access token (as a SPA or the CLI would)."""
        token = mint(emulator, self.tid, {"tid": self.tid, "oid": self.oid, "aud": AUDIENCE})
        return httpx.request(method, stack.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)


def pick_account(page: Any, person: Person, *, consent: bool = True) -> None:
    """On the emulated Entra's pages: choose ``person``, then Accept (or Cancel)."""
    page.get_by_role("button", name=f"{person.name} ({person.email})").click()
    page.get_by_role("heading", name="Permissions requested").wait_for(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Accept" if consent else "Cancel").click()


def sign_in(page: Any, stack: Stack, person: Person, next_path: str = "/console") -> None:
    """Sign ``person`` in through the console's sign-in, landing on ``next_path``."""
    page.goto(f"{stack.url}/auth/sign-in?next={next_path}")
    pick_account(page, person)
    page.wait_for_url(f"{stack.url}{next_path}", timeout=TIMEOUT_MS)


def session_cookie(context: Any) -> str | None:
    found = [c["value"] for c in context.cookies() if c["name"] == "rayplane_session"]
    return found[0] if found else None
