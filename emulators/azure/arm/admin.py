"""Test control of the ARM surface: its knobs, injected failures and request counters.

Routes (JSON in, JSON out), never subject to the faults they configure:

* ``GET  /_emulator/arm/config`` -- the current :class:`ArmConfig`.
* ``PUT  /_emulator/arm/config`` -- merge the fields given into it; the whole new config.
* ``POST /_emulator/arm/fail-next`` -- :class:`FailNext`: the next ``count`` long-running
  operations whose resource id or pool name contains ``match`` (case-insensitive; any
  operation when omitted) end ``Failed`` with ``code``. Rules stack, oldest first.
* ``GET  /_emulator/arm/fail-next`` -- the pending rules.
* ``GET  /_emulator/arm/requests`` -- :meth:`Counters.snapshot`.
* ``POST /_emulator/arm/reset`` -- :class:`ResetRequest`: back to default config, no rules,
  zero counters; with ``resources: true`` also every cluster, pool and operation.

Config and rules persist in the document store (kind ``arm.admin``), so a restart keeps the
behaviour a test or benchmark set up; counters are per process.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from emulators.azure.store import DocumentStore

#: The node image a pool gets unless the config names a newer one.
NODE_IMAGE_VERSION = "AKSUbuntu-2204gen2containerd-202607.01.0"

_KIND = "arm.admin"


class ArmConfig(BaseModel):
    """Knobs of the ARM surface. Defaults suit interactive use; tests and benchmarks shrink them."""

    model_config = ConfigDict(extra="forbid")

    #: Wall-clock seconds a create/update/delete takes before its status leaves InProgress.
    operation_seconds: float = Field(1.0, ge=0)
    #: ``Retry-After`` (seconds) on LRO answers and status polls; 0 lets clients use their own interval.
    retry_after: int = Field(1, ge=0)
    #: Items per page of a list before a ``nextLink``.
    page_size: int = Field(100, ge=1)
    #: Added to every ARM request before it is handled.
    latency_ms: int = Field(0, ge=0)
    #: Fraction of ARM requests answered 429 ``SubscriptionRequestsThrottled``.
    rate_429: float = Field(0.0, ge=0, le=1)
    #: ``Retry-After`` (seconds) on those 429s.
    throttle_retry_after: int = Field(1, ge=0)
    #: Fraction of ARM requests answered 500 ``InternalServerError`` or 503 ``ServiceUnavailable``.
    rate_5xx: float = Field(0.0, ge=0, le=1)
    #: Regional vCPU quota per VM family: keys ``"<subscription>/<family>"``, ``"<family>"`` or
    #: ``"*"`` (looked up in that order). Families are Azure's quota families
    #: (``standardDSv5Family``; see ``emulators.azure.arm.skus``), case and spaces ignored.
    quota_vcpus: dict[str, int] = Field(default_factory=lambda: {"*": 200})
    #: VM sizes that exist but have no capacity: writes using them answer 400 ``SkuNotAvailable``.
    unavailable_sizes: list[str] = Field(default_factory=list)
    #: The newest node image: new pools get it, ``upgradeNodeImageVersion`` moves a pool to it.
    latest_node_image_version: str = Field(NODE_IMAGE_VERSION, min_length=1)
    #: Authorize every ARM request against the caller's role assignments (``emulators.azure.arm.roles``),
    #: answering 403 ``AuthorizationFailed`` as Azure RBAC does. Off: any valid token may do anything.
    enforce_roles: bool = False
    #: Subscriptions whose requests are authorized even while ``enforce_roles`` is off (so one test
    #: can enforce roles in its own subscription on the shared emulator).
    enforce_roles_subscriptions: list[str] = Field(default_factory=list)
    #: The blob endpoint storage accounts report (``{account}`` is replaced by the account's name);
    #: None: Azure's ``https://{account}.blob.core.windows.net/``. Tests name an Azurite here.
    #: Applies to every answer from the time it is set, accounts made before included.
    blob_endpoint: str | None = None

    def enforces_roles(self, subscription: str) -> bool:
        """Whether requests in ``subscription`` are authorized against role assignments."""
        wanted = subscription.lower()
        return self.enforce_roles or any(s.lower() == wanted for s in self.enforce_roles_subscriptions)

    def quota_for(self, subscription: str, family: str) -> int:
        """The vCPU limit for ``family`` in ``subscription``."""
        lowered = {key.replace(" ", "").lower(): value for key, value in self.quota_vcpus.items()}
        wanted = family.replace(" ", "").lower()
        for key in (f"{subscription.lower()}/{wanted}", wanted, "*"):
            if key in lowered:
                return lowered[key]
        return 200


class FailNext(BaseModel):
    """Body of ``POST /_emulator/arm/fail-next``."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1)
    message: str | None = None
    match: str | None = None
    count: int = Field(1, ge=1)


