"""The emulator's Entra ID, driven by the real azure-identity, MSAL and PyJWT over HTTPS."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal  # type: ignore[import-untyped, unused-ignore]
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientAssertionCredential, ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from emulators.azure.entra_auth import DEFAULT_CLIENT_SECRET
from emulators.azure.keys import KeyStore, object_id_for_client
from emulators.azure.server import EmulatorProcess, EmulatorStartError

TENANT = str(uuid.uuid4())
CLIENT_ID = str(uuid.uuid4())
ARM_SCOPE = "https://management.azure.com/.default"
ARM = "https://management.azure.com"


def _client(emu: EmulatorProcess) -> httpx.Client:
    return httpx.Client(base_url=emu.origin, verify=emu.ssl_context() or False, timeout=10)


def _verify(emu: EmulatorProcess, token: str, *, tenant: str = TENANT, audience: str = ARM) -> dict[str, Any]:
    """Validate ``token`` the way a resource server would: metadata -> jwks_uri -> signature."""
    with _client(emu) as http:
        metadata = http.get(f"/{tenant}/v2.0/.well-known/openid-configuration").json()
    keys = jwt.PyJWKClient(metadata["jwks_uri"], cache_jwk_set=False, ssl_context=emu.ssl_context())
    claims: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=metadata["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=metadata["issuer"],
    )
    return claims


def _secret_credential(emu: EmulatorProcess, secret: str = DEFAULT_CLIENT_SECRET) -> ClientSecretCredential:
    return ClientSecretCredential(
        TENANT,
        CLIENT_ID,
        secret,
        authority=emu.authority,
        disable_instance_discovery=True,
        connection_verify=str(emu.ca_path),
    )


def _self_signed(common_name: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a fresh self-signed RSA certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def test_metadata_follows_azure_layout(emulator: EmulatorProcess) -> None:
    origin = emulator.origin
    with _client(emulator) as http:
        meta = http.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
        common = http.get("/common/v2.0/.well-known/openid-configuration").json()
        bad = http.get("/not-a-tenant/v2.0/.well-known/openid-configuration")
    assert meta["issuer"] == f"{origin}/{TENANT}/v2.0"
    assert meta["jwks_uri"] == f"{origin}/{TENANT}/discovery/v2.0/keys"
    assert meta["token_endpoint"] == f"{origin}/{TENANT}/oauth2/v2.0/token"
    assert meta["device_authorization_endpoint"] == f"{origin}/{TENANT}/oauth2/v2.0/devicecode"
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"authorization_endpoint", "response_types_supported", "subject_types_supported"} <= meta.keys()
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert common["issuer"] == f"{origin}/{{tenantid}}/v2.0"
    assert common["token_endpoint"] == f"{origin}/common/oauth2/v2.0/token"
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_tenant"


def test_client_secret_credential_gets_a_verifiable_arm_token(emulator: EmulatorProcess) -> None:
    token = _secret_credential(emulator).get_token(ARM_SCOPE).token
    header = jwt.get_unverified_header(token)
    claims = _verify(emulator, token)
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"
    assert header["kid"]
    assert claims["iss"] == f"{emulator.origin}/{TENANT}/v2.0"
    assert claims["tid"] == TENANT
    assert claims["azp"] == claims["appid"] == CLIENT_ID
    assert claims["oid"] == claims["sub"] == object_id_for_client(CLIENT_ID)
    assert (claims["ver"], claims["idtyp"], claims["azpacr"]) == ("2.0", "app", "1")
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] <= time.time()


def test_msal_confidential_client(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE override a session's verify=, so name the CA there too.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_path))
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential="emulator-secret",
        authority=f"{emulator.origin}/{TENANT}",
        instance_discovery=False,
        verify=str(emulator.ca_path),
    )
    result = app.acquire_token_for_client(scopes=["api://abc/.default"])
    assert result.get("token_type") == "Bearer", result
    assert result["expires_in"] > 3000
    claims = _verify(emulator, result["access_token"], audience="api://abc")
    assert claims["appid"] == CLIENT_ID


def test_msal_instance_discovery_at_the_emulator(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """MSAL pointed at the emulator's instance discovery endpoint (not login.microsoftonline.com)
    finds the tenant's OpenID configuration there and gets a token for ARM."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_path))
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential="emulator-secret",
        authority=f"{emulator.origin}/{TENANT}",
        instance_discovery=f"{emulator.origin}/common/discovery/instance",
        verify=str(emulator.ca_path),
    )
    result = app.acquire_token_for_client(scopes=["https://management.core.windows.net//.default"])
    assert result.get("token_type") == "Bearer", result
    assert _verify(emulator, result["access_token"], audience="https://management.core.windows.net/")["tid"] == TENANT
    with httpx.Client(verify=emulator.ssl_context() or False) as h:
        found = h.get(f"{emulator.origin}/common/discovery/instance?api-version=1.1").json()
    assert found["tenant_discovery_endpoint"] == f"{emulator.origin}/common/v2.0/.well-known/openid-configuration"
    assert found["metadata"][0]["aliases"] == [emulator.authority]


