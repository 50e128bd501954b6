"""Authentication: API keys and Entra ID access tokens; every failure is a 401 problem."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from emulators.azure.server import EmulatorProcess
from rayplane.common.principal import Role
from rayplane.identity.entra import EntraValidator
from rayplane.settings import Settings
from tests.conftest import AUDIENCE
from tests.support.entra import mint, rotate
from tests.support.factories import Factory


@pytest.fixture
def settings(azure_settings: Settings) -> Settings:
    """The app checks Entra tokens here against the emulator's Entra ID."""
    return azure_settings


def assert_401(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    return str(response.json()["detail"])


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.fixture
async def entra_user(factory: Factory, emulator: EmulatorProcess) -> dict[str, Any]:
    tid = str(uuid.uuid4())
    tenant = await factory.tenant(tid=tid)
    member = await factory.member(tenant, role=Role.ADMIN)
    return {
        "tid": tid,
        "oid": member.oid,
        "tenant_id": tenant.id,
        "claims": {"tid": tid, "oid": member.oid, "aud": AUDIENCE, "iss": f"{emulator.origin}/{tid}/v2.0"},
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_api_key_authenticates_and_records_last_use(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor(Role.MEMBER)
    r = await client.get("/v1/tenant", headers=actor.headers)
    assert r.status_code == 200
    assert r.json()["id"] == actor.tenant.id
    key = (await client.get(f"/v1/api-keys/{actor.key.id}", headers=actor.headers)).json()
    assert key["last_used_at"] is not None


async def test_revoked_key_is_refused(client: httpx.AsyncClient, factory: Factory) -> None:
    owner = await factory.actor()
    victim = await factory.actor(Role.MEMBER, tenant=owner.tenant)
    assert (await client.get("/v1/tenant", headers=victim.headers)).status_code == 200
    assert (await client.delete(f"/v1/api-keys/{victim.key.id}", headers=owner.headers)).status_code == 200
    assert "revoked" in assert_401(await client.get("/v1/tenant", headers=victim.headers))


async def test_expired_key_is_refused(client: httpx.AsyncClient, factory: Factory, session: Any) -> None:
    actor = await factory.actor()
    actor.key.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await session.commit()
    assert "expired" in assert_401(await client.get("/v1/tenant", headers=actor.headers))


async def test_wrong_secret_with_real_prefix_is_refused(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    forged = actor.raw_key[:-4] + ("aaaa" if not actor.raw_key.endswith("aaaa") else "bbbb")
    assert assert_401(await client.get("/v1/tenant", headers=bearer(forged))) == "unknown API key"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer two tokens",
        "bearer rpk_short_x",
        "Token rpk_aaaaaaaaaaaa_" + "a" * 40,
        "Bearer not-a-jwt-at-all",
        "Bearer a.b.c",
    ],
)
async def test_malformed_authorization_headers(client: httpx.AsyncClient, header: str) -> None:
    assert_401(await client.get("/v1/tenant", headers={"Authorization": header}))


async def test_entra_token_of_a_member_authenticates(
    client: httpx.AsyncClient, emulator: EmulatorProcess, entra_user: dict[str, Any]
) -> None:
    token = mint(emulator, entra_user["tid"], entra_user["claims"])
    r = await client.get("/v1/tenant", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == entra_user["tenant_id"]
    assert r.json()["entra_tenant_id"] == entra_user["tid"]


async def test_entra_signed_in_non_member_is_forbidden(
    client: httpx.AsyncClient, emulator: EmulatorProcess, entra_user: dict[str, Any]
) -> None:
    token = mint(emulator, entra_user["tid"], {**entra_user["claims"], "oid": str(uuid.uuid4())})
    r = await client.get("/v1/tenant", headers=bearer(token))
    assert r.status_code == 403
    assert "not a member" in r.json()["detail"]


@pytest.mark.parametrize(
    ("case", "override", "reason"),
    [
        ("expired", {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4200}, "expired"),
        ("not yet valid", {"nbf": int(time.time()) + 600}, "not valid yet"),
        ("wrong aud", {"aud": "api://someone-else"}, "audience"),
        ("wrong iss", {"iss": "https://login.example.com/evil/v2.0"}, "issuer"),
        ("unknown tid", {"tid": "11111111-2222-3333-4444-555555555555"}, "not a Rayplane tenant"),
        ("no oid", {"oid": None}, "oid"),
    ],
)
async def test_entra_claim_failures(
    client: httpx.AsyncClient,
    emulator: EmulatorProcess,
    entra_user: dict[str, Any],
    case: str,
    override: dict[str, Any],
    reason: str,
) -> None:
    claims = {**entra_user["claims"], **override}
    token = mint(emulator, entra_user["tid"], claims)
    assert reason in assert_401(await client.get("/v1/tenant", headers=bearer(token))), case


async def test_alg_none_is_refused(client: httpx.AsyncClient, entra_user: dict[str, Any]) -> None:
    now = int(time.time())
    claims = {**entra_user["claims"], "exp": now + 600, "iat": now}
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert "only RS256" in assert_401(await client.get("/v1/tenant", headers=bearer(token)))


async def test_hs256_signed_with_the_public_key_is_refused(
    client: httpx.AsyncClient, emulator: EmulatorProcess, entra_user: dict[str, Any]
) -> None:
    jwks = httpx.get(
        f"{emulator.origin}/{entra_user['tid']}/discovery/v2.0/keys", verify=emulator.ssl_context() or True
    ).json()
    public = jwt.PyJWK(jwks["keys"][0]).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {**entra_user["claims"], "exp": now + 600, "iat": now}
    header = {"alg": "HS256", "typ": "JWT", "kid": jwks["keys"][0]["kid"]}
    signing_input = f"{b64(header)}.{b64(claims)}".encode()
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest()).decode().rstrip("=")
    token = signing_input.decode() + "." + sig
    assert "only RS256" in assert_401(await client.get("/v1/tenant", headers=bearer(token)))


async def test_unknown_kid_is_refused_after_one_refetch(
    client: httpx.AsyncClient, emulator: EmulatorProcess, entra_user: dict[str, Any], entra: EntraValidator
) -> None:
    good = mint(emulator, entra_user["tid"], entra_user["claims"])
    assert (await client.get("/v1/tenant", headers=bearer(good))).status_code == 200
    fetches = entra.jwks_fetches
    _, payload, sig = good.split(".")
    forged_header = b64({**jwt.get_unverified_header(good), "kid": "no-such-kid"})
    forged = f"{forged_header}.{payload}.{sig}"
    entra.refetch_interval = 0  # allow the refetch now; production waits 10 s between refetches
    assert "unknown key" in assert_401(await client.get("/v1/tenant", headers=bearer(forged)))
    assert entra.jwks_fetches == fetches + 1
    entra.refetch_interval = 3600
    assert "unknown key" in assert_401(await client.get("/v1/tenant", headers=bearer(forged)))
    assert entra.jwks_fetches == fetches + 1  # throttled: a flood of made-up kids is not a flood of fetches


async def test_rotated_signing_key_is_picked_up_by_one_refetch(
    client: httpx.AsyncClient, emulator: EmulatorProcess, entra_user: dict[str, Any], entra: EntraValidator
) -> None:
    first = mint(emulator, entra_user["tid"], entra_user["claims"])
    assert (await client.get("/v1/tenant", headers=bearer(first))).status_code == 200
    fetches = entra.jwks_fetches
    new_kid = rotate(emulator)
    second = mint(emulator, entra_user["tid"], entra_user["claims"])
    assert jwt.get_unverified_header(second)["kid"] == new_kid
    entra.refetch_interval = 0
    assert (await client.get("/v1/tenant", headers=bearer(second))).status_code == 200
    assert entra.jwks_fetches == fetches + 1
    # the cached set now holds the new key: no further fetch
    assert (await client.get("/v1/tenant", headers=bearer(second))).status_code == 200
    assert entra.jwks_fetches == fetches + 1
