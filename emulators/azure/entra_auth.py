"""Client authentication at the emulated Entra token endpoint, and Entra's error answers.

What is accepted comes from :class:`EntraConfig`, persisted in ``DATA_DIR/entra/config.json``:

* ``client_secret`` (default ``emulator-secret``) for any client id, in the form body
  (``client_secret_post``) or an ``Authorization: Basic`` header (``client_secret_basic``).
* A client assertion (``private_key_jwt``) whose ``iss`` and ``sub`` are the client id and whose
  ``aud`` is this tenant's token endpoint: what ``CertificateCredential`` and MSAL send. Its
  signature is checked only when ``client_certificates`` registers certificates for that
  client (matched by the ``x5t#S256`` or ``x5t`` header); otherwise a well-formed, unexpired
  JWT is enough. A malformed one is refused.
* A federated assertion (``ClientAssertionCredential``, workload identity) matching one of
  ``federated_credentials`` by client id, issuer, subject and audience. Its signature is
  checked when its ``kid`` is one of the emulator's own keys.

Registered applications (:mod:`emulators.azure.entra_apps`) take precedence: a client
registered in the tenant is checked against its own secrets, certificates and federated
credentials only, and a strict tenant (``strict`` here, or any registered app) refuses
clients it does not know with AADSTS700016.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jwt
from cryptography import x509
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from emulators.azure.entra_apps import (
    AppError,
    AppRegistry,
    RegisteredApp,
    check_federated,
    check_secret,
    unknown_client,
)
from emulators.azure.keys import (
    KeyStore,
    atomic_write,
    certificate_thumbprint,
)

DEFAULT_CLIENT_SECRET = "emulator-secret"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
CLOCK_SKEW_SECONDS = 300


class EntraError(Exception):
    """An OAuth error answered the way Entra does (HTTP status, ``error``, AADSTS code)."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status, self.error, self.code, self.message = status, error, code, message

    def response(self, correlation_id: str) -> JSONResponse:
        """Entra's error body: error, error_description, error_codes, timestamp, ids."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace = str(uuid.uuid4())
        description = (
            f"AADSTS{self.code}: {self.message} Trace ID: {trace} Correlation ID: {correlation_id} Timestamp: {stamp}"
        )
        body = {
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation_id,
        }
        return JSONResponse(body, status_code=self.status)


def missing_parameter(name: str) -> EntraError:
    """Entra's answer to a request body without the parameter ``name``."""
    message = f"The request body must contain the following parameter: '{name}'."
    return EntraError(400, "invalid_request", 900144, message)


def _malformed() -> EntraError:
    return EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.")


def _bad_signature() -> EntraError:
    message = "Client assertion failed signature validation."
    return EntraError(401, "invalid_client", 700027, message)


class FederatedCredential(BaseModel):
    """A federated identity credential: assertions from ``issuer`` about ``subject``."""

    client_id: str
    issuer: str
    subject: str
    audiences: list[str] = Field(default_factory=lambda: [EXCHANGE_AUDIENCE])


class EntraConfig(BaseModel):
    """What the token endpoint accepts. ``client_certificates`` maps a client id to PEM
    certificates; when a client has some, its assertions must be signed by one of them."""

    client_secret: str = DEFAULT_CLIENT_SECRET
    client_certificates: dict[str, list[str]] = Field(default_factory=dict)
    federated_credentials: list[FederatedCredential] = Field(default_factory=list)
    device_code_interval: int = 5
    #: Every tenant refuses unregistered clients (AADSTS700016), not only tenants with apps.
    strict: bool = False


class ConfigUpdate(BaseModel):
    """Body of ``POST /_emulator/entra/config``: the fields given replace the current ones."""

    model_config = ConfigDict(extra="forbid")

    client_secret: str | None = None
    client_certificates: dict[str, list[str]] | None = None
    federated_credentials: list[FederatedCredential] | None = None
    device_code_interval: int | None = None
    strict: bool | None = None


def _as_entra(exc: AppError) -> EntraError:
    return EntraError(exc.status, exc.error, exc.code, exc.message)