def test_certificate_credential(emulator: EmulatorProcess) -> None:
    key_pem, cert_pem = _self_signed("rayplane-test")
    _, other_cert_pem = _self_signed("someone-else")

    def token() -> str:
        return (
            CertificateCredential(
                TENANT,
                CLIENT_ID,
                certificate_data=key_pem + cert_pem,
                authority=emulator.authority,
                disable_instance_discovery=True,
                connection_verify=str(emulator.ca_path),
            )
            .get_token(ARM_SCOPE)
            .token
        )

    assert _verify(emulator, token())["azpacr"] == "2"  # no certificate registered: well-formed is enough
    try:
        emulator.configure_entra(client_certificates={CLIENT_ID: [other_cert_pem.decode()]})
        with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
            token()
        emulator.configure_entra(client_certificates={CLIENT_ID: [other_cert_pem.decode(), cert_pem.decode()]})
        assert _verify(emulator, token())["appid"] == CLIENT_ID
    finally:
        emulator.configure_entra(client_certificates={})


def test_wrong_secret_is_refused(emulator: EmulatorProcess) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _secret_credential(emulator, "wrong").get_token(ARM_SCOPE)
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong", "scope": ARM_SCOPE}
    with _client(emulator) as http:
        answer = http.post(f"/{TENANT}/oauth2/v2.0/token", data=form, headers={"client-request-id": "corr-1"})
    body = answer.json()
    assert answer.status_code == 401
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215:")
    assert body["error_codes"] == [7000215]
    assert body["correlation_id"] == "corr-1"
    assert {"timestamp", "trace_id"} <= body.keys()


def _assertion(iss: str, sub: str, aud: str) -> str:
    now = int(time.time())
    # Built when the parameters are collected, which may be long before the test runs (a whole
    # suite can run first): a day of validity keeps the case about the issuer, not the clock.
    claims = {"iss": iss, "sub": sub, "aud": aud, "exp": now + 86400, "nbf": now - 60, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({"client_id": CLIENT_ID, "client_secret": "emulator-secret"}, 400, "invalid_request", 900144),
        ({"grant_type": "password", "client_id": CLIENT_ID}, 400, "unsupported_grant_type", 70003),
        (
            {"grant_type": "client_credentials", "client_id": CLIENT_ID, "scope": ARM_SCOPE},
            401,
            "invalid_client",
            7000218,
        ),
        (
            {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "emulator-secret"},
            400,
            "invalid_request",
            900144,
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": "emulator-secret",
                "scope": "openid",
            },
            400,
            "invalid_scope",
            1002012,
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "scope": ARM_SCOPE,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "not.a.jwt",
            },
            400,
            "invalid_request",
            50027,
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "scope": ARM_SCOPE,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": _assertion("other-app", "other-app", f"https://x/{TENANT}/oauth2/v2.0/token"),
            },
            401,
            "invalid_client",
            700021,
        ),
    ],
    ids=["no-grant", "unsupported-grant", "no-credential", "no-scope", "not-default-scope", "malformed", "wrong-iss"],
)
def test_token_endpoint_errors(
    emulator: EmulatorProcess, form: dict[str, str], status: int, error: str, code: int
) -> None:
    with _client(emulator) as http:
        answer = http.post(f"/{TENANT}/oauth2/v2.0/token", data=form)
    assert (answer.status_code, answer.json()["error"], answer.json()["error_codes"]) == (status, error, [code])


