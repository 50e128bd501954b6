"""Application registrations of the emulated Entra, and how the token endpoint checks them.

An application is registered per tenant (``PUT /_emulator/entra/applications/{tenant}/{client_id}``)
with a display name and its credentials, as an app registration's "Certificates & secrets"
and "Federated credentials" blades hold them:

* client secrets, each with an optional expiry (``endDateTime``);
* certificates (PEM): a client assertion (``private_key_jwt``, what azure-identity's
  ``CertificateCredential`` sends) must be signed by one of them, found by its ``x5t#S256`` or
  ``x5t`` header;
* federated identity credentials (issuer, subject, audiences): an assertion from another
  issuer (workload identity, ``ClientAssertionCredential``) must match one of them exactly.

**Strict tenants.** A tenant is strict when the global ``strict`` switch of the Entra config
is on, or when it has at least one registered application. A strict tenant answers as Entra
does for a client it does not know. A tenant that is not strict keeps the emulator's old,
permissive behaviour (any client id with the config's one secret), so the existing tests and
the dev/demo setup, which never register an app, are unaffected; and because Rayplane's tests
use a fresh tenant id each, registering an app in one test never makes another's tenant strict.

Answers follow Entra's documented error codes (https://learn.microsoft.com/entra/identity-platform/reference-error-codes):

* unknown client id -> 400 ``unauthorized_client`` AADSTS700016;
* wrong secret -> 401 ``invalid_client`` AADSTS7000215;
* a secret that matches only expired ones -> 401 ``invalid_client`` AADSTS7000222;
* an assertion signed by no registered certificate -> 401 ``invalid_client`` AADSTS700027;
* no federated credential for the assertion's issuer / subject / audience -> 400
  ``invalid_request`` AADSTS700211 / AADSTS700213 / AADSTS700212 (workload identity
  federation: https://learn.microsoft.com/entra/workload-id/workload-identity-federation).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from emulators.azure.keys import atomic_write, object_id_for_client

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
_FIC_DOC = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"


class AppError(Exception):
    """A refusal of the token endpoint for a registered (or unknown) app: status, error, code, message."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status, self.error, self.code, self.message = status, error, code, message


class ClientSecret(BaseModel):
    """One password credential; ``end_date_time`` None never expires."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1)
    end_date_time: dt.datetime | None = None


class AppFederatedCredential(BaseModel):
    """One federated identity credential: assertions from ``issuer`` about ``subject``."""

    model_config = ConfigDict(extra="forbid")

    issuer: str
    subject: str
    audiences: list[str] = Field(default_factory=lambda: [EXCHANGE_AUDIENCE])


class Application(BaseModel):
    """Body of ``PUT /_emulator/entra/applications/{tenant}/{client_id}``."""

    model_config = ConfigDict(extra="forbid")

    display_name: str = "Rayplane emulator app"
    secrets: list[ClientSecret] = Field(default_factory=list)
    certificates: list[str] = Field(default_factory=list)
    federated_credentials: list[AppFederatedCredential] = Field(default_factory=list)
    #: Reply URLs the authorize endpoint redirects to; None accepts any https or loopback URI.
    redirect_uris: list[str] | None = None


class RegisteredApp(Application):
    """An application as stored and answered: with its ids and its service principal's object id
    (the ``oid`` of its app-only tokens, which ARM role assignments name)."""

    tenant: str
    client_id: str
    principal_id: str


def unknown_client(tenant: str, client_id: str) -> AppError:
    """Entra's AADSTS700016 for a client id not registered (or not consented) in ``tenant``."""
    message = (
        f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if "
        "the application has not been installed by the administrator of the tenant or consented to by any user "
        "in the tenant. You may have sent your authentication request to the wrong tenant."
    )
    return AppError(400, "unauthorized_client", 700016, message)


