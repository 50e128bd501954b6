"""SQL for metering (worker side, sync sessions): aggregate, claim, expire, and the run lock.

Aggregation is one ``INSERT … SELECT … ON CONFLICT DO NOTHING``: every usage interval of a
tenant with a Subscribed or Suspended Marketplace subscription is split across the UTC hours
it overlaps (``generate_series`` per interval), each piece weighted by its share of the hour,
summed per (subscription, hour) as vCPU-hours and GPU-hours, unpivoted into one row per
dimension the plan bills, and inserted. The unique (subscription, dimension, hour) key makes
a second run, or a concurrent one, insert nothing for an hour already computed.

Which hours: ``[lo, hi)``, hour-aligned. ``hi`` is the start of the newest hour that ended at
least ``delay`` ago, so a reconcile pass that began before the hour's end has committed its
intervals; an open interval counts up to ``hi`` only, and its part before ``hi`` can no longer
change (intervals are closed at the time of a later observation, never earlier). Usage before
the subscription row was created (before the purchase was activated) is not metered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from rayplane.billing.models import MeteringRecord, MeteringWatermark
from rayplane.marketplace.models import MarketplaceSubscription

OPEN_STATUSES = ("pending", "submitted")
_OPEN = text("metering_records.status IN ('pending', 'submitted')")  # literal: matches the partial index
_LOCK_KEY = 7_271_183  # pg advisory lock: one metering run at a time (migrations use 7271182)
Key = tuple[str, datetime, str]  # (subscription id, hour, dimension): a record's primary key

_AGGREGATE = text(
    """
    WITH subs AS (
        -- At most one non-Unsubscribed subscription per tenant (a partial unique index).
        SELECT id, tenant_id, plan_id, created_at
        FROM marketplace_subscriptions
        WHERE status IN ('Subscribed', 'Suspended')
          AND (CAST(:parts AS int) = 1
               OR mod(hashtext(tenant_id)::bigint + 2147483648, CAST(:parts AS int)) = CAST(:part AS int))
    ),
    pieces AS (
        -- float8 seconds (date_part): several times faster to sum than numeric; rounded once below.
        SELECT s.id AS subscription_id, s.tenant_id, s.plan_id, h.hour, u.vcpus, u.gpus,
               u.node_count * date_part('epoch',
                   least(coalesce(u.ended_at, :hi), h.hour + interval '1 hour')
                   - greatest(u.started_at, s.created_at, h.hour)) AS node_seconds
        FROM usage_intervals u
        JOIN subs s ON s.tenant_id = u.tenant_id
        CROSS JOIN LATERAL generate_series(
            date_trunc('hour', greatest(u.started_at, s.created_at, :lo) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
            least(coalesce(u.ended_at, :hi), :hi) - interval '1 microsecond',
            interval '1 hour'
        ) AS h(hour)
        WHERE u.started_at < :hi
          AND (u.ended_at IS NULL OR u.ended_at > greatest(:lo, s.created_at))
    ),
    hours AS (
        SELECT subscription_id, tenant_id, plan_id, hour,
               round((sum(node_seconds * vcpus) / 3600)::numeric, 6) AS vcpu_hours,
               round((sum(node_seconds * gpus) / 3600)::numeric, 6) AS gpu_hours
        FROM pieces
        GROUP BY subscription_id, tenant_id, plan_id, hour
    ),
    quantities AS (
        SELECT h.tenant_id, h.subscription_id, h.plan_id, d.dimension, h.hour, d.quantity
        FROM hours h
        CROSS JOIN LATERAL (VALUES ('vcpu_hours', h.vcpu_hours), ('gpu_hours', h.gpu_hours)) AS d(dimension, quantity)
        WHERE d.quantity > 0
          AND coalesce(CAST(:plans AS jsonb) -> h.plan_id, CAST(:default_dimensions AS jsonb)) ? d.dimension
    ),
    inserted AS (
        INSERT INTO metering_records (subscription_id, hour, dimension, tenant_id, plan_id, quantity,
                                      status, reason, attempts, resolved_at, created_at, updated_at)
        SELECT subscription_id, hour, dimension, tenant_id, plan_id, quantity,
               CASE WHEN :dry_run THEN 'dry_run' WHEN hour < :expired_before THEN 'expired' ELSE 'pending' END,
               CASE WHEN NOT :dry_run AND hour < :expired_before
                    THEN 'more than 24 hours old when first computed; the Marketplace no longer accepts it' END,
               0, CASE WHEN NOT :dry_run AND hour < :expired_before THEN now() END, now(), now()
        FROM quantities
        ON CONFLICT (subscription_id, hour, dimension) DO NOTHING
        RETURNING status, tenant_id, subscription_id, dimension, hour, quantity
    )
    -- Counts per status; the (rare) rows born expired in full, for their alerts.
    SELECT status, count(*) AS n,
           jsonb_agg(jsonb_build_object('tenant_id', tenant_id, 'subscription_id', subscription_id,
                                        'dimension', dimension, 'hour', hour, 'quantity', quantity)
                     ORDER BY hour, subscription_id, dimension) FILTER (WHERE status = 'expired') AS expired
    FROM inserted
    GROUP BY status
    """
)


@dataclass(frozen=True)
class Aggregated:
    """What one aggregation inserted: a count per status, and the rows born ``expired``
    (dicts of tenant_id, subscription_id, dimension, hour, quantity) for their alerts."""

    counts: dict[str, int]
    expired: list[dict[str, Any]]


# For this one batch statement: enough memory to hash the (subscription, hour) groups and
# sort the output without spilling, and no JIT, whose compile time (~1 s) the planner pays
# because it estimates 1000 rows per generate_series call where there are one or two.
_BATCH_SETTINGS = text("SELECT set_config('work_mem', '256MB', true), set_config('jit', 'off', true)")


def aggregate(
    session: Session,
    *,
    lo: datetime,
    hi: datetime,
    expired_before: datetime,
    dry_run: bool,
    plans: dict[str, list[str]],
    default_dimensions: Sequence[str],
    part: int = 0,
    parts: int = 1,
) -> Aggregated:
    """Insert the records of every hour in ``[lo, hi)`` not yet recorded (see the module doc).

    New rows are ``pending``; ``dry_run`` (when set); or ``expired`` when their hour starts
    before ``expired_before`` (more than 24 hours ago: the Marketplace would refuse them).
    The settings above are transaction-local: they end with the caller's transaction.
    With ``parts`` > 1, only the tenants whose id hashes to ``part`` (of ``parts``): the
    caller runs the parts on as many connections at once, since Postgres does not
    parallelise the ``SELECT`` of an ``INSERT … SELECT`` itself.
    """
    params = {
        "lo": lo,
        "hi": hi,
        "expired_before": expired_before,
        "dry_run": dry_run,
        "plans": json.dumps(plans),
        "default_dimensions": json.dumps(list(default_dimensions)),
        "part": part,
        "parts": parts,
    }
    session.execute(_BATCH_SETTINGS)
    counts: dict[str, int] = {}
    expired: list[dict[str, Any]] = []
    for status, n, born_expired in session.execute(_AGGREGATE, params):
        counts[str(status)] = int(n)
        for row in born_expired or []:
            expired.append({**row, "hour": datetime.fromisoformat(row["hour"])})
    return Aggregated(counts, expired)


def watermark(session: Session) -> datetime | None:
    """Every hour before this has been aggregated (None before the first run)."""
    row = session.get(MeteringWatermark, 1)
    return row.aggregated_until if row else None


def advance_watermark(session: Session, until: datetime) -> None:
    """Record that every hour before ``until`` is aggregated (never moves it back)."""
    stmt = insert(MeteringWatermark).values(id=1, aggregated_until=until)
    stmt = stmt.on_conflict_do_update(
        index_elements=[MeteringWatermark.id],
        set_={"aggregated_until": func.greatest(MeteringWatermark.aggregated_until, until)},
    )
    session.execute(stmt)


def expire_overdue(session: Session, *, before: datetime, now: datetime) -> list[MeteringRecord]:
    """Unfinished records whose hour starts before ``before`` end ``expired``; those records.

    A ``submitted`` one was sent and its answer lost: the Marketplace may have it, and the
    reason says so (resending now would only be answered Expired).
    """
    rows = list(
        session.execute(
            select(MeteringRecord)
            .where(_OPEN, MeteringRecord.hour < before)
            .order_by(MeteringRecord.hour, MeteringRecord.subscription_id, MeteringRecord.dimension)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    for r in rows:
        r.reason = (
            "sent, but no answer was recorded before the 24-hour limit; the Marketplace may have it"
            if r.status == "submitted"
            else "not accepted within 24 hours" + (f" (last: {r.reason})" if r.reason else "")
        )[:1000]
        r.status, r.resolved_at = "expired", now
    session.flush()
    return rows


def near_expiry(session: Session, *, older_than: datetime) -> list[MeteringRecord]:
    """Unfinished records whose hour starts before ``older_than``, oldest first."""
    stmt = select(MeteringRecord).where(_OPEN, MeteringRecord.hour < older_than).order_by(MeteringRecord.hour)
    return list(session.execute(stmt).scalars())


def claim_batch(session: Session, *, limit: int, sent_before: datetime, now: datetime) -> list[MeteringRecord]:
    """Up to ``limit`` unfinished records not sent since ``sent_before``, oldest hour first,
    marked ``submitted`` (attempts + 1) *before* anything is sent: a record left
    ``submitted`` is one whose answer was never recorded, and is sent again."""
    stmt = (
        select(MeteringRecord)
        .where(_OPEN, or_(MeteringRecord.submitted_at.is_(None), MeteringRecord.submitted_at < sent_before))
        .order_by(MeteringRecord.hour, MeteringRecord.subscription_id, MeteringRecord.dimension)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.execute(stmt).scalars())
    for r in rows:
        r.status, r.attempts, r.submitted_at = "submitted", r.attempts + 1, now
    session.flush()
    return rows


def _keyed(keys: Sequence[Key]) -> Any:
    return tuple_(MeteringRecord.subscription_id, MeteringRecord.hour, MeteringRecord.dimension).in_(keys)


def load(session: Session, keys: Sequence[Key]) -> dict[Key, MeteringRecord]:
    """The records ``keys``, locked, by key."""
    stmt = select(MeteringRecord).where(_keyed(keys)).with_for_update()
    return {r.key: r for r in session.execute(stmt).scalars()}


def unsubscribed(session: Session, subscription_ids: set[str]) -> set[str]:
    """Which of ``subscription_ids`` our records say were cancelled (status Unsubscribed)."""
    stmt = select(MarketplaceSubscription.id).where(
        MarketplaceSubscription.id.in_(subscription_ids), MarketplaceSubscription.status == "Unsubscribed"
    )
    return set(session.execute(stmt).scalars())


def note_failure(session: Session, keys: Sequence[Key], reason: str, *, status: str) -> None:
    """A batch failed as a whole: keep ``status`` (``submitted`` when it may have arrived,
    ``pending`` when it surely did not) and say why."""
    session.execute(
        update(MeteringRecord)
        .where(_keyed(keys))
        .values(status=status, reason=reason[:1000])
        .execution_options(synchronize_session=False)
    )


GAUGES = text(
    """
    SELECT
        (SELECT count(*) FROM metering_records
         WHERE status IN ('pending', 'submitted') AND hour < :warn_before) AS near_expiry,
        (SELECT count(*) FROM metering_records
         WHERE status = 'expired' AND resolved_at >= :expired_since) AS expired_recently,
        (SELECT count(*) FROM budget_alerts WHERE month = :month) AS budget_alerts_month,
        (SELECT count(*) FROM budgets WHERE hard_stop AND blocked_month = :month) AS budget_blocked
    """
)


def gauge_counts(session: Session, params: dict[str, Any]) -> Row[Any]:
    """The figures behind ``rayplane.billing.metrics.BillingGauges`` (see ``GAUGES``)."""
    return session.execute(GAUGES, params).one()


@contextmanager
def run_lock(engine: Engine) -> Iterator[bool]:
    """A session-level advisory lock held on its own autocommit connection for the block:
    one metering run at a time across every worker, with no transaction left open across the
    HTTP calls. A killed run's connection closes, and its lock goes with it. Yields whether
    the lock was taken (False: another run holds it)."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        taken = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY}))
        try:
            yield taken
        finally:
            if taken:
                conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