def test_client_secret_basic_and_tenant_alias(emulator: EmulatorProcess) -> None:
    form = {"grant_type": "client_credentials", "scope": "api://rayplane/.default"}
    with _client(emulator) as http:
        ok = http.post(f"/{TENANT}/oauth2/v2.0/token", data=form, auth=(CLIENT_ID, "emulator-secret"))
        alias = http.post("/common/oauth2/v2.0/token", data=form, auth=(CLIENT_ID, "emulator-secret"))
    assert ok.status_code == 200
    body = ok.json()
    assert (body["token_type"], body["expires_in"], body["ext_expires_in"]) == ("Bearer", 3599, 3599)
    assert _verify(emulator, body["access_token"], audience="api://rayplane")["azp"] == CLIENT_ID
    assert alias.status_code == 400


def test_minted_tokens_carry_overridden_claims(emulator: EmulatorProcess) -> None:
    user = str(uuid.uuid4())
    token = emulator.mint_token(TENANT, {"oid": user, "aud": "api://rayplane", "roles": ["Admin"], "idtyp": None})
    claims = _verify(emulator, token, audience="api://rayplane")
    assert (claims["oid"], claims["roles"], claims["tid"]) == (user, ["Admin"], TENANT)
    assert "idtyp" not in claims

    now = int(time.time())
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(emulator, emulator.mint_token(TENANT, {"exp": now - 60}))
    with pytest.raises(jwt.ImmatureSignatureError):
        _verify(emulator, emulator.mint_token(TENANT, {"nbf": now + 600}))
    with pytest.raises(jwt.InvalidIssuerError):
        _verify(emulator, emulator.mint_token(TENANT, {"iss": "https://evil.example/v2.0"}))
    with pytest.raises(jwt.InvalidAudienceError):
        _verify(emulator, emulator.mint_token(TENANT, {"aud": "api://someone-else"}))
    with pytest.raises(jwt.PyJWKClientError):
        _verify(emulator, emulator.mint_token(TENANT, untrusted=True))
    for alg in ("none", "HS256"):
        with pytest.raises(jwt.InvalidAlgorithmError):
            _verify(emulator, emulator.mint_token(TENANT, alg=alg))


def test_in_process_key_store_shares_state_with_the_server(emulator: EmulatorProcess) -> None:
    store = KeyStore(emulator.data_dir)
    token = store.mint({"oid": "x"}, origin=emulator.origin, tenant=TENANT, audience="api://a")
    assert _verify(emulator, token, audience="api://a")["oid"] == "x"
    kid = store.rotate()  # a rotation made in-process is what the server signs with next
    served = _secret_credential(emulator).get_token(ARM_SCOPE).token
    assert jwt.get_unverified_header(served)["kid"] == kid


def test_key_rotation_keeps_old_keys_published(fresh_emulator: EmulatorProcess) -> None:
    # Its own emulator: retiring the old key would void every token other tests minted with it.
    emulator = fresh_emulator
    before = emulator.mint_token(TENANT)
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = emulator.rotate_keys()
    with _client(emulator) as http:
        kids = [k["kid"] for k in http.get(f"/{TENANT}/discovery/v2.0/keys").json()["keys"]]
    assert old_kid in kids
    assert new_kid in kids
    after = _secret_credential(emulator).get_token(ARM_SCOPE).token
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    _verify(emulator, before)
    _verify(emulator, after)
    emulator.request_json("DELETE", f"/_emulator/entra/keys/{old_kid}")  # retired: its tokens stop verifying
    with pytest.raises(jwt.PyJWKClientError):
        _verify(emulator, before)
    _verify(emulator, after)


