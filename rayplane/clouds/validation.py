"""Checking that Rayplane can use a cloud, and recording the answer (sync; a worker task).

The check itself is the provider's ``check_access`` capability (for Azure: a real token for
the cloud's auth mode and a read of its AKS clusters); this module only reads the cloud,
asks, and records READY or ERROR with the cloud's code and what to do.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from rayplane.clouds import store
from rayplane.logs import get_logger
from rayplane.providers.base import Provider

log = get_logger("rayplane.clouds.validation")


def run_validation(sessions: sessionmaker[Session], providers: dict[str, Provider], cloud_id: str) -> str | None:
    """Check one cloud and record READY or ERROR; the new status (None if not found, or if
    no provider of its kind runs in this process).

    No transaction is open during the cloud calls. A cloud deleted meanwhile is left alone;
    a second concurrent run just writes the same kind of answer again.
    """
    with sessions() as session, session.begin():
        cloud = store.load(session, cloud_id)
        if cloud is None or cloud.provider not in providers:
            return None
        provider, config = providers[cloud.provider], dict(cloud.config)
    result = provider.check_access(config)
    with sessions() as session, session.begin():
        cloud = store.load(session, cloud_id, lock=True)
        if cloud is None:
            return None
        cloud.status = result.status
        cloud.status_reason = f"{result.code}: {result.reason}"[:500] if result.code else None
        cloud.ray_versions = result.ray_versions
    log.info("cloud_validated", cloud_id=cloud_id, status=result.status, code=result.code)
    return result.status