class AppRegistry:
    """Registered applications, persisted in ``DATA_DIR/entra/applications.json``."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "entra" / "applications.json"
        raw = json.loads(self._path.read_text()) if self._path.exists() else {}
        self._apps = {key: RegisteredApp.model_validate(value) for key, value in raw.items()}

    @staticmethod
    def _key(tenant: str, client_id: str) -> str:
        return f"{tenant.lower()}/{client_id.lower()}"

    def _save(self) -> None:
        body = {key: app.model_dump(mode="json") for key, app in self._apps.items()}
        atomic_write(self._path, json.dumps(body, indent=2).encode())

    def put(self, tenant: str, client_id: str, app: Application) -> RegisteredApp:
        """Register or replace ``client_id`` in ``tenant``; the stored registration."""
        registered = RegisteredApp(
            **app.model_dump(),
            tenant=tenant.lower(),
            client_id=client_id.lower(),
            principal_id=object_id_for_client(client_id),
        )
        self._apps[self._key(tenant, client_id)] = registered
        self._save()
        return registered

    def get(self, tenant: str, client_id: str) -> RegisteredApp | None:
        return self._apps.get(self._key(tenant, client_id))

    def delete(self, tenant: str, client_id: str) -> bool:
        """Remove a registration; whether it existed."""
        found = self._apps.pop(self._key(tenant, client_id), None) is not None
        if found:
            self._save()
        return found

    def in_tenant(self, tenant: str) -> list[RegisteredApp]:
        return [app for app in self._apps.values() if app.tenant == tenant.lower()]

    def has_apps(self, tenant: str) -> bool:
        """Whether ``tenant`` has any registration (which makes it strict)."""
        return any(app.tenant == tenant.lower() for app in self._apps.values())


def check_secret(app: RegisteredApp, secret: str, now: dt.datetime | None = None) -> None:
    """Accept ``secret`` if it is one of ``app``'s unexpired secrets; else Entra's refusal.

    A secret equal to an expired one is AADSTS7000222 (the admin must add a new one), any other
    is AADSTS7000215, as Entra distinguishes them.
    """
    now = now or dt.datetime.now(dt.UTC)
    expired = False
    for candidate in app.secrets:
        if hmac.compare_digest(candidate.value.encode(), secret.encode()):
            end = candidate.end_date_time
            if end is not None and (end if end.tzinfo else end.replace(tzinfo=dt.UTC)) <= now:
                expired = True
                continue
            return
    if expired:
        message = (
            f"The provided client secret keys for app '{app.client_id}' are expired. Visit the Azure portal to "
            "create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate "
            "credentials for added security: https://aka.ms/certCreds."
        )
        raise AppError(401, "invalid_client", 7000222, message)
    message = (
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
        f"not the client secret ID, for a secret added to app '{app.client_id}'."
    )
    raise AppError(401, "invalid_client", 7000215, message)


def check_federated(app: RegisteredApp, issuer: str, subject: str, audiences: set[str]) -> None:
    """Accept an assertion matching one of ``app``'s federated credentials (exact, case-sensitive
    comparison, as Entra does since 2024); else the code naming the first claim that matched none."""
    by_issuer = [fc for fc in app.federated_credentials if fc.issuer == issuer]
    if not by_issuer:
        message = (
            f"No matching federated identity record found for presented assertion issuer '{issuer}'. Please check "
            "your federated identity credential Subject, Audience and Issuer against the presented assertion. "
            f"{_FIC_DOC}"
        )
        raise AppError(400, "invalid_request", 700211, message)
    by_subject = [fc for fc in by_issuer if fc.subject == subject]
    if not by_subject:
        message = (
            f"No matching federated identity record found for presented assertion subject '{subject}'. Check your "
            f"federated identity credential Subject, Audience and Issuer against the presented assertion. {_FIC_DOC}"
        )
        raise AppError(400, "invalid_request", 700213, message)
    if not any(audiences & set(fc.audiences) for fc in by_subject):
        message = (
            f"No matching federated identity record found for presented assertion audience "
            f"'{' '.join(sorted(audiences))}'. Please check your federated identity credential Subject, Audience "
            f"and Issuer against the presented assertion. {_FIC_DOC}"
        )
        raise AppError(400, "invalid_request", 700212, message)
