"""The emulated Entra's interactive sign-in: authorize page, consent, codes redeemed once with
PKCE, driven by the real MSAL (``ConfidentialClientApplication``'s auth-code flow) over HTTPS.
The pages are walked with plain HTTP here; tests/web drives them in a browser."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal  # type: ignore[import-untyped, unused-ignore]
import pytest

from emulators.azure.server import EmulatorProcess
from rayplane.marketplace.token import _PinnedSession

TENANT = str(uuid.uuid4())
OTHER_TENANT = str(uuid.uuid4())
CLIENT_ID = str(uuid.uuid4())
REDIRECT = "http://127.0.0.1:9/auth/callback"
SCOPES = ["api://rayplane-signin/user_impersonation"]


@pytest.fixture(scope="module")
def http(emulator: EmulatorProcess) -> httpx.Client:
    return httpx.Client(base_url=emulator.origin, verify=emulator.ssl_context() or False, timeout=10)


@pytest.fixture(scope="module")
def users(http: httpx.Client) -> dict[str, str]:
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    r = http.put(f"/_emulator/entra/users/{TENANT}/{ada}", json={"name": "Ada", "preferred_username": "ada@contoso"})
    assert r.status_code == 200, r.text
    http.put(f"/_emulator/entra/users/{OTHER_TENANT}/{bob}", json={"name": "Bob", "preferred_username": "bob@fabrikam"})
    return {"ada": ada, "bob": bob}


def _app(emulator: EmulatorProcess, tenant: str = "organizations") -> Any:
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential="emulator-secret",
        authority=f"{emulator.origin}/{tenant}",
        instance_discovery=False,
        # requests lets REQUESTS_CA_BUNDLE override ``verify``; the pinned session does not.
        http_client=_PinnedSession(str(emulator.ca_path)),
    )


def _sign_in(http: httpx.Client, url: str, who: str, consent: str = "accept") -> dict[str, str]:
    """Walk the pages as a browser would: pick ``who``, consent; the redirect's query."""
    page = http.get(url)
    assert page.status_code == 200, page.text
    assert "<script" not in page.text
    action = urlsplit(url).path
    pending = re.search(r'name="pending" value="([^"]+)"', page.text)
    assert pending is not None
    user = re.search(rf'name="user" value="([^"]+)">{re.escape(who)} \(', page.text)
    assert user is not None, page.text
    consent_page = http.post(action, data={"pending": pending.group(1), "step": "account", "user": user.group(1)})
    assert consent_page.status_code == 200
    assert "Permissions requested" in consent_page.text
    done = http.post(
        action, data={"pending": pending.group(1), "step": "consent", "user": user.group(1), "consent": consent}
    )
    assert done.status_code == 303
    location = done.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_msal_auth_code_flow_with_pkce_signs_a_listed_user_in(
    emulator: EmulatorProcess, http: httpx.Client, users: dict[str, str]
) -> None:
    app = _app(emulator)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT)
    assert flow["code_verifier"]
    assert "code_challenge=" in flow["auth_uri"]
    page = http.get(flow["auth_uri"]).text
    assert "Ada (ada@contoso)" in page
    assert "Bob (bob@fabrikam)" in page
    reply = _sign_in(http, flow["auth_uri"], "Ada")
    assert reply["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, reply)
    assert "error" not in result, result
    id_claims = result["id_token_claims"]
    sent_nonce = parse_qs(urlsplit(flow["auth_uri"]).query)["nonce"][0]
    assert id_claims["nonce"] == sent_nonce  # echoed (and MSAL compared it with its flow)
    assert (id_claims["tid"], id_claims["oid"], id_claims["aud"]) == (TENANT, users["ada"], CLIENT_ID)
    access = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert access["aud"] == "api://rayplane-signin"
    assert access["tid"] == TENANT
    assert access["oid"] == users["ada"]
    assert jwt.get_unverified_header(result["access_token"])["kid"] in http.get("/_emulator/entra/keys").json()["kids"]

    # The same code again: redeemed once only.
    again = app.acquire_token_by_auth_code_flow(flow, reply)
    assert again.get("error") in ("invalid_grant", "state_mismatch"), again
    token = http.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": CLIENT_ID,
            "client_secret": "emulator-secret",
            "code": reply["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": flow["code_verifier"],
        },
    )
    assert token.status_code == 400
    assert token.json()["error_codes"] == [54005]


def _raw_flow(http: httpx.Client, emulator: EmulatorProcess, verifier: str) -> tuple[dict[str, str], dict[str, str]]:
    from emulators.azure.entra_signin import s256

    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid " + SCOPES[0],
        "state": "s1",
        "nonce": "n1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    url = str(httpx.URL(f"{emulator.origin}/{TENANT}/oauth2/v2.0/authorize", params=params))
    return params, _sign_in(http, url, "Ada")


