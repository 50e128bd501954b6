"""The account page's cloud accounts, in process: an Azure cloud awaiting its admin's consent
is shown with its validation state and the consent link, as ``GET /v1/clouds`` gives them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from html import unescape

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import AppState
from rayplane.clouds.models import Cloud
from rayplane.clouds.repository import CloudRepository
from rayplane.common.principal import Role
from rayplane.db.ids import new_id
from rayplane.settings import Settings
from tests.conftest import suite_settings
from tests.web.pagekit import Org, api, organisation

APP = str(uuid.uuid4())


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    """Rayplane's Azure app configured, so app-consent clouds get their consent link."""
    return suite_settings(database_url, redis_url, azure_client_id=APP)


@pytest.fixture
async def org(state: AppState, session: AsyncSession) -> AsyncIterator[Org]:
    async with organisation(state, session) as found:
        yield found


async def test_an_azure_cloud_shows_its_validation_state_and_consent_link(
    org: Org, state: AppState, session: AsyncSession
) -> None:
    customer = str(uuid.uuid4())
    cloud = Cloud(
        id=new_id("cld"),
        tenant_id=org.tenant.id,
        name="contoso-prod",
        provider="azure",
        status="VALIDATING",
        is_default=True,
        config={"auth_mode": "app_consent", "tenant_id": customer, "subscription_id": str(uuid.uuid4())},
        ray_versions=[],
    )
    await CloudRepository(session).add(cloud)
    await session.commit()
    async with api(state)() as client:
        listed = await client.get("/v1/clouds", headers=org.api.headers)
    expected = next(c for c in listed.json()["items"] if c["id"] == cloud.id)
    assert expected["admin_consent_url"]

    page = await org.people[Role.VIEWER].client.get("/console/account")
    assert page.status_code == 200
    row = page.text.split(f'data-cloud="{cloud.id}"')[1].split("</tr>")[0]
    assert "contoso-prod" in row
    assert "VALIDATING" in row
    assert f'href="{expected["admin_consent_url"]}"' in unescape(row)
    assert "Grant admin consent" in row
