"""Shapes and helpers shared by the routers: pages, ETags, error docs, idempotent creates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import app_state, set_audit_target
from rayplane.common import idempotency
from rayplane.common.paging import DEFAULT_LIMIT, MAX_LIMIT
from rayplane.common.principal import Principal

T = TypeVar("T")


class ListPage(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null on the last page")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["https://rayplane.dev/problems/invalid-input"])
    title: str = Field(examples=["Invalid input"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["body.role: Input should be 'owner', 'admin', 'member' or 'viewer'"])
    instance: str | None = Field(default=None, examples=["/v1/api-keys"])
    errors: list[dict[str, str]] | None = Field(
        default=None,
        examples=[[{"field": "body.role", "message": "Input should be 'owner', 'admin', 'member' or 'viewer'"}]],
    )


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI response entries for the given error statuses (plus the ones every route has)."""
    described = {
        400: "Bad request",
        401: "Missing or invalid credentials",
        403: "The caller's role does not allow this",
        404: "No such resource in the caller's tenant",
        409: "Conflicts with the current state",
        412: "If-Match does not name the current ETag",
        413: "The body is over this endpoint's limit (see docs/operations.md)",
        415: "The body is not JSON",
        422: "Invalid input; errors[] names each field",
        429: "Too many requests; see Retry-After",
        500: "Internal error (no details leak)",
        503: "A service this request needs (e.g. the Azure Marketplace API) did not answer; retry later",
    }
    wanted = sorted({401, 429, 500, *codes})
    return {
        code: {"model": Problem, "description": described[code], "content": {"application/problem+json": {}}}
        for code in wanted
    }


Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Page size")
Cursor = Query(None, description="next_cursor from the previous page")


def with_etag(response: Response, etag: str) -> None:
    response.headers["ETag"] = etag


OMITTED_MARKER = "secret_omitted"


def without_secrets(payload: Any, secrets: tuple[str, ...]) -> Any:
    """``payload`` as it may be stored: each secret field set to null, ``secret_omitted`` true."""
    if not secrets or not isinstance(payload, dict):
        return payload
    return {**payload, **dict.fromkeys(secrets), OMITTED_MARKER: True}


async def idempotent_create(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    body: BaseModel,
    create: Callable[[], Awaitable[tuple[int, Any, dict[str, str]]]],
    *,
    authorize: Callable[[], None],
    target_type: str,
    secrets: tuple[str, ...] = (),
) -> JSONResponse:
    """Run ``create`` once per ``Idempotency-Key``; replay its stored answer afterwards.

    ``create`` returns ``(status, json-able body, headers)``. Without a key it simply runs.

    Contract:
    - ``authorize`` (the route's role rule, raising ``Forbidden``) runs before anything
      else, so a replay is never an answer the caller's role could not have had;
    - a stored answer is replayed only to the credential that made it (see
      ``rayplane.common.idempotency``), with ``Idempotent-Replayed: true``;
    - the fields named in ``secrets`` are never stored: the first answer carries them, a
      replay has them null and ``secret_omitted: true`` (the client lists or revokes the
      resource and creates a new one if it lost the secret);
    - the audit entry of a replay names the resource (``target_type`` and the stored body's
      ``id``) and says ``idempotent_replay``.
    """
    authorize()
    fingerprint = idempotency.request_fingerprint(request.method, request.url.path, body.model_dump(mode="json"))
    if key is not None:
        stored = await idempotency.begin(session, principal.tenant_id, key, fingerprint, principal.credential)
        if stored is not None:
            target_id = stored.body.get("id") if isinstance(stored.body, dict) else None
            detail: dict[str, Any] = {"idempotent_replay": True}
            if secrets:
                detail[OMITTED_MARKER] = True
            if isinstance(target_id, str):
                set_audit_target(request, target_type, target_id)
            request.state.audit_detail = detail
            headers = {**stored.headers, "Idempotent-Replayed": "true"}
            return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)
    status, payload, headers = await create()
    encoded = jsonable_encoder(payload)
    if key is not None:
        ttl = timedelta(hours=app_state(request).settings.idempotency_ttl_hours)
        await idempotency.remember(
            session,
            principal.tenant_id,
            key,
            fingerprint,
            principal.credential,
            idempotency.StoredResponse(status, without_secrets(encoded, secrets), headers),
            ttl,
        )
    return JSONResponse(encoded, status_code=status, headers=headers)


def _iso_only(value: object) -> object:
    """A time in a query must be written as one (ISO 8601), not as a bare number that
    pydantic would read as seconds since the epoch: the document says ``date-time``."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("a date-time such as 2026-12-01T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
