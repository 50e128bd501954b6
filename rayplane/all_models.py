"""Imports every model so that ``Base.metadata`` is complete (Alembic, the processes, tests).

It sits above every noun (it imports them all) and nothing in the core imports it: only the
adapters' start-up code, the migrations and the tests do.
"""

from rayplane.audit.models import AuditEntry
from rayplane.billing.models import Budget, BudgetAlert, MeteringRecord, MeteringWatermark
from rayplane.clouds.models import Cloud
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.common.models import IdempotencyRecord
from rayplane.db.base import Base
from rayplane.identity.models import ApiKey, Member
from rayplane.jobs.models import Job
from rayplane.marketplace.models import MarketplaceSubscription, WebhookEvent
from rayplane.metrics.models import MetricPoint
from rayplane.tenants.models import Tenant
from rayplane.usage.models import UsageInterval

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
    "MetricPoint",
    "Operation",
    "Tenant",
    "UsageInterval",
    "WebhookEvent",
]
