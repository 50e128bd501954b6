"""Metering: turn usage intervals into hourly Marketplace usage events, each hour billed once.

One run (the hourly beat task, ``workers.tasks.billing``):
1. **Aggregate** closed hours into ``MeteringRecord`` rows in SQL (``metering_store.aggregate``),
   from the watermark (the end of the last complete aggregation; at most
   ``metering_lookback_hours`` back) to the newest closed hour, in ``metering_parallelism``
   tenant partitions on as many connections; each hour is inserted once (primary key on
   subscription, hour and dimension, ``ON CONFLICT DO NOTHING``).
2. **Expire** unfinished records whose hour is more than 24 hours old: the Marketplace
   refuses them now. Each one is an *alert*: an error log line and the
   ``rayplane_metering_hours_expired`` gauge, because that usage will never be billed.
3. **Warn** about unfinished records older than ``metering_warn_age_hours``: a warning line
   each and the ``rayplane_metering_hours_near_expiry`` gauge, while there is still time.
4. **Submit** (unless dry run) in batches of at most 25: mark the batch ``submitted`` and
   commit, POST it, then record each event's answer in a second transaction.

Exactly once, across crashes: the Marketplace keeps one event per (resource, dimension, UTC
hour) and answers any later one ``Duplicate``, naming the event it accepted. So a worker that
dies after the POST and before step 4's second commit leaves its records ``submitted``; the
next run sends them again, gets ``Duplicate``, and records them ``duplicate`` with the
original event id: the hour is counted once, and the records say so. Nothing else would make
this safe: no transaction can span the HTTP call and the database.

Races: one run at a time (``metering_store.run_lock``, a Postgres advisory lock on its own
connection); a second beat or a redelivered task finds the lock taken and does nothing. The
reconciler writes intervals concurrently; the delay before an hour counts as closed
(``metering_delay_seconds``) covers a pass that read the clock before the hour ended and
committed after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from rayplane.billing import metering_store as store
from rayplane.billing.dimensions import DEFAULT_DIMENSIONS, plan_dimensions
from rayplane.billing.faults import crash_point
from rayplane.billing.metrics import METERING_EVENTS, BillingGauges, gauge_params
from rayplane.billing.models import MeteringRecord
from rayplane.billing.periods import floor_hour
from rayplane.common.upstream import one_line
from rayplane.db.base import utcnow
from rayplane.logs import get_logger
from rayplane.marketplace.metering_client import MAX_BATCH, MeteringClient, MeteringError, UsageEvent, UsageResult
from rayplane.marketplace.token import MarketplaceTokenError
from rayplane.settings import Settings

log = get_logger("rayplane.billing.metering")

MARKETPLACE_WINDOW = timedelta(hours=24)
# Statuses after which the event surely was not recorded and may be accepted later.
_RETRY_LATER = frozenset({"ResourceNotActive"})  # suspended: a Reinstate within 24 h bills it
_WARN_LINES = 20  # per-record lines per run; a summary line with the count beyond that
_ALERT_LINES = 20


@dataclass
class RunResult:
    """What one run did (also logged)."""

    skipped: bool = False
    created: Counter[str] = field(default_factory=Counter)
    expired: int = 0
    near_expiry: int = 0
    batches: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "created": dict(self.created),
            "expired": self.expired,
            "near_expiry": self.near_expiry,
            "batches": self.batches,
            "outcomes": dict(self.outcomes),
            "error": self.error,
        }


class Metering:
    """One metering run over ``sessions``; ``client`` builds the Metering API client lazily
    (a run with nothing to send never asks Entra for a token)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        client: Callable[[], MeteringClient] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self._client_factory = client or (lambda: MeteringClient(settings))
        self._client: MeteringClient | None = None

    def _engine(self) -> Engine:
        bind = self.sessions.kw["bind"]
        assert isinstance(bind, Engine)
        return bind

    def run(self, now: datetime | None = None) -> RunResult:
        """Aggregate, expire, warn and submit, as the module docstring says. ``now`` is the
        clock for which hours are closed and how old they are (tests move it)."""
        now = now or utcnow()
        result = RunResult()
        with store.run_lock(self._engine()) as taken:
            if not taken:
                log.info("metering_skipped", reason="another metering run holds the lock")
                return RunResult(skipped=True)
            try:
                self.aggregate(now, result)
                self._expire(now, result)
                self._warn(now, result)
                if not self.settings.metering_dry_run:
                    self._submit(now, result)
            finally:
                if self._client is not None:
                    self._client.close()
                    self._client = None
                try:
                    self.publish_gauges(now)
                except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more
                    log.warning("billing_gauges_unavailable", error=type(exc).__name__)
        log.info("metering_run", **result.summary())
        return result

    # ---- steps ------------------------------------------------------------------------
    def aggregate(self, now: datetime, result: RunResult) -> None:
        """Step 1 alone (the benchmark times it): new hours up to ``now``'s newest closed hour."""
        hi = floor_hour(now - timedelta(seconds=self.settings.metering_delay_seconds))
        lo = floor_hour(now) - timedelta(hours=self.settings.metering_lookback_hours)
        with self.sessions() as session:
            done = store.watermark(session)
        if done is not None:
            lo = max(lo, done)
        if hi <= lo:
            return
        parts = self.settings.metering_parallelism
        plans = plan_dimensions()

        def part(k: int) -> store.Aggregated:
            with self.sessions() as session, session.begin():
                return store.aggregate(
                    session,
                    lo=lo,
                    hi=hi,
                    expired_before=now - MARKETPLACE_WINDOW,
                    dry_run=self.settings.metering_dry_run,
                    plans=plans,
                    default_dimensions=DEFAULT_DIMENSIONS,
                    part=k,
                    parts=parts,
                )

        if parts == 1:
            found = [part(0)]
        else:
            # One connection per part, at once: a partition that fails raises here, the
            # watermark stays, and the next run repeats the window (finished parts conflict).
            with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="metering") as pool:
                found = list(pool.map(part, range(parts)))
        with self.sessions() as session, session.begin():
            store.advance_watermark(session, hi)
        born_expired = [r for f in found for r in f.expired]
        for f in found:
            result.created.update(f.counts)
        for r in born_expired[:_ALERT_LINES]:
            why = "first computed too late"
            self._alert(r["tenant_id"], r["subscription_id"], r["dimension"], r["hour"], r["quantity"], why)
        self._alert_summary(len(born_expired))
        result.expired += len(born_expired)

    def _expire(self, now: datetime, result: RunResult) -> None:
        with self.sessions() as session, session.begin():
            expired = store.expire_overdue(session, before=now - MARKETPLACE_WINDOW, now=utcnow())
            for r in expired[:_ALERT_LINES]:
                self._alert(r.tenant_id, r.subscription_id, r.dimension, r.hour, r.quantity, r.reason)
        self._alert_summary(len(expired))
        result.expired += len(expired)

    def _warn(self, now: datetime, result: RunResult) -> None:
        with self.sessions() as session:
            old = store.near_expiry(session, older_than=now - timedelta(hours=self.settings.metering_warn_age_hours))
        result.near_expiry = len(old)
        for r in old[:_WARN_LINES]:
            log.warning(
                "metering_hour_near_expiry",
                tenant_id=r.tenant_id,
                subscription_id=r.subscription_id,
                dimension=r.dimension,
                hour=r.hour.isoformat(),
                age_hours=round((now - r.hour).total_seconds() / 3600, 1),
                status=r.status,
                attempts=r.attempts,
                reason=r.reason,
            )
        if len(old) > _WARN_LINES:
            log.warning("metering_hours_near_expiry", count=len(old), logged=_WARN_LINES)

    def _submit(self, now: datetime, result: RunResult) -> None:
        started = utcnow()  # records sent in this run are not sent again by it
        while True:
            with self.sessions() as session, session.begin():
                batch = store.claim_batch(session, limit=MAX_BATCH, sent_before=started, now=utcnow())
                sent = [(r.key, _event(r)) for r in batch]
            if not sent:
                return
            try:
                if self._client is None:
                    self._client = self._client_factory()
                answers = self._client.post_batch([e for _, e in sent])
            except (MeteringError, MarketplaceTokenError) as exc:
                # Retriable: the batch may have arrived, so it stays submitted and is resent
                # (answered Duplicate if it did). Refused: it surely did not; back to pending.
                retriable = isinstance(exc, MeteringError) and exc.retriable
                reason = one_line(str(exc), 300)  # served by the billing API: no upstream paths
                with self.sessions() as session, session.begin():
                    store.note_failure(
                        session, [i for i, _ in sent], reason, status="submitted" if retriable else "pending"
                    )
                log.warning("metering_batch_failed", events=len(sent), retriable=retriable, error=str(exc)[:20_000])
                result.error = reason
                return
            result.batches += 1
            crash_point("metering_after_send")
            with self.sessions() as session, session.begin():
                records = store.load(session, [i for i, _ in sent])
                cancelled = store.unsubscribed(session, {key[0] for key, _ in sent})
                for (key, event), answer in zip(sent, answers, strict=True):
                    record = records.get(key)
                    if record is not None:
                        self._apply(record, event, answer, result, cancelled=key[0] in cancelled)
                session.flush()

    def _apply(
        self, record: MeteringRecord, event: UsageEvent, answer: UsageResult, result: RunResult, *, cancelled: bool
    ) -> None:
        """Record one answer. ``cancelled``: our subscription row says Unsubscribed, so a
        ``ResourceNotActive`` is final rather than worth another try."""
        now = utcnow()
        METERING_EVENTS.labels(answer.status).inc()
        result.outcomes[answer.status] += 1
        if answer.status in ("Accepted", "Duplicate"):
            record.status = "accepted" if answer.status == "Accepted" else "duplicate"
            record.usage_event_id, record.message_time, record.resolved_at = (
                answer.usage_event_id,
                answer.message_time,
                now,
            )
            record.reason = None
            if answer.status == "Duplicate":
                record.reason = "the Marketplace had already recorded this hour"
                if (
                    answer.accepted_quantity is not None
                    and abs(answer.accepted_quantity - float(event.quantity)) > 1e-6
                ):
                    record.reason += f" with quantity {answer.accepted_quantity}"
                    log.warning(
                        "metering_duplicate_differs",
                        subscription_id=record.subscription_id,
                        dimension=record.dimension,
                        hour=record.hour.isoformat(),
                        sent=float(event.quantity),
                        accepted=answer.accepted_quantity,
                    )
        elif answer.status == "Expired":
            record.status, record.resolved_at = "expired", now
            record.reason = f"Expired: {answer.message or 'older than 24 hours for the Marketplace'}"[:1000]
            self._alert(
                record.tenant_id, record.subscription_id, record.dimension, record.hour, record.quantity, "Expired"
            )
            result.expired += 1
        elif answer.status in _RETRY_LATER and not cancelled:
            record.status = "pending"
            record.reason = f"{answer.status}: {answer.message or ''}; sent again next run"[:1000]
        elif answer.status == "Missing":
            record.reason = "the Marketplace's answer had no result for this event; sent again next run"
        else:
            record.status, record.resolved_at = "rejected", now
            record.reason = f"{answer.status}: {answer.message or ''}".strip()[:1000]
            log.warning(
                "metering_event_rejected",
                subscription_id=record.subscription_id,
                dimension=record.dimension,
                hour=record.hour.isoformat(),
                status=answer.status,
                message=answer.message,
            )

    @staticmethod
    def _alert(tenant_id: str, subscription_id: str, dimension: str, hour: datetime, quantity: Any, why: Any) -> None:
        # The alert itself: an error line here, and the expired gauge the API's /metrics reads.
        log.error(
            "metering_hour_expired",
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            dimension=dimension,
            hour=hour.isoformat(),
            quantity=float(quantity),
            reason=str(why)[:300],
        )

    @staticmethod
    def _alert_summary(count: int) -> None:
        if count > _ALERT_LINES:
            log.error("metering_hours_expired", count=count, logged=_ALERT_LINES)

    def publish_gauges(self, now: datetime) -> BillingGauges:
        """Set this process's billing gauges from the database (see ``billing.metrics``)."""
        with self.sessions() as session:
            row = store.gauge_counts(session, gauge_params(self.settings, now))
        gauges = BillingGauges(*(int(v) for v in row))
        gauges.publish()
        return gauges


def _event(record: MeteringRecord) -> UsageEvent:
    return UsageEvent(
        resource_id=record.subscription_id,
        plan_id=record.plan_id,
        dimension=record.dimension,
        quantity=record.quantity,
        hour=record.hour,
    )
