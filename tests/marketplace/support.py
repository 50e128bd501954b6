"""Helpers of the Marketplace tests (no tests here).

* :class:`LiveApi` -- the real API under uvicorn on a free port, as its own process, so the
  emulator's webhook sender can call it over HTTP with its Entra-signed tokens.
* :class:`Buyer` -- a customer organisation (Entra ``tid``) and its purchasing user, with user
  tokens minted by the emulator's Entra ID.
* :func:`cleanup` -- remove what a test committed (tenants cascade to everything of theirs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from emulators.azure.server import EmulatorProcess
from rayplane.marketplace.models import MarketplaceSubscription, WebhookEvent
from rayplane.procs import stop_process_group
from rayplane.tenants.models import Tenant
from tests.conftest import AUDIENCE
from tests.e2e.stack import free_port, wait_for
from tests.support.entra import mint

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = uuid.UUID("6f0cf3f6-0c62-4a55-9a37-2f1d1b3e6a10")
PUBLISHER_TENANT = str(uuid.uuid5(NAMESPACE, "publisher-tenant"))
PUBLISHER_APP = str(uuid.uuid5(NAMESPACE, "publisher-app"))
SECRET = "emulator-secret"  # what the emulator's Entra accepts for any client


class LiveApi:
    """``uvicorn --factory api.app:app_from_env`` with ``env``; ``url`` once ``/healthz`` answers."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAYPLANE_")}, **env}
        self.env["RAYPLANE_API_PORT"] = str(self.port)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveApi:
        argv = [sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_env"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(self._up, 60, "the live API's /healthz", interval=0.1)
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"uvicorn exited:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, timeout=15)

    @property
    def webhook_url(self) -> str:
        return self.url + "/v1/marketplace/webhook"

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


@dataclass
class Buyer:
    """A customer's Entra tenant and the user who buys (and signs in to activate)."""

    emulator: EmulatorProcess
    tid: str = field(default_factory=lambda: str(uuid.uuid4()))
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))
    email: str = field(default_factory=lambda: f"buyer-{uuid.uuid4().hex[:6]}@contoso.test")

    @property
    def party(self) -> dict[str, str]:
        return {"emailId": self.email, "objectId": self.oid, "tenantId": self.tid}

    def token(self, **claims: Any) -> str:
        """A user access token for Rayplane's API, signed by the emulator's Entra ID."""
        base = {"tid": self.tid, "oid": self.oid, "aud": AUDIENCE, "iss": f"{self.emulator.origin}/{self.tid}/v2.0"}
        base.update(idtyp="user", preferred_username=self.email)
        return mint(self.emulator, self.tid, {**base, **claims})


def cleanup(
    sessions: sessionmaker[Session], *, tenants: list[str], subscriptions: list[str], tids: list[str] | None = None
) -> None:
    """Delete committed test data: tenants by id or Entra tid (cascading), and the
    subscriptions' rows and webhook events."""
    with sessions.begin() as session:
        if subscriptions:
            subs = [s.lower() for s in subscriptions]
            session.execute(delete(WebhookEvent).where(WebhookEvent.subscription_id.in_(subs)))
            session.execute(delete(MarketplaceSubscription).where(MarketplaceSubscription.id.in_(subs)))
        if tenants:
            session.execute(delete(Tenant).where(Tenant.id.in_(tenants)))
        if tids:
            session.execute(delete(Tenant).where(Tenant.entra_tenant_id.in_(tids)))


@dataclass
class Customer:
    """A buyer who purchased and activated through the live API."""

    buyer: Buyer
    subscription_id: str
    landing_token: str
    tenant_id: str
    user_token: str


def onboard(api: LiveApi, market: Any, buyer: Buyer, plan: str = "team") -> Customer:
    """Purchase on the emulator (test control), then resolve and activate through the live API."""
    body = {"planId": plan, "purchaser": buyer.party, "name": "Contoso ML"}
    bought = market.admin("POST", "/purchases", body, 201)
    sub_id, landing = bought["subscription"]["id"], bought["token"]
    resolved = api.request("POST", "/v1/marketplace/resolve", json={"token": landing})
    assert resolved.status_code == 200, resolved.text
    user = buyer.token()
    activated = api.request("POST", "/v1/marketplace/activate", user, json={"token": landing})
    assert activated.status_code == 200, activated.text
    return Customer(buyer, sub_id, landing, activated.json()["tenant"]["id"], user)


def delivered(market: Any, operation_id: str, copies: int = 1, timeout: float = 15.0) -> list[int | None]:
    """The HTTP status of the first attempt of each delivery of ``operation_id``, once every
    one of the ``copies`` was attempted. (The emulator's ticker may make an attempt in the
    background, so the test-control answer can show a delivery before its attempt.)"""

    def attempted() -> list[int | None] | None:
        found = market.deliveries(operationId=operation_id)
        if len(found) >= copies and all(d["attempts"] for d in found):
            return [d["attempts"][0]["status"] for d in found]
        return None

    statuses: list[int | None] = wait_for(attempted, timeout, f"{copies} attempted deliveries", interval=0.05)
    return statuses
