"""Marketplace plans: what each plan id allows (quotas) and what it meters (dimensions).

Contract:
- The plans are the package file ``plans.yaml``, read and validated once, when this module
  is imported: a malformed file raises ``PlanError`` at import, naming the plan (position and
  id) and the problem, so a bad release fails at start-up rather than at the first purchase.
- ``vm_families`` must name families of the VM catalog (``rayplane.catalog``); a typo is an
  error, not a silently empty allowance.
- Quotas count the clusters whose desired state is ``running``: stopped clusters hold no
  compute, and starting one is checked like a create. ``violations`` is a pure function (the
  caller passes the other running clusters' specs), so it is tested as one and shared by the
  API's checks (create, resize, start) and the webhook's downgrade check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from rayplane import catalog
from rayplane.clusters.spec import ClusterSpec
from rayplane.common.errors import FieldError

PLANS_FILE = "plans.yaml"
PLAN_KEYS = frozenset({"id", "display_name", "quotas", "dimensions"})
QUOTA_KEYS = frozenset({"max_clusters", "max_nodes", "max_gpus", "vm_families", "spot_allowed"})
DIMENSION_KEYS = frozenset({"id", "unit", "description", "price_note", "usd_per_unit"})


class PlanError(ValueError):
    """The plans file is malformed; the message names the plan and the problem."""


@dataclass(frozen=True, slots=True)
class Quotas:
    max_clusters: int
    max_nodes: int
    max_gpus: int
    vm_families: frozenset[str]
    spot_allowed: bool


@dataclass(frozen=True, slots=True)
class Dimension:
    """A custom meter of the plan: ``id`` is the Marketplace dimension id.

    ``usd_per_unit`` is Rayplane's fee for one ``unit`` on this plan, the figure set for the
    dimension in Partner Center (the Marketplace bills it; Rayplane only shows it).
    """

    id: str
    unit: str
    description: str
    price_note: str
    usd_per_unit: float


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    display_name: str
    quotas: Quotas
    dimensions: tuple[Dimension, ...]

    @property
    def dimension_ids(self) -> frozenset[str]:
        return frozenset(d.id for d in self.dimensions)


def _fail(where: str, problem: str) -> PlanError:
    return PlanError(f"{where}: {problem}")


def _keys(entry: object, expected: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise _fail(where, f"must be a mapping, got {type(entry).__name__}")
    missing = sorted(expected - set(entry))
    unknown = sorted(str(k) for k in set(entry) - expected)
    if missing:
        raise _fail(where, f"missing {', '.join(missing)}")
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)}")
    return entry


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise _fail(where, f"{key} must be a non-empty string without surrounding spaces, got {value!r}")
    return value


def _count(entry: Mapping[str, Any], key: str, where: str) -> int:
    value = entry[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(where, f"quotas.{key} must be an integer >= 0, got {value!r}")
    return value


def _quotas(raw: object, where: str) -> Quotas:
    entry = _keys(raw, QUOTA_KEYS, f"{where} quotas")
    families = entry["vm_families"]
    if not isinstance(families, list) or not families or not all(isinstance(f, str) for f in families):
        raise _fail(where, "quotas.vm_families must be a non-empty list of family names")
    known = set(catalog.families())
    unknown = sorted(set(families) - known)
    if unknown:
        raise _fail(where, f"quotas.vm_families names families the catalog lacks: {', '.join(unknown)}")
    if not isinstance(entry["spot_allowed"], bool):
        raise _fail(where, f"quotas.spot_allowed must be true or false, got {entry['spot_allowed']!r}")
    return Quotas(
        max_clusters=_count(entry, "max_clusters", where),
        max_nodes=_count(entry, "max_nodes", where),
        max_gpus=_count(entry, "max_gpus", where),
        vm_families=frozenset(families),
        spot_allowed=entry["spot_allowed"],
    )


def _fee(entry: Mapping[str, Any], where: str) -> float:
    value = entry["usd_per_unit"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1000:
        raise _fail(where, f"usd_per_unit must be a number from 0 to 1000, got {value!r}")
    return float(value)


def _dimensions(raw: object, where: str) -> tuple[Dimension, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "dimensions must be a non-empty list")
    found: list[Dimension] = []
    for i, item in enumerate(raw, start=1):
        entry = _keys(item, DIMENSION_KEYS, f"{where} dimension #{i}")
        dim = Dimension(
            id=_text(entry, "id", where),
            unit=_text(entry, "unit", where),
            description=_text(entry, "description", where),
            price_note=_text(entry, "price_note", where),
            usd_per_unit=_fee(entry, where),
        )
        if any(d.id == dim.id for d in found):
            raise _fail(where, f"dimension {dim.id!r} is listed twice")
        found.append(dim)
    return tuple(found)


def parse_plans(document: object, *, origin: str = PLANS_FILE) -> dict[str, Plan]:
    """Validate the loaded YAML document (a non-empty list of plans) and build the plans, by id."""
    if not isinstance(document, list) or not document:
        raise _fail(origin, "must be a non-empty list of plans")
    plans: dict[str, Plan] = {}
    for index, raw in enumerate(document, start=1):
        where = f"{origin} plan #{index}"
        entry = _keys(raw, PLAN_KEYS, where)
        plan_id = _text(entry, "id", where)
        where = f"{where} ({plan_id})"
        if plan_id in plans:
            raise _fail(where, "duplicate plan id")
        plans[plan_id] = Plan(
            id=plan_id,
            display_name=_text(entry, "display_name", where),
            quotas=_quotas(entry["quotas"], where),
            dimensions=_dimensions(entry["dimensions"], where),
        )
    return plans


def _load() -> dict[str, Plan]:
    text = resources.files(__package__ or "rayplane.marketplace").joinpath(PLANS_FILE).read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlanError(f"{PLANS_FILE}: not valid YAML: {exc}") from exc
    return parse_plans(document)


_PLANS = _load()


def get(plan_id: str) -> Plan | None:
    """The plan ``plan_id`` (exact match, as the Marketplace spells it), or None."""
    return _PLANS.get(plan_id)


def all_plans() -> tuple[Plan, ...]:
    """Every plan, in file order."""
    return tuple(_PLANS.values())


# ---- quotas ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Footprint:
    """What one cluster spec holds at its maximum size."""

    nodes: int
    gpus: int


def footprint(spec: ClusterSpec) -> Footprint:
    """Nodes and GPUs of ``spec`` at maximum size (unknown sizes count no GPUs)."""
    return Footprint(spec.nodes_at_max, spec.max_gpus)


def _spec_errors(plan: Plan, spec: ClusterSpec, base: str) -> list[FieldError]:
    """What the plan forbids in ``spec`` whatever else runs: VM families and spot."""
    errors: list[FieldError] = []
    allowed = ", ".join(sorted(plan.quotas.vm_families))

    def family(path: str, size: catalog.VmSize | None) -> None:
        if size is not None and size.family not in plan.quotas.vm_families:
            errors.append(
                FieldError(path, f"{size.name} is a {size.family} size; plan {plan.id!r} allows the families {allowed}")
            )

    family(f"{base}.head.vm_size", spec.head.size)
    for i, group in enumerate(spec.worker_groups):
        family(f"{base}.worker_groups.{i}.vm_size", group.size)
        if group.spot and not plan.quotas.spot_allowed:
            errors.append(FieldError(f"{base}.worker_groups.{i}.spot", f"plan {plan.id!r} does not allow spot VMs"))
    return errors


def violations(
    plan: Plan,
    spec: ClusterSpec,
    others: Iterable[ClusterSpec],
    *,
    base: str = "body",
    name_field: str = "body.name",
) -> list[FieldError]:
    """Every way running ``spec`` next to the ``others`` (the tenant's other running clusters)
    would break ``plan``; ``[]`` when it fits. Field paths start at ``base``."""
    q = plan.quotas
    errors = _spec_errors(plan, spec, base)
    used = [footprint(s) for s in others]
    mine = footprint(spec)
    nodes_used, gpus_used = sum(f.nodes for f in used), sum(f.gpus for f in used)
    if len(used) + 1 > q.max_clusters:
        errors.append(
            FieldError(
                name_field,
                f"plan {plan.id!r} allows {q.max_clusters} running cluster(s); {len(used)} already run",
            )
        )
    if nodes_used + mine.nodes > q.max_nodes:
        errors.append(
            FieldError(
                f"{base}.worker_groups",
                f"{mine.nodes} node(s) at maximum size; plan {plan.id!r} allows {q.max_nodes} across running "
                f"clusters and {nodes_used} are taken",
            )
        )
    if mine.gpus and gpus_used + mine.gpus > q.max_gpus:
        errors.append(
            FieldError(
                f"{base}.worker_groups",
                f"{mine.gpus} GPU(s) at maximum size; plan {plan.id!r} allows {q.max_gpus} across running "
                f"clusters and {gpus_used} are taken",
            )
        )
    return errors


def fits(plan: Plan, running: Sequence[ClusterSpec]) -> list[str]:
    """Why the tenant's running clusters would not fit ``plan`` (``[]`` when they do).

    Used to accept or reject a plan change: each cluster's own spec is checked, then the totals.
    """
    q = plan.quotas
    reasons: list[str] = []
    for i, spec in enumerate(running):
        reasons += [f"running cluster #{i + 1}: {e.message}" for e in _spec_errors(plan, spec, "spec")]
    feet = [footprint(s) for s in running]
    if len(running) > q.max_clusters:
        reasons.append(f"{len(running)} clusters run; plan {plan.id!r} allows {q.max_clusters}")
    nodes, gpus = sum(f.nodes for f in feet), sum(f.gpus for f in feet)
    if nodes > q.max_nodes:
        reasons.append(f"running clusters hold {nodes} nodes at maximum size; plan {plan.id!r} allows {q.max_nodes}")
    if gpus > q.max_gpus:
        reasons.append(f"running clusters hold {gpus} GPUs at maximum size; plan {plan.id!r} allows {q.max_gpus}")
    return reasons
