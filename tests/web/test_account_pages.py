"""The account page in process: members, API keys (a new key shown once) and cloud accounts,
with the API's roles; forged posts are refused and bad input changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import AppState
from rayplane.common.principal import Principal, Role
from rayplane.identity import service
from tests.web.pagekit import Org, api, organisation


@pytest.fixture
async def org(state: AppState, session: AsyncSession) -> AsyncIterator[Org]:
    async with organisation(state, session) as found:
        yield found


async def _keys(session: AsyncSession, org: Org) -> list[str]:
    system = Principal(tenant_id=org.tenant.id, role=Role.OWNER, actor_type="system", actor_id="system:test")
    page = await service.list_api_keys(session, system, cursor=None, limit=100, include_revoked=False)
    return sorted(k.name for k in page.items)


async def test_a_new_key_is_shown_once_and_listed_by_its_prefix(org: Org, session: AsyncSession) -> None:
    member = org.people[Role.MEMBER]
    made = await member.post("/console/account/api-keys", {"name": "ci deploys", "role": "member"})
    assert made.status_code == 303
    assert made.headers["location"] == "/console/account#new-key"
    first = await member.client.get("/console/account")
    assert first.status_code == 200
    assert "shown this once" in first.text
    value = first.text.split('id="new-key-value" class="secret" readonly value="')[1].split('"')[0]
    assert value.startswith("rpk_")
    again = await member.client.get("/console/account")
    assert value not in again.text
    assert "shown this once" not in again.text
    prefix = value.split("_")[1]
    assert f"rpk_{prefix}_…" in again.text
    assert "ci deploys" in await _keys(session, org)


async def test_a_viewer_sees_no_write_controls_and_forged_posts_are_refused(org: Org, session: AsyncSession) -> None:
    viewer = org.people[Role.VIEWER]
    answer = await viewer.client.get("/console/account")
    assert answer.status_code == 200
    for control in ("Create key", "Add member", "Revoke…", "Remove…", 'action="/console/account'):
        assert control not in answer.text, control
    before = await _keys(session, org)
    refused = await viewer.post("/console/account/api-keys", {"name": "sneaky", "role": "viewer"})
    assert refused.status_code == 403
    assert "Forbidden" in refused.text
    assert (await viewer.post("/console/account/api-keys", {})).status_code == 403  # the role before the input
    no_token = await viewer.post("/console/account/api-keys", {"name": "sneaky"}, csrf=False)
    assert no_token.status_code == 403
    assert "security token" in no_token.text
    owner_id = org.people[Role.OWNER].member_id
    assert (await viewer.post(f"/console/account/members/{owner_id}/role", {"role": "viewer"})).status_code == 403
    assert (await viewer.post(f"/console/account/members/{owner_id}/remove")).status_code == 403
    assert (await viewer.post("/console/account/members", {"oid": ""})).status_code == 403
    assert await _keys(session, org) == before


async def test_bad_input_shows_field_errors_and_changes_nothing(org: Org, session: AsyncSession) -> None:
    admin = org.people[Role.ADMIN]
    before = await _keys(session, org)
    answer = await admin.post("/console/account/api-keys", {"name": "  ", "role": "member"})
    assert answer.status_code == 422
    assert 'id="key-name-error"' in answer.text
    assert 'aria-invalid="true" aria-describedby="key-name-error"' in answer.text
    answer = await admin.post("/console/account/api-keys", {"name": "too high", "role": "owner"})
    assert answer.status_code == 403  # above the admin's own role, as the API refuses it
    assert await _keys(session, org) == before

    bad = await admin.post("/console/account/members", {"oid": "", "member_role": "member", "email": "kept@x.test"})
    assert bad.status_code == 422
    assert 'id="oid-error"' in bad.text
    assert 'value="kept@x.test"' in bad.text  # the form keeps what was typed
    members = await admin.client.get("/console/account")
    assert "kept@x.test" not in members.text


async def test_admins_manage_members(org: Org) -> None:
    admin = org.people[Role.ADMIN]
    added = await admin.post(
        "/console/account/members",
        {"oid": "00000000-0000-0000-0000-00000000beef", "member_role": "viewer", "display_name": "Newbie"},
    )
    assert added.status_code == 303
    page = await admin.client.get("/console/account")
    assert "Newbie" in page.text
    member_id = page.text.split('data-member="')[1:]
    newbie = next(chunk.split('"')[0] for chunk in member_id if "Newbie" in chunk.split("</tr>")[0])
    assert (await admin.post(f"/console/account/members/{newbie}/role", {"role": "member"})).status_code == 303
    assert (await admin.post(f"/console/account/members/{newbie}/role", {"role": "emperor"})).status_code == 422
    assert (await admin.post(f"/console/account/members/{newbie}/remove")).status_code == 303
    assert "Newbie" not in (await admin.client.get("/console/account")).text


async def test_another_tenants_member_is_a_404_page(org: Org, state: AppState, session: AsyncSession) -> None:
    async with organisation(state, session) as other:
        target = other.people[Role.VIEWER].member_id
        answer = await org.people[Role.OWNER].post(f"/console/account/members/{target}/remove")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")


async def test_writes_are_audited_as_the_apis_are(org: Org, state: AppState) -> None:
    member, viewer = org.people[Role.MEMBER], org.people[Role.VIEWER]
    assert (await member.post("/console/account/api-keys", {"name": "audited", "role": "viewer"})).status_code == 303
    assert (await member.post("/console/account/api-keys", {"name": "", "role": "viewer"})).status_code == 422
    assert (await viewer.post("/console/account/api-keys", {"name": "no", "role": "viewer"})).status_code == 403
    async with api(state)() as client:
        answer = await client.get("/v1/audit-log", headers=org.api.headers, params={"action": "web.api_key_create"})
    assert answer.status_code == 200, answer.text
    entries = answer.json()["items"]
    made = [e for e in entries if e["actor_id"] == member.member_id]
    assert len(made) == 1  # the refused input changed nothing and recorded no success
    assert made[0]["target_type"] == "api_key"
    assert made[0]["result"] == "success"
    refused = [e for e in entries if e["actor_id"] == viewer.member_id]
    assert [(e["result"], e["status_code"]) for e in refused] == [("failure", 403)]