def test_federated_client_assertion(emulator: EmulatorProcess) -> None:
    issuer, subject = "https://oidc.aks.example/issuer", "system:serviceaccount:rayplane:api"
    federated = {"client_id": CLIENT_ID, "issuer": issuer, "subject": subject}
    assertion = emulator.mint_token(TENANT, {"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange"})

    def credential() -> ClientAssertionCredential:
        return ClientAssertionCredential(
            TENANT,
            CLIENT_ID,
            lambda: assertion,
            authority=emulator.authority,
            disable_instance_discovery=True,
            connection_verify=str(emulator.ca_path),
        )

    with pytest.raises(ClientAuthenticationError, match="AADSTS70021"):
        credential().get_token(ARM_SCOPE)
    try:
        emulator.configure_entra(federated_credentials=[federated])
        assert _verify(emulator, credential().get_token(ARM_SCOPE).token)["azpacr"] == "2"
    finally:
        emulator.configure_entra(federated_credentials=[])


def test_device_code_flow_and_refresh(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_path))
    scopes = ["api://rayplane/access_as_user"]
    app = msal.PublicClientApplication(
        CLIENT_ID, authority=f"{emulator.origin}/{TENANT}", instance_discovery=False, verify=str(emulator.ca_path)
    )
    flow = app.initiate_device_flow(scopes=scopes)
    assert "user_code" in flow, flow
    user = str(uuid.uuid4())
    emulator.approve_device_code(flow["user_code"], {"oid": user, "preferred_username": "alice@contoso.test"})
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    claims = _verify(emulator, result["access_token"], audience="api://rayplane")
    assert (claims["oid"], claims["scp"], claims["azp"], claims["tid"]) == (user, "access_as_user", CLIENT_ID, TENANT)
    assert result["id_token_claims"]["aud"] == CLIENT_ID
    (account,) = app.get_accounts()
    refreshed = app.acquire_token_silent(scopes, account=account, force_refresh=True)
    assert refreshed is not None
    assert refreshed["access_token"] != result["access_token"]
    assert _verify(emulator, refreshed["access_token"], audience="api://rayplane")["oid"] == user


def test_state_survives_restart(tmp_path: Path) -> None:
    emu = EmulatorProcess(tmp_path / "azure").start()
    try:
        origin, ca = emu.origin, emu.ca_path
        assert ca is not None
        ca_pem = ca.read_bytes()
        minted = emu.mint_token(TENANT, {"oid": "before-restart"})
        emu.configure_entra(client_secret="rotated-secret")
        emu.restart()
        assert emu.origin == origin
        assert ca.read_bytes() == ca_pem
        assert _verify(emu, minted)["oid"] == "before-restart"
        with pytest.raises(ClientAuthenticationError):
            _secret_credential(emu).get_token(ARM_SCOPE)
        assert _verify(emu, _secret_credential(emu, "rotated-secret").get_token(ARM_SCOPE).token)["tid"] == TENANT
        with pytest.raises(EmulatorStartError):  # the port is taken: the harness reports the failure
            EmulatorProcess(tmp_path / "other", port=emu.port, startup_timeout=20).start()
    finally:
        assert emu.stop() is not None
    assert not emu.running


def test_plain_http_mode(tmp_path: Path) -> None:
    with EmulatorProcess(tmp_path / "azure", http=True) as emu:
        assert emu.origin.startswith("http://127.0.0.1:")
        assert emu.ca_path is None
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "emulator-secret"}
        with _client(emu) as http:
            answer = http.post(f"/{TENANT}/oauth2/v2.0/token", data={**form, "scope": ARM_SCOPE})
        assert answer.status_code == 200
        assert _verify(emu, answer.json()["access_token"])["iss"] == f"{emu.origin}/{TENANT}/v2.0"
