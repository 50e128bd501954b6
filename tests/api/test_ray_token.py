"""``GET /v1/clusters/{id}/ray-token``: a cluster's Ray token, for members and above only,
never cached, every call audited; the token is stored sealed, never in plain text."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.models import Cluster
from rayplane.common import raytoken
from rayplane.common.principal import Role
from tests.conftest import HASHING_KEY
from tests.support.factories import Factory

SPEC: dict[str, Any] = {"name": "tok", "head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}


async def audit(client: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, str, int]]:
    r = await client.get("/v1/audit-log", headers=headers, params={"action": "clusters.ray_token"})
    assert r.status_code == 200, r.text
    return [(e["actor_id"], e["result"], e["status_code"]) for e in reversed(r.json()["items"])]


async def test_members_get_the_token_viewers_do_not(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    owner = await factory.actor()
    member = await factory.actor(Role.MEMBER, tenant=owner.tenant)
    viewer = await factory.actor(Role.VIEWER, tenant=owner.tenant)
    created = await client.post("/v1/clusters", headers=owner.headers, json=SPEC)
    assert created.status_code == 202, created.text
    cid = created.json()["id"]
    assert "ray_token" not in str(created.json())

    early = await client.get(f"/v1/clusters/{cid}/ray-token", headers=member.headers)
    assert early.status_code == 409, early.text  # the reconciler has not given it one yet

    # What the reconciler's first pass does: a token, sealed with the secret key.
    token = raytoken.new_token()
    cluster = (await session.execute(select(Cluster).where(Cluster.id == cid))).scalar_one()
    cluster.ray_token_sealed = raytoken.seal(HASHING_KEY, token)
    await session.commit()
    assert token not in cluster.ray_token_sealed

    got = await client.get(f"/v1/clusters/{cid}/ray-token", headers=member.headers)
    assert got.status_code == 200, got.text
    assert got.json()["token"] == token
    assert got.json()["header"] == "X-Ray-Authorization"
    assert got.headers["cache-control"] == "no-store"
    refused = await client.get(f"/v1/clusters/{cid}/ray-token", headers=viewer.headers)
    assert refused.status_code == 403
    assert token not in refused.text
    # The cluster itself stays readable to the viewer, without the token.
    seen = await client.get(f"/v1/clusters/{cid}", headers=viewer.headers)
    assert seen.status_code == 200
    assert token not in seen.text
    assert await audit(client, owner.headers) == [
        (member.key.id, "failure", 409),
        (member.key.id, "success", 200),
        (viewer.key.id, "failure", 403),
    ]


async def test_another_tenants_cluster_is_404(client: httpx.AsyncClient, factory: Factory) -> None:
    a = await factory.actor()
    b = await factory.actor()
    cid = (await client.post("/v1/clusters", headers=a.headers, json=SPEC)).json()["id"]
    r = await client.get(f"/v1/clusters/{cid}/ray-token", headers=b.headers)
    assert r.status_code == 404


def test_a_sealed_token_opens_only_with_its_secret_key() -> None:
    token = raytoken.new_token()
    sealed = raytoken.seal(b"key one", token)
    assert raytoken.open_token(b"key one", sealed) == token
    assert raytoken.seal(b"key one", token) != sealed  # a fresh IV each time
    try:
        raytoken.open_token(b"key two", sealed)
    except raytoken.TokenUnreadable:
        pass
    else:
        raise AssertionError("a token opened with the wrong key")