class ResetRequest(BaseModel):
    """Body of ``POST /_emulator/arm/reset`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    resources: bool = False


#: Messages like the ones Azure attaches to each code, so clients can log something realistic.
DEFAULT_MESSAGES = {
    "AllocationFailed": (
        "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. "
        "Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance"
    ),
    "ZonalAllocationFailed": (
        "Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. "
        "Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance"
    ),
    "OverconstrainedAllocationRequest": (
        "Allocation failed. VM(s) with the following constraints cannot be allocated, because the condition "
        "is too restrictive. Please remove some constraints and try again."
    ),
    "SkuNotAvailable": (
        "The requested VM size is currently not available in this location. Please try another size or deploy "
        "to a different location or zones. See https://aka.ms/azureskunotavailable for details."
    ),
    "QuotaExceeded": (
        "Operation could not be completed as it results in exceeding approved Total Regional Cores quota."
    ),
    "AKSCapacityError": "Creating the resource in this region is currently not possible due to capacity constraints.",
    "OperationNotAllowed": "Operation is not allowed: another operation is in progress.",
}


class Counters:
    """ARM requests seen by this process (faulted and unauthenticated ones included)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.by_method: Counter[str] = Counter()
        self.by_cluster: Counter[str] = Counter()
        self.writes = 0
        self.writes_by_resource: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def record(self, method: str, cluster: str | None, resource: str | None) -> None:
        """Count one request; PUT, PATCH and DELETE are writes, attributed to ``resource``."""
        self.total += 1
        self.by_method[method] += 1
        if cluster:
            self.by_cluster[cluster] += 1
        if method in ("PUT", "PATCH", "DELETE"):
            self.writes += 1
            if resource:
                self.writes_by_resource[resource] += 1

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "by_method", "by_cluster", "writes", "writes_by_resource", "faults"}``;
        cluster and resource keys are lower-cased ARM ids."""
        return {
            "total": self.total,
            "by_method": dict(self.by_method),
            "by_cluster": dict(self.by_cluster),
            "writes": self.writes,
            "writes_by_resource": dict(self.writes_by_resource),
            "faults": dict(self.faults),
        }


class AdminState:
    """Config, fail-next rules (both persisted) and counters of one emulator process."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        doc = store.get(_KIND, "config")
        self.config = ArmConfig.model_validate(doc) if doc else ArmConfig()
        self.counters = Counters()

    def update_config(self, fields: dict[str, Any]) -> ArmConfig:
        """Merge ``fields`` into the config (validated as a whole) and persist it."""
        merged = {**self.config.model_dump(), **fields}
        self.config = ArmConfig.model_validate(merged)
        self.store.put(_KIND, "config", self.config.model_dump())
        return self.config

    def rules(self) -> list[FailNext]:
        doc = self.store.get(_KIND, "fail-next") or {"rules": []}
        return [FailNext.model_validate(rule) for rule in doc["rules"]]

    def add_rule(self, rule: FailNext) -> list[FailNext]:
        rules = [*self.rules(), rule]
        self._save_rules(rules)
        return rules

    def take_failure(self, *subjects: str) -> dict[str, str] | None:
        """Consume one use of the oldest rule matching any of ``subjects``; its error, or None."""
        rules = self.rules()
        lowered = [s.lower() for s in subjects]
        for index, rule in enumerate(rules):
            if rule.match is None or any(rule.match.lower() in s for s in lowered):
                if rule.count > 1:
                    rules[index] = rule.model_copy(update={"count": rule.count - 1})
                else:
                    del rules[index]
                self._save_rules(rules)
                message = rule.message or DEFAULT_MESSAGES.get(rule.code, f"The operation failed with {rule.code}.")
                return {"code": rule.code, "message": message}
        return None

    def reset(self) -> None:
        self.config = ArmConfig()
        self.store.delete(_KIND, "config")
        self.store.delete(_KIND, "fail-next")
        self.counters.reset()

    def _save_rules(self, rules: list[FailNext]) -> None:
        self.store.put(_KIND, "fail-next", {"rules": [rule.model_dump() for rule in rules]})
