"""The hourly cost range of a cluster spec, from the catalog's prices (no database).

Range: every group at ``min_nodes`` (plus the head) to every group at ``max_nodes``. A size
without a catalog price is reported as such, per line and in ``unpriced_vm_sizes``; the
totals are then null, and only the priced part is summed separately, so nothing is guessed.
Spot groups are priced at the pay-as-you-go price (the catalog has no spot prices): an upper
bound, which the note says.

Beside the compute price, ``fees`` gives Rayplane's fee per metering dimension (vCPU-hours
and GPU-hours of the nodes, spot ones included) for the plans ``rayplane.billing.fees``
picks; the fee totals are given only for the tenant's own plan.
"""

from __future__ import annotations

from rayplane import catalog
from rayplane.billing.fees import FeePlans, estimate_fees
from rayplane.billing.schemas import Estimate, EstimateLine, EstimateRequest
from rayplane.common.errors import FieldError, InvalidInput

NOTE = (
    "Azure pay-as-you-go list prices from Rayplane's VM catalog, one region each (see price_region and "
    "price_date); spot nodes are priced at the pay-as-you-go price, an upper bound. Marketplace plan "
    "fees are listed apart (fees)."
)


def _line(group: str, vm_size: str, spot: bool, lo: int, hi: int) -> EstimateLine:
    size = catalog.get(vm_size)
    assert size is not None
    price = size.price
    per = price.usd_per_hour if price else None
    return EstimateLine(
        group=group,
        vm_size=size.name,
        spot=spot,
        min_nodes=lo,
        max_nodes=hi,
        usd_per_node_hour=per,
        min_usd_per_hour=round(per * lo, 4) if per is not None else None,
        max_usd_per_hour=round(per * hi, 4) if per is not None else None,
        price_region=price.region if price else None,
        price_date=price.date.isoformat() if price else None,
        price_source=price.source if price else None,
    )


def _check(body: EstimateRequest) -> None:
    errors: list[FieldError] = []

    def size(path: str, name: str) -> None:
        if catalog.get(name) is None:
            hint = catalog.suggest(name)
            errors.append(
                FieldError(path, f"unknown VM size {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else ""))
            )

    size("body.head.vm_size", body.head.vm_size)
    for i, group in enumerate(body.worker_groups):
        size(f"body.worker_groups.{i}.vm_size", group.vm_size)
        if group.min_nodes > group.max_nodes:
            errors.append(
                FieldError(
                    f"body.worker_groups.{i}.min_nodes",
                    f"min_nodes {group.min_nodes} is above max_nodes {group.max_nodes}",
                )
            )
    if errors:
        raise InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors[:5]), errors=errors)


def _units(body: EstimateRequest, at_max: bool) -> dict[str, float]:
    """vCPUs and GPUs running (per hour) with every group at its min (or max) nodes, head included."""
    nodes = [(body.head.vm_size, 1)]
    nodes += [(g.vm_size, g.max_nodes if at_max else g.min_nodes) for g in body.worker_groups]
    units = {"vcpu_hours": 0.0, "gpu_hours": 0.0}
    for name, count in nodes:
        size = catalog.get(name)
        assert size is not None
        units["vcpu_hours"] += size.vcpus * count
        units["gpu_hours"] += size.gpus * count
    return units


def estimate(body: EstimateRequest, fees: FeePlans) -> Estimate:
    """The estimate of ``body`` with the fees of ``fees``; ``InvalidInput`` naming each unknown
    size or bad range."""
    _check(body)
    fee_lines = estimate_fees(fees, _units(body, at_max=False), _units(body, at_max=True))
    own = [f for f in fee_lines if f.plan_id == fees.current]
    lines = [_line("head", body.head.vm_size, False, 1, 1)]
    lines += [_line(g.name, g.vm_size, g.spot, g.min_nodes, g.max_nodes) for g in body.worker_groups]
    priced = [line for line in lines if line.usd_per_node_hour is not None]
    unpriced = sorted({line.vm_size for line in lines if line.usd_per_node_hour is None})
    low = round(sum(line.min_usd_per_hour or 0.0 for line in priced), 4)
    high = round(sum(line.max_usd_per_hour or 0.0 for line in priced), 4)
    complete = not unpriced
    return Estimate(
        complete=complete,
        min_usd_per_hour=low if complete else None,
        max_usd_per_hour=high if complete else None,
        priced_min_usd_per_hour=low,
        priced_max_usd_per_hour=high,
        unpriced_vm_sizes=unpriced,
        lines=lines,
        note=NOTE,
        plan_id=fees.current,
        fees=fee_lines,
        fee_min_usd_per_hour=round(sum(f.min_usd_per_hour for f in own), 4) if fees.current else None,
        fee_max_usd_per_hour=round(sum(f.max_usd_per_hour for f in own), 4) if fees.current else None,
        fee_note=fees.note,
    )
