"""The cluster spec: one typed, frozen value from the request to the provider.

A ``ClusterSpec`` is built once from a validated request (``from_request`` in the service)
or from the stored JSON (``from_json``, through the ``clusters.spec`` column type), and is
what the service, validation, entitlements, planning, usage and estimates read. It never
changes in place: a resize makes a new one (``with_changes``).

Each node spec carries its VM size resolved from the catalog once (``size``), so nothing
downstream looks a size up again. ``size`` is ``None`` only for a name the catalog lacks:
the API refuses such a spec (``unknown_sizes``), but a stored spec may outlive a catalog
entry, and a worker must keep running it rather than crash; ``shape`` answers for that case.

The stored JSON keeps the wire spelling (``ray_version``, ``image``, ``head.vm_size``,
``worker_groups[]`` …) so existing rows and API answers are unchanged. Optional keys that
came later are left out while they hold their default (``head.gcs_fault_tolerance`` only
appears when true), for the same reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rayplane import catalog
from rayplane.providers.base import NodeShape

HEAD_GROUP = "head"


def _shape(vm_size: str, size: catalog.VmSize | None, spot: bool) -> NodeShape:
    if size is None:  # refused at the API; a catalog change must not crash the worker
        return NodeShape(vm_size=vm_size, vcpus=1, memory_gib=1.0, gpus=0, spot=spot)
    return NodeShape(vm_size=size.name, vcpus=size.vcpus, memory_gib=size.memory_gib, gpus=size.gpus, spot=spot)


@dataclass(frozen=True, slots=True)
class HeadSpec:
    vm_size: str
    # Ray's GCS fault tolerance: the head keeps the cluster's metadata in an external Redis,
    # so a head that dies is restarted without losing detached actors, jobs or workers.
    gcs_fault_tolerance: bool = False
    size: catalog.VmSize | None = field(default=None, compare=False, repr=False)

    @property
    def shape(self) -> NodeShape:
        return _shape(self.vm_size, self.size, False)


@dataclass(frozen=True, slots=True)
class WorkerGroupSpec:
    name: str
    vm_size: str
    min_nodes: int = 0
    max_nodes: int = 1
    spot: bool = False
    fallback_to_on_demand: bool = False
    size: catalog.VmSize | None = field(default=None, compare=False, repr=False)

    @property
    def shape(self) -> NodeShape:
        return _shape(self.vm_size, self.size, self.spot)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    ray_version: str
    image: str | None
    head: HeadSpec
    worker_groups: tuple[WorkerGroupSpec, ...] = ()
    idle_timeout_minutes: int | None = None

    # ---- construction -------------------------------------------------------------
    @classmethod
    def build(
        cls,
        *,
        ray_version: str,
        image: str | None,
        head_vm_size: str,
        worker_groups: Sequence[Mapping[str, Any]],
        idle_timeout_minutes: int | None,
        gcs_fault_tolerance: bool = False,
    ) -> ClusterSpec:
        """A spec with every VM size resolved from the catalog (the one lookup)."""
        return cls(
            ray_version=ray_version,
            image=image,
            head=HeadSpec(
                vm_size=head_vm_size, gcs_fault_tolerance=gcs_fault_tolerance, size=catalog.get(head_vm_size)
            ),
            worker_groups=tuple(_group(g) for g in worker_groups),
            idle_timeout_minutes=idle_timeout_minutes,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterSpec:
        """The spec of a stored (or wire) JSON object; missing optional keys take defaults."""
        return cls.build(
            ray_version=str(data.get("ray_version") or ""),
            image=data.get("image"),
            head_vm_size=str(data["head"]["vm_size"]),
            worker_groups=list(data.get("worker_groups") or []),
            idle_timeout_minutes=data.get("idle_timeout_minutes"),
            gcs_fault_tolerance=data["head"].get("gcs_fault_tolerance") is True,
        )

    def to_json(self) -> dict[str, Any]:
        """The stored and wire form (the keys the API has always shown; an optional key that
        came later only when it is not its default)."""
        head: dict[str, Any] = {"vm_size": self.head.vm_size}
        if self.head.gcs_fault_tolerance:
            head["gcs_fault_tolerance"] = True
        return {
            "ray_version": self.ray_version,
            "image": self.image,
            "head": head,
            "worker_groups": [
                {
                    "name": g.name,
                    "vm_size": g.vm_size,
                    "min_nodes": g.min_nodes,
                    "max_nodes": g.max_nodes,
                    "spot": g.spot,
                    "fallback_to_on_demand": g.fallback_to_on_demand,
                }
                for g in self.worker_groups
            ],
            "idle_timeout_minutes": self.idle_timeout_minutes,
        }

    def with_changes(
        self,
        *,
        worker_groups: Sequence[Mapping[str, Any]] | None = None,
        idle_timeout_minutes: int | object | None = dataclasses.MISSING,
        gcs_fault_tolerance: bool | None = None,
    ) -> ClusterSpec:
        """A copy with the worker groups replaced, the idle timeout set (None clears it) and/or
        the head's GCS fault tolerance turned on or off."""
        spec = self
        if gcs_fault_tolerance is not None:
            head = dataclasses.replace(spec.head, gcs_fault_tolerance=gcs_fault_tolerance)
            spec = dataclasses.replace(spec, head=head)
        if worker_groups is not None:
            spec = dataclasses.replace(spec, worker_groups=tuple(_group(g) for g in worker_groups))
        if idle_timeout_minutes is not dataclasses.MISSING:
            assert idle_timeout_minutes is None or isinstance(idle_timeout_minutes, int)
            spec = dataclasses.replace(spec, idle_timeout_minutes=idle_timeout_minutes)
        return spec

    # ---- facts ----------------------------------------------------------------------
    def sizes(self) -> Iterator[tuple[str, str, catalog.VmSize | None]]:
        """(field path under the spec, size name, resolved size) of the head and each group."""
        yield "head.vm_size", self.head.vm_size, self.head.size
        for i, g in enumerate(self.worker_groups):
            yield f"worker_groups.{i}.vm_size", g.vm_size, g.size

    def unknown_sizes(self) -> list[tuple[str, str]]:
        """(field path, name) of every size the catalog lacks."""
        return [(path, name) for path, name, size in self.sizes() if size is None]

    @property
    def nodes_at_max(self) -> int:
        return 1 + sum(g.max_nodes for g in self.worker_groups)

    @property
    def max_vcpus(self) -> int:
        """vCPUs of the head plus every group at its max (unknown sizes count as 0)."""
        head = self.head.size.vcpus if self.head.size else 0
        return head + sum((g.size.vcpus if g.size else 0) * g.max_nodes for g in self.worker_groups)

    @property
    def max_gpus(self) -> int:
        head = self.head.size.gpus if self.head.size else 0
        return head + sum((g.size.gpus if g.size else 0) * g.max_nodes for g in self.worker_groups)

    def group(self, name: str) -> WorkerGroupSpec | None:
        return next((g for g in self.worker_groups if g.name == name), None)


def _group(g: Mapping[str, Any]) -> WorkerGroupSpec:
    vm_size = str(g["vm_size"])
    return WorkerGroupSpec(
        name=str(g["name"]),
        vm_size=vm_size,
        min_nodes=int(g.get("min_nodes", 0)),
        max_nodes=int(g.get("max_nodes", 1)),
        spot=bool(g.get("spot", False)),
        fallback_to_on_demand=bool(g.get("fallback_to_on_demand", False)),
        size=catalog.get(vm_size),
    )
