"""The SaaS subscription life cycle: purchases, activation, operations and their outcomes.

Statuses: PendingFulfillmentStart -(activate)-> Subscribed -(Suspend)-> Suspended
-(Reinstate)-> Subscribed; Unsubscribe from any status ends in Unsubscribed for good.

Operations (``action``):

* ChangePlan, ChangeQuantity: created InProgress; the subscription keeps its plan/quantity
  until the publisher answers ``PATCH .../operations/{id}`` with Success (then they change and
  the operation is Succeeded) or Failure (Failed, nothing changes). Unanswered, the operation
  is accepted ``auto_accept_seconds`` after it was created, as Azure does after 10 s.
* Reinstate: the same, with ``reinstate_requires_ack`` (the default): the life-cycle doc says
  the publisher must PATCH Success and that Failure leaves the subscription Suspended.
  Without it, Reinstate applies at once.
* Suspend, Unsubscribe, Renew: inform-only; applied when created, the operation Succeeded.
* Subscribe: inform-only, sent for plans that activate without the landing page; it makes a
  PendingFulfillmentStart subscription Subscribed.
* Any other action is recorded Succeeded and changes nothing (webhook receivers must
  tolerate actions they do not know).

Answering an operation that is no longer InProgress is 409 Conflict ("a newer update is
already fulfilled"); so is answering a ChangePlan/ChangeQuantity that a newer one of the same
kind already overtook, which then ends Conflict. An accepted change whose subscription is no
longer Subscribed (e.g. Unsubscribed meanwhile) ends Failed.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import uuid
from typing import Any

from emulators.azure.marketplace.models import (
    ACK_ACTIONS,
    PlanSpec,
    PurchaseRequest,
    add_term,
    format_day,
    format_time,
)
from emulators.azure.marketplace.protocol import MarketplaceError, error
from emulators.azure.marketplace.state import MarketplaceState

#: Which status an action needs the subscription in (None: any but Unsubscribed).
_REQUIRED_STATUS: dict[str, str | None] = {
    "ChangePlan": "Subscribed",
    "ChangeQuantity": "Subscribed",
    "Renew": "Subscribed",
    "Suspend": "Subscribed",
    "Reinstate": "Suspended",
    "Unsubscribe": None,
}


class Lifecycle:
    """Behaviour behind fulfillment, operations and test control, over :class:`MarketplaceState`."""

    def __init__(self, state: MarketplaceState) -> None:
        self.state = state

    # -- purchases --------------------------------------------------------------------------
    def purchase(self, request: PurchaseRequest) -> dict[str, Any]:
        """A new subscription in PendingFulfillmentStart; 400 for an unknown offer/plan or quantity."""
        plan = self.state.plan(request.offer_id, request.plan_id)
        if plan is None:
            message = f"Plan {request.plan_id} of offer {request.offer_id} is not in the catalog."
            raise error(400, "BadArgument", message)
        if request.quantity is not None:
            self._check_quantity(plan, request.quantity)
        subscription_id = (request.subscription_id or str(uuid.uuid4())).lower()
        if self.state.subscription(subscription_id) is not None:
            raise error(409, "Conflict", f"Subscription {subscription_id} exists.")
        now = format_time(self.state.now())
        subscription = {
            "id": subscription_id,
            "name": request.name or f"{request.offer_id}-{subscription_id[:8]}",
            "publisherId": self.state.config.publisher_id,
            "offerId": request.offer_id,
            "planId": request.plan_id,
            "quantity": request.quantity,
            "beneficiary": (request.beneficiary or request.purchaser).wire(),
            "purchaser": request.purchaser.wire(),
            "allowedCustomerOperations": list(request.allowed_customer_operations),
            "sessionMode": "None",
            "isFreeTrial": request.is_free_trial,
            "isTest": request.is_test,
            "sandboxType": "None",
            "saasSubscriptionStatus": "PendingFulfillmentStart",
            # The term starts when the publisher activates (billing starts then).
            "term": {"startDate": None, "endDate": None, "termUnit": plan.term_unit, "chargeDuration": None},
            "autoRenew": request.auto_renew,
            "created": now,
            "lastModified": now,
            "_azureSubscriptionId": request.azure_subscription_id or str(uuid.uuid4()),
        }
        self.state.put_subscription(subscription)
        return subscription

    def issue_token(self, subscription_id: str) -> str:
        """A landing-page token for the subscription, valid ``purchase_token_ttl_seconds``.

        Standard base64, so it usually holds ``+``, ``/`` and ``=``: a landing page that
        forgets to URL-decode ``?token=`` fails, as it would with Azure's tokens.
        """
        token = base64.b64encode(os.urandom(48)).decode("ascii")
        expires = self.state.now() + self.state.config.purchase_token_ttl_seconds
        self.state.put_token(token, subscription_id, expires)
        return token

    def resolve(self, token: str | None) -> dict[str, Any]:
        """The subscription a landing-page token names; 400 when missing, unknown or expired."""
        if not token:
            raise error(400, "HeaderNotPresent", "Mandatory header missing", "x-ms-marketplace-token")
        record = self.state.token(token)
        if record is None or float(record["expiresAt"]) < self.state.now():
            raise error(400, "InvalidValue", "The marketplace token is invalid or expired.", "x-ms-marketplace-token")
        subscription = self.state.subscription(str(record["subscriptionId"]))
        if subscription is None:
            raise error(400, "InvalidValue", "The marketplace token is invalid or expired.", "x-ms-marketplace-token")
        return subscription

    # -- activation ---------------------------------------------------------------------------
    def activate(self, subscription: dict[str, Any], body: dict[str, Any]) -> None:
        """PendingFulfillmentStart -> Subscribed and the first term starts.

        Activating a Subscribed subscription again with the same plan succeeds and changes
        nothing (publishers retry). 404 when Unsubscribed; 400 when Suspended, when ``planId``
        is missing or not the purchased one, or ``quantity`` is not the purchased one.
        """
        status = subscription["saasSubscriptionStatus"]
        if status == "Unsubscribed":
            raise error(404, "EntityNotFound", f"Subscription {subscription['id']} is Unsubscribed.", "subscriptionId")
        plan_id = body.get("planId")
        if not plan_id:
            raise _bad("The plan id is required.", "planId")
        if plan_id != subscription["planId"]:
            raise _bad(f"The plan id {plan_id} does not match the purchased plan {subscription['planId']}.", "planId")
        quantity = body.get("quantity")
        purchased = subscription.get("quantity")
        if quantity not in (None, "") and purchased is not None and _as_int(quantity) != purchased:
            raise _bad(f"The quantity {quantity} does not match the purchased quantity {purchased}.", "quantity")
        if status == "Suspended":
            raise _bad("The subscription is Suspended.", "subscriptionId")
        if status == "Subscribed":
            return
        today = dt.datetime.fromtimestamp(self.state.now(), dt.UTC).date()
        term = subscription["term"]
        term.update(startDate=format_day(today), endDate=format_day(add_term(today, term["termUnit"])))
        subscription["saasSubscriptionStatus"] = "Subscribed"
        self._touch(subscription)

    # -- operations -----------------------------------------------------------------------------
    def publisher_update(self, subscription: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /subscriptions/{id}`` ``{planId}`` or ``{quantity}``: a ChangePlan or
        ChangeQuantity operation requested by the publisher (source ``Partner``).

        400: not Subscribed; ``Update`` not allowed; both or neither field; the same plan or
        quantity; a plan outside the offer or a quantity outside its limits; another change
        still InProgress ("the subscription is locked due to pending operations").
        """
        if subscription["saasSubscriptionStatus"] != "Subscribed":
            raise error(400, "BadRequest", "Subscription is not active", "update")
        if "Update" not in subscription.get("allowedCustomerOperations", []):
            raise error(400, "BadRequest", "Update is not an allowed operation for this subscription.", "update")
        plan_id, quantity = body.get("planId"), body.get("quantity")
        if (plan_id is None) == (quantity is None):
            raise error(400, "BadRequest", "Exactly one of planId and quantity can be changed at a time.", "update")
        pending = [op for op in self.state.operations(subscription["id"]) if op["status"] == "InProgress"]
        if any(op["action"] in ACK_ACTIONS for op in pending):
            message = "Patch cannot be completed because the subscription is locked due to pending operations"
            raise error(400, "Failed", message, "update")
        action = "ChangePlan" if plan_id is not None else "ChangeQuantity"
        return self.start(subscription, action, plan_id=plan_id, quantity=_as_int(quantity), source="Partner")

    def start(
        self,
        subscription: dict[str, Any],
        action: str,
        *,
        plan_id: str | None = None,
        quantity: int | None = None,
        source: str = "Azure",
        time_stamp: str | None = None,
    ) -> dict[str, Any]:
        """Create an operation for ``action`` and apply what applies at once (see the module
        docstring). 400 for a change that is invalid, 409 when the subscription's status
        does not allow the action."""
        status = subscription["saasSubscriptionStatus"]
        required = _REQUIRED_STATUS.get(action, "any")
        if status == "Unsubscribed" or (required not in (None, "any") and status != required):
            raise error(409, "Conflict", f"{action} is not possible while the subscription is {status}.", "action")
        if action == "ChangePlan":
            self._check_new_plan(subscription, plan_id)
        elif action == "ChangeQuantity":
            self._check_new_quantity(subscription, quantity)
        config = self.state.config
        now = self.state.now()
        needs_ack = action in ACK_ACTIONS or (action == "Reinstate" and config.reinstate_requires_ack)
        operation: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "activityId": str(uuid.uuid4()),
            "subscriptionId": subscription["id"],
            "offerId": subscription["offerId"],
            "publisherId": subscription["publisherId"],
            "planId": plan_id if action == "ChangePlan" else subscription["planId"],
            "quantity": quantity if action == "ChangeQuantity" else subscription.get("quantity"),
            "action": action,
            "timeStamp": time_stamp or format_time(now),
            "status": "InProgress" if needs_ack else "Succeeded",
            "errorStatusCode": "",
            "errorMessage": "",
            "operationRequestSource": source,
            "_created": now,
            "_autoAcceptAt": now + config.auto_accept_seconds if needs_ack else None,
        }
        if not needs_ack:
            self._apply(subscription, operation)
        self.state.put_operation(operation)
        return operation

    def answer(self, subscription: dict[str, Any], operation: dict[str, Any], body: dict[str, Any]) -> None:
        """The publisher's ``PATCH .../operations/{id}`` ``{"status": "Success"|"Failure"}``."""
        status = body.get("status")
        if status not in ("Success", "Failure"):
            raise error(400, "InvalidValue", "Expected Success or Failure", "status")
        if operation["status"] != "InProgress":
            message = f"Operation {operation['id']} is already {operation['status']}."
            raise error(409, "Conflict", message, "operation")
        if self._overtaken(operation):
            self._finish(operation, "Conflict", "409", "A newer update is already fulfilled.")
            raise error(409, "Conflict", "A newer update is already fulfilled.", "operation")
        self.complete(subscription, operation, success=status == "Success")

    def complete(self, subscription: dict[str, Any], operation: dict[str, Any], *, success: bool) -> None:
        """End an InProgress operation: apply it (Succeeded) or leave the subscription (Failed)."""
        if not success:
            self._finish(operation, "Failed", "", "The publisher reported a failure.")
            return
        if self._overtaken(operation):
            self._finish(operation, "Conflict", "409", "A newer update is already fulfilled.")
            return
        required = _REQUIRED_STATUS.get(operation["action"])
        if required is not None and subscription["saasSubscriptionStatus"] != required:
            message = f"The subscription is {subscription['saasSubscriptionStatus']}."
            self._finish(operation, "Failed", "400", message)
            return
        self._apply(subscription, operation)
        self._finish(operation, "Succeeded", "", "")

    def sweep(self) -> int:
        """Accept every InProgress operation whose auto-accept time has come; how many."""
        now = self.state.now()
        done = 0
        for operation in self.state.operations():
            due = operation.get("_autoAcceptAt")
            if operation["status"] != "InProgress" or due is None or float(due) > now:
                continue
            subscription = self.state.subscription(str(operation["subscriptionId"]))
            if subscription is None:
                continue
            self.complete(subscription, operation, success=True)
            done += 1
        return done

    # -- helpers -------------------------------------------------------------------------------------
    def _apply(self, subscription: dict[str, Any], operation: dict[str, Any]) -> None:
        action = operation["action"]
        if action == "ChangePlan":
            subscription["planId"] = operation["planId"]
        elif action == "ChangeQuantity":
            subscription["quantity"] = operation["quantity"]
        elif action == "Suspend":
            subscription["saasSubscriptionStatus"] = "Suspended"
        elif action == "Reinstate":
            subscription["saasSubscriptionStatus"] = "Subscribed"
        elif action == "Unsubscribe":
            subscription["saasSubscriptionStatus"] = "Unsubscribed"
        elif action == "Subscribe":
            subscription["saasSubscriptionStatus"] = "Subscribed"
        elif action == "Renew":
            term = subscription["term"]
            if term.get("endDate"):
                start = dt.date.fromisoformat(str(term["endDate"])[:10]) + dt.timedelta(days=1)
                term.update(startDate=format_day(start), endDate=format_day(add_term(start, term["termUnit"])))
        else:
            return
        self._touch(subscription)

    def _finish(self, operation: dict[str, Any], status: str, code: str, message: str) -> None:
        operation.update(status=status, errorStatusCode=code, errorMessage=message)
        operation["_autoAcceptAt"] = None
        self.state.put_operation(operation)

    def _overtaken(self, operation: dict[str, Any]) -> bool:
        """Whether a newer operation of the same kind on the subscription already succeeded."""
        if operation["action"] not in ACK_ACTIONS:
            return False
        created = float(operation.get("_created", 0))
        return any(
            other["action"] == operation["action"]
            and other["status"] == "Succeeded"
            and float(other.get("_created", 0)) > created
            for other in self.state.operations(str(operation["subscriptionId"]))
        )

    def _touch(self, subscription: dict[str, Any]) -> None:
        subscription["lastModified"] = format_time(self.state.now())
        self.state.put_subscription(subscription)

    def _check_new_plan(self, subscription: dict[str, Any], plan_id: str | None) -> None:
        if not plan_id:
            raise _bad("The plan id is required.", "planId")
        if plan_id == subscription["planId"]:
            message = (
                f"SaaS subscription {subscription['name']} is already subscribed to plan {plan_id}. "
                "Changing plans only supported between two different plans"
            )
            raise error(400, "BadRequest", message, "planId")
        if self.state.plan(subscription["offerId"], plan_id) is None:
            raise error(400, "BadRequest", "Request Plan is NOT in Catalog.", "planId")

    def _check_new_quantity(self, subscription: dict[str, Any], quantity: int | None) -> None:
        if quantity is None:
            raise _bad("The quantity is required.", "quantity")
        if quantity == subscription.get("quantity"):
            raise error(400, "BadRequest", "New quantity is the same as on the subscription", "quantity")
        plan = self.state.plan(subscription["offerId"], subscription["planId"])
        if plan is not None:
            self._check_quantity(plan, quantity)

    @staticmethod
    def _check_quantity(plan: PlanSpec, quantity: int) -> None:
        low = plan.min_quantity if plan.min_quantity is not None else 1
        high = plan.max_quantity
        if quantity < low or (high is not None and quantity > high):
            raise error(400, "BadRequest", f"The quantity {quantity} is outside the plan's limits.", "quantity")


def _bad(message: str, target: str) -> MarketplaceError:
    return error(
        400,
        "BadArgument",
        "One or more errors have occurred.",
        target,
        [{"code": "BadArgument", "message": message, "target": target}],
    )


def _as_int(value: Any) -> int | None:
    """Quantities arrive as numbers or numeric strings (the docs show both)."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"The quantity {value!r} is not a whole number.", "quantity") from None
