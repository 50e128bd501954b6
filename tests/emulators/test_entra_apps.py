"""Registered applications in the emulated Entra: a tenant with apps (or a strict emulator)
answers as Entra does for an unknown client, a wrong or expired secret, an unregistered
certificate and an assertion no federated credential matches; other tenants stay permissive."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientAssertionCredential, ClientSecretCredential

from emulators.azure.entra_auth import DEFAULT_CLIENT_SECRET
from emulators.azure.keys import object_id_for_client
from emulators.azure.server import EmulatorProcess
from tests.emulators.test_entra import _self_signed, _verify

ARM_SCOPE = "https://management.azure.com/.default"


def _secret(emu: EmulatorProcess, tenant: str, client_id: str, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        tenant,
        client_id,
        secret,
        authority=emu.authority,
        disable_instance_discovery=True,
        connection_verify=str(emu.ca_path),
    )


def _post_token(emu: EmulatorProcess, tenant: str, form: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=emu.origin, verify=emu.ssl_context() or False, timeout=10) as http:
        return http.post(
            f"/{tenant}/oauth2/v2.0/token", data={"grant_type": "client_credentials", "scope": ARM_SCOPE, **form}
        )


@pytest.fixture
def tenant() -> str:
    return str(uuid.uuid4())


def test_registered_secret_works_and_the_tenant_becomes_strict(emulator: EmulatorProcess, tenant: str) -> None:
    app_id = str(uuid.uuid4())
    registered = emulator.register_application(tenant, app_id, display_name="rayplane", secrets=[{"value": "s3cret"}])
    assert registered["principal_id"] == object_id_for_client(app_id)
    claims = _verify(emulator, _secret(emulator, tenant, app_id, "s3cret").get_token(ARM_SCOPE).token, tenant=tenant)
    assert (claims["appid"], claims["oid"]) == (app_id, registered["principal_id"])

    # The emulator's shared secret no longer works for this app, nor for an unknown one here.
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        _secret(emulator, tenant, app_id, DEFAULT_CLIENT_SECRET).get_token(ARM_SCOPE)
    stranger = str(uuid.uuid4())
    r = _post_token(emulator, tenant, {"client_id": stranger, "client_secret": DEFAULT_CLIENT_SECRET})
    body = r.json()
    assert (r.status_code, body["error"], body["error_codes"]) == (400, "unauthorized_client", [700016])
    assert body["error_description"].startswith(f"AADSTS700016: Application with identifier '{stranger}' was not found")
    assert "Trace ID: " in body["error_description"]
    assert "Correlation ID: " in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()

    # Another tenant, with no apps, is as permissive as before.
    other = str(uuid.uuid4())
    assert _secret(emulator, other, stranger, DEFAULT_CLIENT_SECRET).get_token(ARM_SCOPE).token

    emulator.delete_application(tenant, app_id)
    assert _secret(emulator, tenant, stranger, DEFAULT_CLIENT_SECRET).get_token(ARM_SCOPE).token


def test_an_expired_secret_is_aadsts7000222(emulator: EmulatorProcess, tenant: str) -> None:
    app_id = str(uuid.uuid4())
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    secrets = [{"value": "old", "end_date_time": past}, {"value": "new", "end_date_time": future}]
    emulator.register_application(tenant, app_id, secrets=secrets)
    r = _post_token(emulator, tenant, {"client_id": app_id, "client_secret": "old"})
    assert (r.status_code, r.json()["error"], r.json()["error_codes"]) == (401, "invalid_client", [7000222])
    assert f"client secret keys for app '{app_id}' are expired" in r.json()["error_description"]
    assert _secret(emulator, tenant, app_id, "new").get_token(ARM_SCOPE).token


def test_certificate_credential_must_use_a_registered_certificate(emulator: EmulatorProcess, tenant: str) -> None:
    app_id = str(uuid.uuid4())
    key_pem, cert_pem = _self_signed("app")
    _, other_pem = _self_signed("other")

    def credential() -> CertificateCredential:
        return CertificateCredential(
            tenant,
            app_id,
            certificate_data=key_pem + cert_pem,
            authority=emulator.authority,
            disable_instance_discovery=True,
            connection_verify=str(emulator.ca_path),
        )

    emulator.register_application(tenant, app_id, certificates=[other_pem.decode()])
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        credential().get_token(ARM_SCOPE)
    emulator.register_application(tenant, app_id, certificates=[other_pem.decode(), cert_pem.decode()])
    assert _verify(emulator, credential().get_token(ARM_SCOPE).token, tenant=tenant)["azpacr"] == "2"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda fic: {**fic, "issuer": "https://elsewhere.example"}, "AADSTS700211"),
        (lambda fic: {**fic, "subject": "system:serviceaccount:other:sa"}, "AADSTS700213"),
        (lambda fic: {**fic, "audiences": ["api://SomethingElse"]}, "AADSTS700212"),
        (lambda fic: fic, None),
    ],
)
def test_federated_credentials_match_issuer_subject_and_audience(
    emulator: EmulatorProcess, tenant: str, change: Callable[[dict[str, Any]], dict[str, Any]], code: str | None
) -> None:
    app_id = str(uuid.uuid4())
    fic: dict[str, Any] = {"issuer": "https://oidc.example/issuer", "subject": "system:serviceaccount:rp:worker"}
    assertion = emulator.mint_token(
        tenant, {"iss": fic["issuer"], "sub": fic["subject"], "aud": "api://AzureADTokenExchange"}
    )
    emulator.register_application(tenant, app_id, federated_credentials=[change(fic)])
    credential = ClientAssertionCredential(
        tenant,
        app_id,
        lambda: assertion,
        authority=emulator.authority,
        disable_instance_discovery=True,
        connection_verify=str(emulator.ca_path),
    )
    if code is None:
        assert credential.get_token(ARM_SCOPE).token
    else:
        with pytest.raises(ClientAuthenticationError, match=code):
            credential.get_token(ARM_SCOPE)


def test_global_strict_switch_refuses_unregistered_clients_everywhere(fresh_emulator: EmulatorProcess) -> None:
    tenant, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert fresh_emulator.configure_entra()["strict"] is False  # the default
    fresh_emulator.configure_entra(strict=True)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        _secret(fresh_emulator, tenant, app_id, DEFAULT_CLIENT_SECRET).get_token(ARM_SCOPE)
    fresh_emulator.register_application(tenant, app_id, secrets=[{"value": "x"}])
    fresh_emulator.restart()  # registrations and the switch persist
    assert (
        fresh_emulator.request_json("GET", f"/_emulator/entra/applications/{tenant}")["value"][0]["client_id"] == app_id
    )
    assert _secret(fresh_emulator, tenant, app_id, "x").get_token(ARM_SCOPE).token
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        _secret(fresh_emulator, str(uuid.uuid4()), app_id, "x").get_token(ARM_SCOPE)


def test_a_strict_tenant_refuses_a_device_code_for_an_unknown_client(emulator: EmulatorProcess, tenant: str) -> None:
    emulator.register_application(tenant, str(uuid.uuid4()))
    with httpx.Client(base_url=emulator.origin, verify=emulator.ssl_context() or False, timeout=10) as http:
        unknown = http.post(
            f"/{tenant}/oauth2/v2.0/devicecode", data={"client_id": str(uuid.uuid4()), "scope": "openid"}
        )
        assert (unknown.status_code, unknown.json()["error_codes"]) == (400, [700016])
        elsewhere = http.post(
            f"/{uuid.uuid4()}/oauth2/v2.0/devicecode", data={"client_id": str(uuid.uuid4()), "scope": "openid"}
        )
        assert elsewhere.status_code == 200