class ClientAuthenticator:
    """Checks the client credentials of token requests against the persisted config."""

    def __init__(self, data_dir: Path, keys: KeyStore) -> None:
        self._keys = keys
        self._path = data_dir / "entra" / "config.json"
        self.apps = AppRegistry(data_dir)
        self.config = EntraConfig.model_validate_json(self._path.read_text()) if self._path.exists() else EntraConfig()

    def update(self, update: ConfigUpdate) -> EntraConfig:
        """Apply ``update``, persist it, return the whole new config."""
        merged = self.config.model_dump() | update.model_dump(exclude_none=True)
        self.config = EntraConfig.model_validate(merged)
        atomic_write(self._path, self.config.model_dump_json(indent=2).encode())
        return self.config

    def strict(self, tenant: str) -> bool:
        """Whether ``tenant`` refuses clients it has no registration for."""
        return self.config.strict or self.apps.has_apps(tenant)

    def registered(self, tenant: str, client_id: str) -> RegisteredApp | None:
        """The registration of ``client_id``; None in a permissive tenant; AADSTS700016 in a strict one."""
        app = self.apps.get(tenant, client_id)
        if app is None and self.strict(tenant):
            raise _as_entra(unknown_client(tenant, client_id))
        return app

    def authenticate(
        self, tenant: str, form: Mapping[str, str], authorization: str | None, *, required: bool
    ) -> tuple[str, str] | None:
        """(client_id, azpacr) of the client proven by ``form``/``authorization``.

        ``azpacr`` is ``"1"`` for a secret and ``"2"`` for an assertion. Without any client
        credential this returns None, or raises ``invalid_client`` when ``required``.
        """
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise EntraError(400, "invalid_request", 900144, "Malformed Basic header.") from None
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise missing_parameter("client_assertion_type")
            return self._check_assertion(tenant, assertion, client_id), "2"
        if secret is not None:
            if not client_id:
                raise missing_parameter("client_id")
            app = self.registered(tenant, client_id)
            if app is not None:
                try:
                    check_secret(app, secret)
                except AppError as exc:
                    raise _as_entra(exc) from None
                return client_id, "1"
            if not hmac.compare_digest(secret.encode(), self.config.client_secret.encode()):
                message = (
                    "Invalid client secret provided. Ensure the secret being sent in the request"
                    " is the client secret value, not the client secret ID, for a secret added"
                    f" to app '{client_id}'."
                )
                raise EntraError(401, "invalid_client", 7000215, message)
            return client_id, "1"
        if required:
            message = "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
            raise EntraError(401, "invalid_client", 7000218, message)
        return None

    def _check_assertion(self, tenant: str, assertion: str, client_id: str | None) -> str:
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _malformed() from None
        iss, sub, aud, exp = (claims.get(c) for c in ("iss", "sub", "aud", "exp"))
        if not (isinstance(iss, str) and isinstance(sub, str) and isinstance(exp, int | float)):
            raise _malformed()
        if not (isinstance(aud, str) or (isinstance(aud, list) and aud)):
            raise _malformed()
        now = time.time()
        nbf = claims.get("nbf", now)
        early = isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW_SECONDS
        if exp < now - CLOCK_SKEW_SECONDS or early:
            message = "Client assertion is not within its valid time range."
            raise EntraError(401, "invalid_client", 700024, message)
        audiences = {aud} if isinstance(aud, str) else {str(a) for a in aud}
        client_id = client_id or iss
        app = self.registered(tenant, client_id)
        if iss == sub == client_id:
            token_path = f"/{tenant}/oauth2/v2.0/token"
            if not any(urlparse(a).path.lower() == token_path for a in audiences):
                message = f"The client assertion's audience must be the token endpoint {token_path}."
                raise EntraError(401, "invalid_client", 50013, message)
            self._verify_certificate(assertion, header, client_id, app)
            return client_id
        if app is not None:
            try:
                check_federated(app, iss, sub, audiences)
            except AppError as exc:
                raise _as_entra(exc) from None
        elif not any(
            fc.client_id == client_id and fc.issuer == iss and fc.subject == sub and audiences & set(fc.audiences)
            for fc in self.config.federated_credentials
        ):
            if iss == sub:
                message = "Client assertion application identifier doesn't match 'client_id'."
                raise EntraError(401, "invalid_client", 700021, message)
            message = f"No matching federated identity record found for assertion issuer '{iss}'."
            raise EntraError(401, "invalid_client", 70021, message)
        if header.get("kid") in self._keys.kids():
            try:
                self._keys.verify(assertion)
            except jwt.PyJWTError:
                raise _bad_signature() from None
        return client_id

    def _verify_certificate(
        self, assertion: str, header: Mapping[str, Any], client_id: str, app: RegisteredApp | None
    ) -> None:
        """Check the signature against the registered app's certificates (none registered: no
        certificate can match), else the config's certificates for ``client_id``, if any."""
        pems = app.certificates if app is not None else self.config.client_certificates.get(client_id)
        if not pems and app is None:
            return
        for pem in pems or []:
            cert = x509.load_pem_x509_certificate(pem.encode())
            # MSAL pads its base64url thumbprints; RFC 7515 does not: compare without padding.
            thumbprints = (
                str(header.get("x5t#S256", "")).rstrip("=") == certificate_thumbprint(cert, "sha256"),
                str(header.get("x5t", "")).rstrip("=") == certificate_thumbprint(cert),
            )
            if not any(thumbprints):
                continue
            try:
                jwt.decode(
                    assertion,
                    cert.public_key(),  # type: ignore[arg-type]
                    algorithms=["RS256", "PS256"],
                    options={"verify_aud": False},
                )
            except jwt.PyJWTError:
                raise _bad_signature() from None
            return
        message = "The certificate used to sign the client assertion is not registered on the app."
        raise EntraError(401, "invalid_client", 700027, message)
