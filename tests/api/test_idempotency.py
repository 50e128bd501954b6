"""``Idempotency-Key`` replays: authorization first, one credential, no stored secrets, audited as replays."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.models import IdempotencyRecord
from rayplane.common.principal import Role
from tests.support.factories import Factory

FIELD = "header.Idempotency-Key"


async def test_a_viewer_repeating_an_owners_key_create_gets_403_not_the_key(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await factory.actor(Role.OWNER)
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    key = str(uuid.uuid4())
    body = {"name": "deploy", "role": "owner"}
    first = await client.post("/v1/api-keys", headers={**owner.headers, "Idempotency-Key": key}, json=body)
    assert first.status_code == 201, first.text
    stolen = await client.post("/v1/api-keys", headers={**viewer.headers, "Idempotency-Key": key}, json=body)
    assert stolen.status_code == 403, stolen.text
    assert first.json()["key"] not in stolen.text
    assert "idempotent-replayed" not in stolen.headers


async def test_another_credential_with_the_same_key_gets_422_naming_the_header(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner = await factory.actor(Role.OWNER)
    other_owner = await factory.actor(Role.OWNER, tenant=owner.tenant)
    key = str(uuid.uuid4())
    body = {"name": "ci", "role": "member"}
    first = await client.post("/v1/api-keys", headers={**owner.headers, "Idempotency-Key": key}, json=body)
    assert first.status_code == 201
    again = await client.post("/v1/api-keys", headers={**other_owner.headers, "Idempotency-Key": key}, json=body)
    assert again.status_code == 422, again.text
    [error] = again.json()["errors"]
    assert error["field"] == FIELD
    assert "another credential" in error["message"]
    assert first.json()["id"] not in again.text
    listed = (await client.get("/v1/api-keys", headers=owner.headers)).json()["items"]
    assert sum(1 for k in listed if k["name"] == "ci") == 1


async def test_a_replay_to_the_same_credential_omits_the_secret_and_says_so(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    owner = await factory.actor(Role.OWNER)
    headers = {**owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/api-keys", headers=headers, json={"name": "ci", "role": "member"})
    assert first.status_code == 201
    raw = first.json()["key"]
    assert raw.startswith("rpk_")
    assert first.json()["secret_omitted"] is False

    replay = await client.post("/v1/api-keys", headers=headers, json={"name": "ci", "role": "member"})
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    assert replay.json() == {**first.json(), "key": None, "secret_omitted": True}
    assert raw not in replay.text

    # Nothing stored holds the key (nor its secret part).
    records = (
        await session.execute(select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == owner.tenant.id))
    ).scalars()
    stored = [json.dumps([r.body, r.headers]) for r in records]
    assert stored
    assert not any(raw.split("_")[-1] in s for s in stored)


async def test_a_replay_is_audited_as_a_replay_of_the_resource(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor(Role.OWNER)
    headers = {**owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/api-keys", headers=headers, json={"name": "ci"})
    await client.post("/v1/api-keys", headers=headers, json={"name": "ci"})
    got = (await client.get("/v1/audit-log", headers=owner.headers)).json()["items"]
    replay, original = got[0], got[1]
    assert original["action"] == replay["action"] == "api_keys.create"
    assert original["target_id"] == replay["target_id"] == first.json()["id"]
    assert replay["target_type"] == "api_key"
    assert replay["detail"] == {"idempotent_replay": True, "secret_omitted": True}
    assert not (original["detail"] or {}).get("idempotent_replay")


async def test_a_member_replay_still_needs_the_role(client: httpx.AsyncClient, factory: Factory) -> None:
    """Members are created by admins: an owner's record is not replayed to a member's key (role first)."""
    owner = await factory.actor(Role.OWNER)
    member = await factory.actor(Role.MEMBER, tenant=owner.tenant)
    key = str(uuid.uuid4())
    body = {"oid": str(uuid.uuid4()), "role": "admin"}
    first = await client.post("/v1/members", headers={**owner.headers, "Idempotency-Key": key}, json=body)
    assert first.status_code == 201
    denied = await client.post("/v1/members", headers={**member.headers, "Idempotency-Key": key}, json=body)
    assert denied.status_code == 403
