"""Azure cloud accounts through the API: validation that creates nothing, VALIDATING on create
with the access check nudged after commit, the admin-consent URL, and re-validation."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from api.app import create_app
from api.state import AppState
from rayplane.common.principal import Role
from tests.support.factories import Actor, Factory

APP_ID = str(uuid.uuid4())
CUSTOMER_TID = str(uuid.uuid4())


SUB = str(uuid.uuid4())


def account(sub: str = SUB, kind: str = "Microsoft.Storage/storageAccounts", name: str = "contosologs") -> str:
    return f"/subscriptions/{sub}/resourceGroups/shared/providers/{kind}/{name}"


def body(**azure: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "subscription_id": str(uuid.uuid4()),
        "resource_group": "ml-prod",
        "region": "eastus2",
        "tenant_id": CUSTOMER_TID,
    }
    spec.update(azure)
    return {"name": "prod", "provider": "azure", "azure": spec}


@pytest.fixture
async def azure_client(state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    settings = state.settings.model_copy(update={"azure_client_id": APP_ID, "public_url": "https://api.example.com"})
    azure_state = copy.copy(state)
    azure_state.settings = settings
    app = create_app(settings, state=azure_state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


async def _names(client: httpx.AsyncClient, actor: Actor) -> list[str]:
    return [c["name"] for c in (await client.get("/v1/clouds", headers=actor.headers)).json()["items"]]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "prod", "provider": "azure"}, "body.azure"),
        (body(subscription_id="not-a-guid"), "body.azure.subscription_id"),
        (body(tenant_id="contoso.onmicrosoft.com"), "body.azure.tenant_id"),
        (body(region="East US"), "body.azure.region"),
        (body(auth_mode="password"), "body.azure.auth_mode"),
        (body(aks_mode="serverless"), "body.azure.aks_mode"),
        (body(resource_group="bad/name"), "body.azure.resource_group"),
        ({**body(), "capacity": {"cpus": 4, "memory_gib": 8}}, "body.capacity"),
        ({"name": "laptop2", "provider": "local", "azure": body()["azure"]}, "body.azure"),
        ({**body(), "azure": {**body()["azure"], "client_secret": "x"}}, "body.azure.client_secret"),
        (body(durable_logs="no"), "body.azure.durable_logs"),
        (body(subscription_id=SUB, log_storage_account_id="contosologs"), "body.azure.log_storage_account_id"),
        (
            body(subscription_id=SUB, log_storage_account_id=account(kind="Microsoft.Compute/virtualMachines")),
            "body.azure.log_storage_account_id",
        ),
        (
            body(subscription_id=SUB, log_storage_account_id=account(name="Contoso_Logs")),
            "body.azure.log_storage_account_id",
        ),
        # Another subscription's account: the cloud's credential and role assignments are scoped to its own.
        (body(log_storage_account_id=account()), "body.azure.log_storage_account_id"),
        (
            body(subscription_id=SUB, durable_logs=False, log_storage_account_id=account()),
            "body.azure.log_storage_account_id",
        ),
    ],
)
async def test_bad_azure_input_is_a_problem_naming_the_field_and_creates_nothing(
    azure_client: httpx.AsyncClient, owner: Actor, payload: dict[str, Any], field: str
) -> None:
    before = await _names(azure_client, owner)
    r = await azure_client.post("/v1/clouds", headers=owner.headers, json=payload)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()
    assert await _names(azure_client, owner) == before


async def test_without_an_azure_app_configured_azure_clouds_are_refused(
    client: httpx.AsyncClient, owner: Actor
) -> None:
    r = await client.post("/v1/clouds", headers=owner.headers, json=body())
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.provider"
    assert "RAYPLANE_AZURE_CLIENT_ID" in r.json()["errors"][0]["message"]


async def test_create_starts_validating_nudges_the_check_and_offers_the_consent_url(
    azure_client: httpx.AsyncClient, owner: Actor, state: AppState
) -> None:
    sent = state.nudger.sent
    r = await azure_client.post("/v1/clouds", headers=owner.headers, json=body(container_insights=True))
    assert r.status_code == 201, r.text
    cloud = r.json()
    assert (cloud["provider"], cloud["status"]) == ("azure", "VALIDATING")
    assert cloud["config"]["auth_mode"] == "app_consent"
    assert cloud["config"]["aks_mode"] == "managed"
    assert cloud["config"]["container_insights"] is True
    assert state.nudger.sent == sent + 1  # the access check, sent after the commit
    url = urlsplit(cloud["admin_consent_url"])
    assert url.path == f"/{CUSTOMER_TID}/v2.0/adminconsent"
    query = parse_qs(url.query)
    assert query["client_id"] == [APP_ID]
    assert query["scope"] == ["https://management.azure.com/.default"]
    assert query["state"] == [cloud["id"]]
    assert query["redirect_uri"] == ["https://api.example.com/v1/clouds/consent"]
    got = (await azure_client.get(f"/v1/clouds/{cloud['id']}", headers=owner.headers)).json()
    assert got["admin_consent_url"] == cloud["admin_consent_url"]


async def test_a_tenant_named_log_account_is_kept_in_the_config(azure_client: httpx.AsyncClient, owner: Actor) -> None:
    r = await azure_client.post(
        "/v1/clouds", headers=owner.headers, json=body(subscription_id=SUB, log_storage_account_id=account())
    )
    assert r.status_code == 201, r.text
    config = r.json()["config"]
    assert (config["log_storage_account_id"], config["durable_logs"]) == (account(), True)


async def test_secret_free_modes_have_no_consent_url(azure_client: httpx.AsyncClient, owner: Actor) -> None:
    for i, mode in enumerate(("federated", "lighthouse")):
        payload = {**body(auth_mode=mode), "name": f"c{i}-{mode}"}
        r = await azure_client.post("/v1/clouds", headers=owner.headers, json=payload)
        assert r.status_code == 201, r.text
        assert r.json()["admin_consent_url"] is None


async def test_validate_again_needs_admin_and_an_azure_cloud(
    azure_client: httpx.AsyncClient, owner: Actor, factory: Factory, state: AppState
) -> None:
    cloud = (await azure_client.post("/v1/clouds", headers=owner.headers, json=body())).json()
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    r = await azure_client.post(f"/v1/clouds/{cloud['id']}:validate", headers=viewer.headers)
    assert r.status_code == 403
    sent = state.nudger.sent
    r = await azure_client.post(f"/v1/clouds/{cloud['id']}:validate", headers=owner.headers)
    assert r.status_code == 202
    assert r.json()["status"] == "VALIDATING"
    assert state.nudger.sent == sent + 1
    local = next(
        c for c in (await azure_client.get("/v1/clouds", headers=owner.headers)).json()["items"] if c["name"] == "local"
    )
    r = await azure_client.post(f"/v1/clouds/{local['id']}:validate", headers=owner.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "path.cloud_id"
