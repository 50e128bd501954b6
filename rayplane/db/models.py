"""Imports every model so that ``Base.metadata`` is complete (Alembic, tests)."""

from rayplane.audit.models import AuditEntry
from rayplane.billing.models import Budget, BudgetAlert, MeteringRecord, MeteringWatermark, UsageInterval
from rayplane.clouds.models import Cloud
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.common.models import IdempotencyRecord
from rayplane.db.base import Base
from rayplane.identity.models import ApiKey, Member
from rayplane.jobs.models import Job
from rayplane.marketplace.models import MarketplaceSubscription, WebhookEvent
from rayplane.tenants.models import Tenant

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "Budget",
    "BudgetAlert",
    "Cloud",
    "Cluster",
    "ClusterEvent",
    "IdempotencyRecord",
    "Job",
    "MarketplaceSubscription",
    "Member",
    "MeteringRecord",
    "MeteringWatermark",
    "Operation",
    "Tenant",
    "UsageInterval",
    "WebhookEvent",
]
