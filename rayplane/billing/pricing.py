"""Prices from the VM catalog, and costs of node-hours.

Contract: a cost is only ever ``node_hours x catalog price`` for sizes the catalog prices;
sizes without a price are reported by name (and their node-hours), never given an invented
figure. Spot nodes are costed at the size's pay-as-you-go price, which the catalog records:
an upper bound of what they cost, which is the safe side for budgets and estimates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rayplane import catalog


def usd_per_hour(vm_size: str) -> float | None:
    """The catalog's pay-as-you-go USD/hour for one node of ``vm_size``, or None."""
    size = catalog.get(vm_size)
    return size.price.usd_per_hour if size and size.price else None


@dataclass
class Cost:
    """Cost of some node-hours: ``usd`` over the priced sizes; the rest listed, not costed."""

    usd: float = 0.0
    priced_node_hours: float = 0.0
    unpriced_node_hours: float = 0.0
    unpriced_sizes: set[str] = field(default_factory=set)

    def add(self, vm_size: str, node_hours: float) -> None:
        price = usd_per_hour(vm_size)
        if price is None:
            self.unpriced_node_hours += node_hours
            size = catalog.get(vm_size)
            self.unpriced_sizes.add(size.name if size else vm_size)
        else:
            self.usd += node_hours * price
            self.priced_node_hours += node_hours

    @property
    def usd_or_none(self) -> float | None:
        """Rounded USD, or None when nothing in it had a price (so there is no figure at all)."""
        if self.priced_node_hours == 0 and self.unpriced_node_hours > 0:
            return None
        return round(self.usd, 4)


def cost_of(rows: Iterable[tuple[str, float]]) -> Cost:
    """The cost of ``(vm_size, node_hours)`` rows."""
    cost = Cost()
    for vm_size, node_hours in rows:
        cost.add(vm_size, node_hours)
    return cost
