"""Processing a stored webhook event: confirm it with the Fulfillment API, answer, apply.

``EventProcessor.process(operation_id)`` is what the worker task runs; it is idempotent and
safe to run twice at once (a nudge and the sweep) or again after a crash at any point:

1. Claim (short transaction): an event no longer ``received`` is skipped; otherwise
   ``attempts`` goes up and ``next_attempt_at`` moves ahead, so if this worker dies the sweep
   hands the event to another one then.
2. Confirm (no transaction open): GET the operation from the Fulfillment API. The payload is
   never trusted beyond naming the operation; only the Marketplace's state is acted on.
3. Answer, for an operation waiting for us (ChangePlan, ChangeQuantity, Reinstate InProgress):
   decide by the plan rules (a short read transaction), PATCH Success or Failure, and GET the
   operation again. A 409 means it was answered already (by us before a crash, by a
   concurrent worker, or auto-accepted after 10 s): the re-read tells what happened.
4. Apply (one transaction, rows locked in the order event, subscription, tenant, clusters):
   only an operation the Marketplace reports Succeeded changes anything, and only when it is
   not older (``timeStamp``) than the newest one applied to the subscription
   (``last_event_at``): a late, out-of-order delivery is recorded, not applied. The event
   ends ``done`` (or ``failed``) with its result, and an audit entry names the action.

Effects: ChangePlan/ChangeQuantity update the subscription; Suspend marks it and the tenant
suspended and wants every cluster stopped; Reinstate makes the tenant active again (clusters
stay stopped); Unsubscribe wants every cluster deleted and makes the tenant read-only until
``close_expired`` closes it after the retention period; Renew is recorded; unknown actions
are logged and acknowledged.

``Subscribe`` (sent for plans that activate without the landing page) creates or links the
tenant as activation does (``rayplane.marketplace.subscribe``); the subscription's parties
are read from the Fulfillment API before the apply transaction.

Failures: any failure of a pass (a Marketplace API failure, an answer of an unexpected
shape, a bug) counts as an attempt: the event stays ``received`` with a later
``next_attempt_at`` (exponential, capped), until ``MAX_ATTEMPTS`` attempts were made; then it
ends ``failed`` with the reason and the ``marketplace_event_failed`` error log (the alert of
docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from rayplane.audit.models import AuditEntry
from rayplane.clusters import bulk
from rayplane.common.upstream import one_line
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.logs import get_logger
from rayplane.marketplace import plans, store
from rayplane.marketplace.client import FulfillmentClient, FulfillmentError, Operation, Subscription
from rayplane.marketplace.models import MarketplaceSubscription, WebhookEvent
from rayplane.marketplace.subscribe import subscribe
from rayplane.tenants.models import Tenant
from rayplane.tenants.service import ACTIVE, CLOSED, READ_ONLY, SUSPENDED

log = get_logger("rayplane.marketplace")

ACK_ACTIONS = frozenset({"ChangePlan", "ChangeQuantity", "Reinstate"})
MAX_ATTEMPTS = 20
CLAIM_HOLD = timedelta(seconds=60)


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: 5 s doubling, at most 5 minutes."""
    return timedelta(seconds=min(300.0, 5.0 * 2 ** max(attempts - 1, 0)))


@dataclass
class Outcome:
    """What a pass did: ``status`` is done, failed, retry or skipped; ``clusters`` changed."""

    status: str
    result: str = ""
    clusters: list[str] = field(default_factory=list)


def _audit(session: Session, sub: MarketplaceSubscription, op: Operation, result: str, code: int) -> None:
    session.add(
        AuditEntry(
            id=new_id("aud"),
            tenant_id=sub.tenant_id,
            actor_type="marketplace",
            actor_id="azure-marketplace",
            action=f"marketplace.{op.action[:60]}",
            target_type="marketplace_subscription",
            target_id=sub.id,
            result="success" if code < 400 else "failure",
            status_code=code,
            detail={"operation_id": op.id, "status": op.status, "result": result[:500], "plan_id": op.plan_id},
        )
    )


