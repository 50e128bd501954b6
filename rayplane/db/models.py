"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from rayplane.audit.models import AuditEntry
from rayplane.common.models import IdempotencyRecord
from rayplane.db.base import Base
from rayplane.identity.models import ApiKey, Member
from rayplane.tenants.models import Tenant

__all__ = ["ApiKey", "AuditEntry", "Base", "IdempotencyRecord", "Member", "Tenant"]
