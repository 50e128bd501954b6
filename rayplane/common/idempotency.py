"""``Idempotency-Key`` on create requests.

Contract: for one tenant and key, the first request that commits fixes the answer and the
credential it is kept for. A later request from that same credential with the same method,
path and body gets that answer back; one with anything different, or from another
credential of the tenant, is refused (``InvalidInput`` on ``header.Idempotency-Key``), so a
key never lets one caller read another's answer. The caller stores answers without their
secrets (``api.common.idempotent_create``); this module never sees one.

Race: two concurrent requests with one key are serialised by a transaction-scoped advisory
lock taken in ``begin``; the second waits until the first commits or rolls back, then
either replays the stored answer or proceeds as the first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import InvalidInput
from rayplane.common.models import IdempotencyRecord

MAX_KEY_LENGTH = 255
FIELD = "header.Idempotency-Key"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any
    headers: dict[str, str]


def request_fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def begin(
    session: AsyncSession, tenant_id: str, key: str, fingerprint: str, credential: str
) -> StoredResponse | None:
    """Lock the key for this transaction; the stored answer to replay, or ``None`` to proceed.

    The credential is compared before the request: another credential learns nothing about
    what the key was used for."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput.on(FIELD, f"1 to {MAX_KEY_LENGTH} printable characters")
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"idem:{tenant_id}:{key}"}
    )
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.tenant_id == tenant_id,
        IdempotencyRecord.key == key,
        IdempotencyRecord.expires_at > func.now(),
    )
    record = (await session.execute(stmt)).scalar_one_or_none()
    if record is None:
        return None
    if record.credential != credential:
        raise InvalidInput.on(
            FIELD, "this key was already used by another credential of this tenant; each credential needs its own keys"
        )
    if record.request_hash != fingerprint:
        raise InvalidInput.on(FIELD, "this key was already used with a different request; use a new key")
    return StoredResponse(record.status_code, record.body, dict(record.headers))


async def remember(
    session: AsyncSession,
    tenant_id: str,
    key: str,
    fingerprint: str,
    credential: str,
    response: StoredResponse,
    ttl: timedelta,
) -> None:
    """Store the answer in the same transaction as the change it answers."""
    now = datetime.now(UTC)
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key)
    )
    session.add(
        IdempotencyRecord(
            tenant_id=tenant_id,
            key=key,
            request_hash=fingerprint,
            credential=credential,
            status_code=response.status_code,
            body=response.body,
            headers=response.headers,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    await session.flush()
