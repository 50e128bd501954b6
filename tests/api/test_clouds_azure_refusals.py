"""An Azure cloud through the API against real refusals of the emulator: created, validated by
the worker's check (run here in-process, as the validate task runs it), and shown with Azure's
code and Rayplane's advice; fixed on Azure's side and validated again, READY."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.nudges import Nudger
from api.state import AppState
from emulators.azure.keys import object_id_for_client
from emulators.azure.server import EmulatorProcess
from rayplane.clouds.validation import run_validation
from rayplane.db.engine import async_session_factory
from rayplane.identity.entra import EntraValidator
from rayplane.providers.azure.provider import AzureProvider
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from tests.conftest import HASHING_KEY
from tests.support.factories import Actor, Factory

APP_ID = str(uuid.uuid4())


@pytest.fixture
def provider(azure_settings: Settings, emulator: EmulatorProcess) -> AzureProvider:
    """The worker's Azure provider: Rayplane's app with the emulator as Entra and ARM."""
    return AzureProvider(
        azure_settings.model_copy(
            update={
                "azure_client_id": APP_ID,
                "azure_client_secret": SecretStr("emulator-secret"),
                "azure_arm_url": emulator.origin,
            }
        )
    )


@pytest.fixture
async def api(
    settings: Settings, engine: AsyncEngine, redis: Redis, entra: EntraValidator, nudger: Nudger
) -> AsyncIterator[tuple[httpx.AsyncClient, Actor]]:
    """The API with Rayplane's Azure app configured, committing for real (the check reads the
    cloud from its own sessions, as the worker does)."""
    azure = settings.model_copy(update={"azure_client_id": APP_ID, "public_url": "https://api.example.com"})
    sessions = async_session_factory(engine)
    state = AppState(
        settings=azure,
        engine=engine,
        sessions=sessions,
        redis=redis,
        entra=entra,
        hashing_key=HASHING_KEY,
        nudger=nudger,
    )
    async with sessions() as s:
        actor = await Factory(s, HASHING_KEY).actor()
    app = create_app(azure, state=state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, actor
    async with sessions() as s, s.begin():
        await s.execute(delete(Tenant).where(Tenant.id == actor.tenant.id))


async def _create(client: httpx.AsyncClient, actor: Actor, **azure: Any) -> dict[str, Any]:
    spec = {
        "subscription_id": str(uuid.uuid4()),
        "resource_group": "ml-prod",
        "region": "eastus2",
        "tenant_id": str(uuid.uuid4()),
        **azure,
    }
    r = await client.post(
        "/v1/clouds", headers=actor.headers, json={"name": "prod", "provider": "azure", "azure": spec}
    )
    assert r.status_code == 201, r.text
    cloud: dict[str, Any] = r.json()
    return cloud


async def _validated(
    client: httpx.AsyncClient, actor: Actor, sync_sessions: sessionmaker[Session], provider: AzureProvider, cid: str
) -> dict[str, Any]:
    run_validation(sync_sessions, {"azure": provider}, cid)
    cloud: dict[str, Any] = (await client.get(f"/v1/clouds/{cid}", headers=actor.headers)).json()
    return cloud


async def test_a_principal_without_a_role_sees_authorization_failed_and_which_role_to_assign(
    api: tuple[httpx.AsyncClient, Actor],
    sync_sessions: sessionmaker[Session],
    provider: AzureProvider,
    emulator: EmulatorProcess,
) -> None:
    client, actor = api
    cloud = await _create(client, actor)
    subscription = cloud["config"]["subscription_id"]
    current = emulator.request_json("GET", "/_emulator/arm/config")["enforce_roles_subscriptions"]
    emulator.request_json("PUT", "/_emulator/arm/config", {"enforce_roles_subscriptions": [*current, subscription]})

    checked = await _validated(client, actor, sync_sessions, provider, cloud["id"])
    group = f"/subscriptions/{subscription}/resourceGroups/ml-prod"
    assert checked["status"] == "ERROR"
    reason = checked["status_reason"]
    assert reason.startswith("AuthorizationFailed: ")
    assert f"--assignee {object_id_for_client(APP_ID)} --role Contributor --scope {group}" in reason

    emulator.assign_role(group, "Contributor", client_id=APP_ID)
    r = await client.post(f"/v1/clouds/{cloud['id']}:validate", headers=actor.headers)
    assert r.status_code == 202
    # Contributor reaches AKS but may not create the log shippers' role assignments: said now,
    # at registration, not by every cluster failing later.
    checked = await _validated(client, actor, sync_sessions, provider, cloud["id"])
    assert checked["status"] == "ERROR"
    assert checked["status_reason"].startswith("RoleAssignmentsNotPermitted: ")
    assert '"durable_logs": false' in checked["status_reason"]

    emulator.assign_role(group, "User Access Administrator", client_id=APP_ID)
    checked = await _validated(client, actor, sync_sessions, provider, cloud["id"])
    assert (checked["status"], checked["status_reason"]) == ("READY", None)


async def test_an_app_not_in_the_customers_tenant_shows_aadsts700016_and_the_consent_step(
    api: tuple[httpx.AsyncClient, Actor],
    sync_sessions: sessionmaker[Session],
    provider: AzureProvider,
    emulator: EmulatorProcess,
) -> None:
    client, actor = api
    cloud = await _create(client, actor)
    tenant = cloud["config"]["tenant_id"]
    emulator.register_application(tenant, str(uuid.uuid4()), secrets=[{"value": "theirs"}])  # not Rayplane's app
    checked = await _validated(client, actor, sync_sessions, provider, cloud["id"])
    assert checked["status"] == "ERROR"
    assert checked["status_reason"].startswith("AADSTS700016: ")
    assert "admin_consent_url" in checked["status_reason"]
    assert cloud["admin_consent_url"]

    # The admin consents: Rayplane's app now exists in the tenant, with a secret other than Rayplane's.
    emulator.register_application(tenant, APP_ID, secrets=[{"value": "rotated"}])
    checked = await _validated(client, actor, sync_sessions, provider, cloud["id"])
    assert checked["status_reason"].startswith("AADSTS7000215: ")
    assert "RAYPLANE_AZURE_CLIENT_SECRET" in checked["status_reason"]
    emulator.register_application(tenant, APP_ID, secrets=[{"value": "emulator-secret"}])
    assert (await _validated(client, actor, sync_sessions, provider, cloud["id"]))["status"] == "READY"
