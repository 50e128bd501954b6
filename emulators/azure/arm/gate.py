"""What ARM does to every request before a resource provider sees it.

In order: count the request, add the configured latency, authenticate the bearer token,
check ``api-version``, then maybe inject a throttle or server error. Authentication comes
before faults because ARM throttles per authenticated caller; a fault is decided before the
handler runs, so a retried write never finds its first attempt half-applied.

Authentication (answers as ARM does, with a ``WWW-Authenticate`` challenge):

* no ``Authorization: Bearer`` -> 401 ``AuthenticationFailed``;
* not signed by a key the emulator's Entra publishes, or malformed -> 401 ``InvalidAuthenticationToken``;
* expired -> 401 ``ExpiredAuthenticationToken``;
* ``aud`` other than Azure Resource Manager's -> 401 ``InvalidAuthenticationTokenAudience``.

api-version: missing -> 400 ``MissingApiVersionParameter``; not a date-shaped version -> 400
``InvalidApiVersionParameter``; a well-formed one this surface does not serve -> 400
``NoRegisteredProviderFound`` listing the supported versions (Azure/azure-cli#28368).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from typing import Any

import jwt
from fastapi import Request

from emulators.azure.arm.admin import AdminState
from emulators.azure.arm.errors import ArmError
from emulators.azure.arm.versions import API_VERSIONS
from emulators.azure.keys import KeyStore

#: Audiences ARM accepts (the v2 endpoint issues the first for ``https://management.azure.com/.default``).
ARM_AUDIENCES = frozenset(
    {
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.core.windows.net",
        "https://management.core.windows.net/",
    }
)
_API_VERSION_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_random = secrets.SystemRandom()


def _challenge(origin: str, description: str) -> dict[str, str]:
    value = f'Bearer authorization_uri="{origin}/common", error="invalid_token", error_description="{description}"'
    return {"WWW-Authenticate": value}


def authenticate(request: Request, keys: KeyStore, origin: str) -> dict[str, Any]:
    """The verified claims of the request's ARM bearer token, or an :class:`ArmError` (401)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        description = "The authentication failed because of missing 'Authorization' header."
        message = "Authentication failed. The 'Authorization' header is missing."
        raise ArmError(401, "AuthenticationFailed", message, headers=_challenge(origin, description))
    try:
        claims = keys.verify(token.strip())
    except jwt.ExpiredSignatureError:
        message = "The access token expiry UTC time is earlier than current UTC time."
        raise ArmError(401, "ExpiredAuthenticationToken", message, headers=_challenge(origin, message)) from None
    except (jwt.InvalidTokenError, ValueError, KeyError):
        message = "The access token is invalid."
        raise ArmError(401, "InvalidAuthenticationToken", message, headers=_challenge(origin, message)) from None
    audience = claims.get("aud")
    if audience not in ARM_AUDIENCES:
        message = (
            f"The access token has been obtained for wrong audience or resource '{audience}'. It should exactly "
            f"match with one of the allowed audiences {', '.join(repr(a) for a in sorted(ARM_AUDIENCES))}."
        )
        raise ArmError(401, "InvalidAuthenticationTokenAudience", message, headers=_challenge(origin, message))
    return claims


def api_version(request: Request, resource_type: str, served: tuple[str, ...] | None = API_VERSIONS) -> str:
    """The request's api-version if this surface serves it (any well-formed one when ``served``
    is None, for the Microsoft.Resources types); 400 otherwise."""
    version = request.query_params.get("api-version")
    if not version:
        message = "The api-version query parameter (?api-version=) is required for all requests."
        raise ArmError(400, "MissingApiVersionParameter", message)
    if not _API_VERSION_SHAPE.match(version):
        message = f"The api-version '{version}' is invalid. The supported versions are '{', '.join(API_VERSIONS)}'."
        raise ArmError(400, "InvalidApiVersionParameter", message)
    if served is not None and version not in served:
        message = (
            f"No registered resource provider found for location 'global' and API version '{version}' for type "
            f"'{resource_type}'. The supported api-versions are '{', '.join(API_VERSIONS)}'."
        )
        raise ArmError(400, "NoRegisteredProviderFound", message)
    return version


async def delay(admin: AdminState) -> None:
    """The configured per-request latency."""
    if admin.config.latency_ms:
        await asyncio.sleep(admin.config.latency_ms / 1000)


def maybe_fault(admin: AdminState, method: str, subscription: str, claims: dict[str, Any]) -> None:
    """Raise an injected 429 or 5xx on the configured fraction of requests."""
    config = admin.config
    if config.rate_429 and _random.random() < config.rate_429:
        admin.counters.faults["429"] += 1
        kind = "read" if method == "GET" else "write"
        message = (
            f"Number of '{kind}' requests for subscription '{subscription}' actor '{claims.get('oid', '')}' "
            f"exceeded. Please try again after '{config.throttle_retry_after}' seconds after additional tokens "
            "are available. Refer to https://aka.ms/arm-throttling for additional information."
        )
        headers = {"Retry-After": str(config.throttle_retry_after)}
        raise ArmError(429, "SubscriptionRequestsThrottled", message, headers=headers)
    if config.rate_5xx and _random.random() < config.rate_5xx:
        admin.counters.faults["5xx"] += 1
        tracking = uuid.uuid4()
        if _random.random() < 0.5:
            message = f"Encountered internal server error. Diagnostic information: tracking id '{tracking}'."
            raise ArmError(500, "InternalServerError", message)
        message = f"The service is temporarily unavailable. Please try again later. Tracking id '{tracking}'."
        raise ArmError(503, "ServiceUnavailable", message)