class EventProcessor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: FulfillmentClient,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.now = now

    # ---- the pass ----------------------------------------------------------------------

    def process(self, operation_id: str) -> Outcome:
        claimed = self._claim(operation_id)
        if claimed is None:
            return Outcome("skipped", "not waiting for processing")
        subscription_id, attempts = claimed
        try:
            return self._pass(operation_id, subscription_id, attempts)
        except Exception as exc:
            log.exception("marketplace_event_error", operation_id=operation_id, attempt=attempts)
            why = f"unexpected error: {type(exc).__name__}: {one_line(str(exc))}"
            return self._failed_attempt(operation_id, attempts, None, why)

    def _pass(self, operation_id: str, subscription_id: str, attempts: int) -> Outcome:
        answer = ""
        purchase: Subscription | None = None
        try:
            op = self.client.get_operation(subscription_id, operation_id)
            if op.status == "InProgress" and op.action in ACK_ACTIONS:
                op, answer = self._answer(op)
            if op.action == "Subscribe" and op.status == "Succeeded":
                purchase = self.client.get(op.subscription_id)  # its parties say who owns it
        except FulfillmentError as exc:
            return self._failed_attempt(operation_id, attempts, exc)
        if op.status == "InProgress":
            # Not ours to answer, or not settled yet: look again later.
            return self._failed_attempt(operation_id, attempts, None, f"operation still InProgress ({op.action})")
        return self._apply(operation_id, op, answer, purchase)

    def _claim(self, operation_id: str) -> tuple[str, int] | None:
        with self.sessions.begin() as session:
            event = store.load_event(session, operation_id, lock=True)
            if event is None or event.status != "received":
                return None
            event.attempts += 1
            event.next_attempt_at = self.now() + CLAIM_HOLD
            return event.subscription_id, event.attempts

    def _failed_attempt(
        self, operation_id: str, attempts: int, exc: FulfillmentError | None, why: str | None = None
    ) -> Outcome:
        reason = why or str(exc)
        gone = exc is not None and exc.status == 404
        with self.sessions.begin() as session:
            event = store.load_event(session, operation_id, lock=True)
            if event is None or event.status != "received":
                return Outcome("skipped", "processed meanwhile")
            if gone or attempts >= MAX_ATTEMPTS:
                event.status, event.result = "failed", reason[:1000]
                event.processed_at, event.next_attempt_at = self.now(), None
                log.error("marketplace_event_failed", operation_id=operation_id, reason=reason[:300])
                return Outcome("failed", reason)
            event.result = f"attempt {attempts}: {reason}"[:1000]
            event.next_attempt_at = self.now() + backoff(attempts)
        log.warning("marketplace_event_retry", operation_id=operation_id, attempt=attempts, reason=reason[:300])
        return Outcome("retry", reason)

    # ---- answering ChangePlan / ChangeQuantity / Reinstate --------------------------------

    def _answer(self, op: Operation) -> tuple[Operation, str]:
        """PATCH our decision; the operation as the Marketplace then reports it, and why."""
        with self.sessions.begin() as session:
            accept, reason = self.decide(session, op)
        log.info("marketplace_answer", operation_id=op.id, action=op.action, accept=accept, reason=reason)
        try:
            self.client.patch_operation(op.subscription_id, op.id, "Success" if accept else "Failure")
        except FulfillmentError as exc:
            if exc.status != 409:
                raise
        answer = f"Rayplane answered {'Success' if accept else 'Failure'}: {reason}"
        return self.client.get_operation(op.subscription_id, op.id), answer

    def decide(self, session: Session, op: Operation) -> tuple[bool, str]:
        """Whether to accept ``op`` (a pending change) and why, by the plan rules."""
        sub = store.load_subscription(session, op.subscription_id)
        if sub is None:
            return False, "the subscription was never activated in Rayplane"
        if self._stale(sub, op):
            return False, f"superseded by a newer operation applied at {sub.last_event_at}"
        if sub.status == "Unsubscribed":
            return False, "the subscription is cancelled"
        if op.action == "Reinstate":
            return True, "reinstated"
        if sub.status != "Subscribed":
            return False, f"the subscription is {sub.status}"
        if op.action == "ChangeQuantity":
            if op.quantity is not None and op.quantity < 1:
                return False, "a quantity must be at least 1"
            return True, f"quantity {op.quantity}"
        plan = plans.get(op.plan_id or "")
        if plan is None:
            return False, f"plan {op.plan_id!r} is not offered by this Rayplane"
        reasons = plans.fits(plan, store.running_specs(session, sub.tenant_id))
        if reasons:
            return False, "; ".join(reasons)
        return True, f"the running clusters fit plan {plan.id!r}"

    @staticmethod
    def _stale(sub: MarketplaceSubscription, op: Operation) -> bool:
        return op.time_stamp is not None and sub.last_event_at is not None and op.time_stamp < sub.last_event_at

    # ---- applying ----------------------------------------------------------------------

    def _apply(self, operation_id: str, op: Operation, answer: str, purchase: Subscription | None = None) -> Outcome:
        with self.sessions.begin() as session:
            event = store.load_event(session, operation_id, lock=True)
            if event is None or event.status != "received":
                return Outcome("skipped", "processed meanwhile")
            if op.time_stamp is not None:
                event.time_stamp = op.time_stamp
            sub = store.load_subscription(session, op.subscription_id, lock=True)
            clusters: list[str] = []
            if sub is None and purchase is not None:
                result, sub = subscribe(session, purchase)
                if sub is not None:
                    if op.time_stamp is not None:
                        sub.last_event_at = op.time_stamp
                    _audit(session, sub, op, result, 200)
            elif sub is None:
                result = "unknown subscription; recorded, not applied"
            elif op.status != "Succeeded":
                result = f"the Marketplace reports {op.status}; recorded, not applied"
                result += f" ({answer})" if answer else ""
                _audit(session, sub, op, result, 409)
            elif self._stale(sub, op):
                result = f"older than the last operation applied ({sub.last_event_at}); recorded, not applied"
            elif sub.status == "Unsubscribed":
                result = "the subscription is cancelled; recorded, not applied"
            else:
                result, clusters = self._effect(session, sub, op)
                if op.time_stamp is not None:
                    sub.last_event_at = op.time_stamp
                _audit(session, sub, op, result, 200)
            self._finish(event, result)
        log.info("marketplace_event_done", operation_id=operation_id, action=op.action, result=result)
        return Outcome("done", result, clusters)

    def _finish(self, event: WebhookEvent, result: str) -> None:
        event.status, event.result = "done", result[:1000]
        event.processed_at, event.next_attempt_at = self.now(), None

    def _effect(self, session: Session, sub: MarketplaceSubscription, op: Operation) -> tuple[str, list[str]]:
        action = op.action
        if action == "ChangePlan":
            old, sub.plan_id = sub.plan_id, op.plan_id or sub.plan_id
            return f"plan {old} -> {sub.plan_id}", []
        if action == "ChangeQuantity":
            sub.quantity = op.quantity
            return f"quantity {op.quantity}", []
        if action == "Renew":
            return "renewed", []
        if action == "Subscribe":
            return "already activated; recorded", []
        if action not in ("Suspend", "Reinstate", "Unsubscribe"):
            log.warning("marketplace_unknown_action", action=action, operation_id=op.id)
            return f"unknown action {action!r}; acknowledged", []
        # Lock order: tenant, then its clusters (bulk), as the API's create/start take them.
        tenant = store.load_tenant(session, sub.tenant_id, lock=True)
        assert tenant is not None  # the subscription's foreign key cascades on delete
        if action == "Suspend":
            sub.status = "Suspended"
            self._set_status(tenant, SUSPENDED)
            ids = bulk.stop_all(session, tenant.id, "the Azure Marketplace subscription was suspended")
            return f"suspended; {len(ids)} cluster(s) stopping", ids
        if action == "Reinstate":
            sub.status = "Subscribed"
            self._set_status(tenant, ACTIVE)
            return "reinstated; clusters stay stopped until started", []
        sub.status, sub.unsubscribed_at = "Unsubscribed", self.now()
        self._set_status(tenant, READ_ONLY)
        ids = bulk.delete_all(session, tenant.id, "the Azure Marketplace subscription was cancelled")
        return f"unsubscribed; tenant read-only; {len(ids)} cluster(s) deleting", ids

    @staticmethod
    def _set_status(tenant: Tenant, status: str) -> None:
        if tenant.status != CLOSED:
            tenant.status = status


def close_expired(session: Session, *, retention: timedelta, now: datetime | None = None) -> list[str]:
    """Close read-only tenants whose subscription ended more than ``retention`` ago: status
    ``closed``, API keys revoked (members are refused at sign-in). The closed tenants' ids."""
    at = now or utcnow()
    closed = []
    for subscription_id, tenant_id in store.closable(session, unsubscribed_before=at - retention):
        tenant = store.load_tenant(session, tenant_id)
        assert tenant is not None
        tenant.status = CLOSED
        revoked = store.revoke_api_keys(session, tenant_id, at)
        detail: dict[str, Any] = {"subscription_id": subscription_id, "api_keys_revoked": revoked}
        session.add(
            AuditEntry(
                id=new_id("aud"),
                tenant_id=tenant_id,
                actor_type="system",
                actor_id="system:retention",
                action="marketplace.close",
                target_type="tenant",
                target_id=tenant_id,
                result="success",
                status_code=200,
                detail=detail,
            )
        )
        closed.append(tenant_id)
        log.info("tenant_closed", tenant_id=tenant_id, **detail)
    session.flush()
    return closed
