"""First start in dev mode: a ``dev`` tenant with an owner API key, written to ``dev.env``.

Contract: idempotent across restarts. When the tenant exists and ``dev.env`` still holds a
key that authenticates, nothing changes. Otherwise a new owner key is minted, printed once
by the caller, and ``dev.env`` is rewritten with mode 0600.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.common.errors import Unauthenticated
from rayplane.common.principal import Principal, Role
from rayplane.identity.auth import authenticate_api_key
from rayplane.identity.service import create_api_key
from rayplane.tenants.repository import TenantRepository
from rayplane.tenants.service import create_tenant

DEV_TENANT = "dev"


@dataclass(frozen=True)
class BootstrapResult:
    tenant_id: str
    new_key: str | None  # set only when a key was minted now


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in values.items()))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


async def ensure_dev_tenant(session: AsyncSession, hashing_key: bytes, env_file: Path, api_url: str) -> BootstrapResult:
    tenant = await TenantRepository(session).get_by_name(DEV_TENANT)
    if tenant is None:
        tenant = await create_tenant(session, name=DEV_TENANT, display_name="Development")
    existing = read_env_file(env_file).get("RAYPLANE_API_KEY")
    if existing:
        try:
            principal = await authenticate_api_key(session, existing, hashing_key)
            if principal.tenant_id == tenant.id:
                write_env_file(env_file, {"RAYPLANE_API_URL": api_url, "RAYPLANE_API_KEY": existing})
                return BootstrapResult(tenant.id, None)
        except Unauthenticated:
            pass
    system = Principal(tenant_id=tenant.id, role=Role.OWNER, actor_type="system", actor_id="system:bootstrap")
    _, raw = await create_api_key(session, system, hashing_key, name="dev owner key", role=Role.OWNER)
    write_env_file(env_file, {"RAYPLANE_API_URL": api_url, "RAYPLANE_API_KEY": raw})
    return BootstrapResult(tenant.id, raw)
