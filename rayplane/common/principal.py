"""Roles and the authenticated caller."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rayplane.common.errors import Forbidden


class Role(enum.StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


@dataclass(frozen=True)
class Principal:
    """Who is calling: always bound to exactly one tenant, taken from the credential."""

    tenant_id: str
    role: Role
    actor_type: str  # "member" | "api_key"
    actor_id: str
    member_id: str | None = None
    api_key_id: str | None = None

    @property
    def credential(self) -> str:
        """The credential that authenticated this call: ``api_key:<key id>`` for an API key,
        ``member:<member id>`` for an Entra token (the member its ``oid`` maps to)."""
        return f"{self.actor_type}:{self.actor_id}"

    def require(self, role: Role) -> None:
        """Raise ``Forbidden`` unless the caller holds at least ``role``."""
        if not self.role.at_least(role):
            raise Forbidden(f"this action needs the {role.value} role; the caller is {self.role.value}")
