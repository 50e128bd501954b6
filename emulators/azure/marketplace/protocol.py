"""What every Azure-facing Marketplace route shares: errors, request ids, api-version, auth.

* Errors are :class:`MarketplaceError`, answered as JSON ``{code, message, target, details?}``,
  the shape of the Marketplace's validation errors (metering docs; Microsoft's own
  SaaS API emulator answers the fulfillment routes the same way).
* Every answer carries ``x-ms-requestid`` and ``x-ms-correlationid``: the caller's, or fresh
  GUIDs, as the API documentation says.
* :func:`caller_dependency` checks, in this order: the bearer token (missing or invalid ->
  ``auth_error_status``, 401 by default), then ``api-version`` (missing or not ``2018-08-31``
  -> 400 ``ApiVersionUnspecified``/``UnsupportedApiVersion`` in ASP.NET's ``Error`` shape,
  as Microsoft's emulator reproduces it). Authentication first, so an anonymous caller learns
  nothing about the API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import jwt
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from emulators.azure.keys import KeyStore, issuer_for
from emulators.azure.marketplace.models import API_VERSION, MARKETPLACE_RESOURCE
from emulators.azure.marketplace.state import MarketplaceState


class MarketplaceError(Exception):
    """An error answer: HTTP ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status, self.body, self.headers = status, body, headers or {}


def error(
    status: int, code: str, message: str, target: str | None = None, details: list[dict[str, Any]] | None = None
) -> MarketplaceError:
    """A :class:`MarketplaceError` with the body ``{code, message, target, details?}``."""
    body: dict[str, Any] = {"code": code, "message": message, "target": target}
    if details is not None:
        body["details"] = details
    return MarketplaceError(status, body)


def not_found(subscription_id: str) -> MarketplaceError:
    return error(404, "EntityNotFound", f"Subscription {subscription_id} not found", "subscriptionId")


class MarketplaceRoute(APIRoute):
    """Adds the request-id headers to every answer and turns :class:`MarketplaceError` into JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except MarketplaceError as exc:
                response = JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
            for header in ("x-ms-requestid", "x-ms-correlationid"):
                response.headers[header] = request.headers.get(header) or str(uuid.uuid4())
            return response

        return route


async def read_json(request: Request, target: str) -> dict[str, Any]:
    """The JSON object in the body; 400 BadArgument when it is missing or not an object."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise error(400, "BadArgument", "The request content is not a JSON object.", target)
    return body


def _api_version_error(request: Request) -> MarketplaceError | None:
    version = request.query_params.get("api-version")
    if version is None:
        message = "An API version is required, but was not specified."
        return MarketplaceError(400, {"Error": {"Code": "ApiVersionUnspecified", "Message": message}})
    if version != API_VERSION:
        message = (
            f"The HTTP resource that matches the request URI '{request.url}' "
            f"does not support the API version '{version}'."
        )
        return MarketplaceError(400, {"Error": {"Code": "UnsupportedApiVersion", "Message": message}})
    return None


def caller_dependency(
    state: MarketplaceState, keys: KeyStore, origin: str
) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """A FastAPI dependency that authenticates the publisher and checks ``api-version``.

    The token must be an RS256 JWT signed by one of the emulator's Entra keys, unexpired,
    with ``aud`` = :data:`MARKETPLACE_RESOURCE` and ``iss`` = this emulator's issuer for its
    ``tid``: what the emulator's token endpoint issues for scope
    ``20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default``. With ``enforce_publisher_app`` its
    ``appid``/``azp`` and ``tid`` must also be the configured publisher's (else 403). Returns
    the token's claims.
    """

    def refuse(message: str, status: int | None = None) -> MarketplaceError:
        code = status or state.config.auth_error_status
        body = {"code": "Unauthorized" if code == 401 else "Forbidden", "message": message, "target": "authorization"}
        return MarketplaceError(code, body, {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    async def caller(request: Request) -> dict[str, Any]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise refuse("The authorization header is missing or is not a bearer token.")
        try:
            claims = keys.verify(token.strip(), audience=MARKETPLACE_RESOURCE)
        except (jwt.PyJWTError, ValueError) as exc:
            raise refuse(f"The access token is invalid: {exc}.") from None
        if claims.get("iss") != issuer_for(origin, str(claims.get("tid", ""))):
            raise refuse("The access token was not issued by this Entra ID.")
        config = state.config
        if config.enforce_publisher_app:
            app_id = claims.get("appid") or claims.get("azp")
            if app_id != config.publisher_app_id or claims.get("tid") != config.publisher_tenant:
                raise refuse("The application is not the publisher of this offer.", 403)
        version_error = _api_version_error(request)
        if version_error is not None:
            raise version_error
        return claims

    return caller
