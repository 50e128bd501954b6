"""SQL on ``clouds`` for the worker side (sync sessions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rayplane.clouds.models import Cloud


def ready_clouds(session: Session, provider: str) -> list[tuple[str, dict[str, Any]]]:
    """(id, config) of every READY cloud of ``provider``."""
    stmt = select(Cloud.id, Cloud.config).where(Cloud.provider == provider, Cloud.status == "READY")
    return [(cloud_id, dict(config)) for cloud_id, config in session.execute(stmt)]


def load(session: Session, cloud_id: str, *, lock: bool = False) -> Cloud | None:
    return session.get(Cloud, cloud_id, with_for_update=lock)
