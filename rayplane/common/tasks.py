"""The names of the worker tasks: the contract between the API's nudges, the beat schedule
and the task modules. One place, so a renamed task cannot leave a sender behind."""

from __future__ import annotations

import enum


class TaskName(enum.StrEnum):
    RECONCILE = "rayplane.clusters.reconcile"
    SWEEP = "rayplane.clusters.sweep"
    VALIDATE_CLOUD = "rayplane.clouds.validate"
    GC_POOLS = "rayplane.clouds.gc_pools"
    PROCESS_MARKETPLACE_EVENT = "rayplane.marketplace.process_event"
    SWEEP_MARKETPLACE_EVENTS = "rayplane.marketplace.sweep_events"
    CLOSE_EXPIRED_TENANTS = "rayplane.marketplace.close_expired"
    METER = "rayplane.billing.meter"
    CHECK_BUDGETS = "rayplane.billing.check_budgets"
    PURGE_IDEMPOTENCY_RECORDS = "rayplane.maintenance.purge_idempotency_records"
    SCRAPE_METRICS = "rayplane.metrics.scrape"
    METRICS_UPKEEP = "rayplane.metrics.upkeep"
    PURGE_OLD_LOGS = "rayplane.maintenance.purge_old_logs"