def _redeem(http: httpx.Client, code: str, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": "emulator-secret",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": "v" * 50,
        **overrides,
    }
    return http.post(f"/{TENANT}/oauth2/v2.0/token", data=form)


def test_pkce_redirect_uri_and_client_are_checked_and_the_code_burns(
    emulator: EmulatorProcess, http: httpx.Client, users: dict[str, str]
) -> None:
    _, reply = _raw_flow(http, emulator, "v" * 50)
    wrong = _redeem(http, reply["code"], code_verifier="w" * 50)
    assert wrong.status_code == 400
    assert wrong.json()["error_codes"] == [501481]
    # The failed attempt consumed the code: the right verifier is too late now.
    assert _redeem(http, reply["code"]).json()["error_codes"] == [54005]

    _, reply = _raw_flow(http, emulator, "v" * 50)
    assert _redeem(http, reply["code"], redirect_uri="http://127.0.0.1:9/other").json()["error_codes"] == [500112]
    _, reply = _raw_flow(http, emulator, "v" * 50)
    assert _redeem(http, reply["code"], client_id=str(uuid.uuid4())).json()["error_codes"] == [70000]
    _, reply = _raw_flow(http, emulator, "v" * 50)
    missing = _redeem(http, reply["code"], code_verifier="")
    assert missing.json()["error"] == "invalid_request"

    _, reply = _raw_flow(http, emulator, "v" * 50)
    ok = _redeem(http, reply["code"])
    assert ok.status_code == 200, ok.text
    id_claims = jwt.decode(ok.json()["id_token"], options={"verify_signature": False})
    assert id_claims["nonce"] == "n1"
    assert id_claims["tid"] == TENANT


def test_a_tenant_lists_only_its_own_users_and_cancel_redirects_with_access_denied(
    emulator: EmulatorProcess, http: httpx.Client, users: dict[str, str]
) -> None:
    app = _app(emulator, TENANT)
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT)
    page = http.get(flow["auth_uri"]).text
    assert "Ada" in page
    assert "Bob" not in page
    reply = _sign_in(http, flow["auth_uri"], "Ada", consent="cancel")
    assert reply["error"] == "access_denied"
    assert "AADSTS65004" in reply["error_description"]
    assert reply["state"] == flow["state"]


def test_bad_authorize_requests_get_an_error_page_not_a_redirect(emulator: EmulatorProcess, http: httpx.Client) -> None:
    base = f"/{TENANT}/oauth2/v2.0/authorize"
    good = {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT, "scope": "openid"}
    evil = http.get(base, params={**good, "redirect_uri": "http://evil.example/cb"})
    assert evil.status_code == 400
    assert "AADSTS50011" in evil.text
    plain = http.get(base, params={**good, "code_challenge": "abc", "code_challenge_method": "plain"})
    assert plain.status_code == 400
    assert "S256" in plain.text
    assert http.get(base, params={**good, "client_id": ""}).status_code == 400
    # A registered app with reply URLs: only those.
    registered_tenant, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"secrets": [{"value": "s3cret"}], "redirect_uris": [REDIRECT]}
    assert http.put(f"/_emulator/entra/applications/{registered_tenant}/{app_id}", json=body).status_code == 200
    reg = f"/{registered_tenant}/oauth2/v2.0/authorize"
    other = http.get(reg, params={**good, "client_id": app_id, "redirect_uri": "https://127.0.0.1:9/x"})
    assert other.status_code == 400
    assert "AADSTS50011" in other.text
    assert http.get(reg, params={**good, "client_id": app_id}).status_code == 200
    stranger = http.get(reg, params={**good, "client_id": str(uuid.uuid4())})
    assert stranger.status_code == 400
    assert "AADSTS700016" in stranger.text
    # A forged pending id.
    forged = http.post(base, data={"pending": "nope", "step": "consent", "user": "x/y", "consent": "accept"})
    assert forged.status_code == 400
    assert "AADSTS50058" in forged.text


def test_users_admin_api(http: httpx.Client) -> None:
    tenant, oid = str(uuid.uuid4()), str(uuid.uuid4())
    assert http.put(f"/_emulator/entra/users/{tenant}/not-a-guid", json={}).status_code == 400
    assert http.put(f"/_emulator/entra/users/{tenant}/{oid}", json={"name": "Cy"}).json()["oid"] == oid
    assert [u["name"] for u in http.get(f"/_emulator/entra/users/{tenant}").json()["value"]] == ["Cy"]
    assert http.delete(f"/_emulator/entra/users/{tenant}/{oid}").status_code == 200
    assert http.get(f"/_emulator/entra/users/{tenant}/{oid}").status_code == 404
