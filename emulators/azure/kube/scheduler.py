"""Pod scheduling onto simulated nodes, and the cluster autoscaler's view of pending pods.

Filters, as kube-scheduler's default plugins apply them:

* the node is Ready (a booting node carries the ``not-ready`` taint) and not cordoned
  (``spec.unschedulable``, unless the pod tolerates ``node.kubernetes.io/unschedulable``:
  "node(s) were unschedulable"), user taints included (:mod:`emulators.azure.kube.nodeedits`);
* ``spec.nodeSelector`` and required node affinity (``In``, ``NotIn``, ``Exists``,
  ``DoesNotExist``, ``Gt``, ``Lt`` over node labels) match the node's labels;
* every ``NoSchedule``/``NoExecute`` taint of the node is tolerated (``Exists`` or ``Equal``,
  empty effect matching all effects, empty key with ``Exists`` tolerating everything);
* the pod's requests (cpu, memory, ``nvidia.com/gpu``, one pod slot) fit the node's
  allocatable minus what its non-terminal pods request. A container's requests default to its
  limits; init containers count as their maximum (``max(sum(containers), max(init))``).

Among feasible nodes the least allocated one wins (kube-scheduler's default ``LeastAllocated``
score), ties by name. A pod no node can take keeps ``PodScheduled=False``/``Unschedulable``
with the scheduler's message (``0/3 nodes are available: ...``).

:func:`pool_demand` is the cluster autoscaler: for each agent pool it bin-packs (first fit)
the pending pods that a node of that pool could host onto the pool's existing nodes (booting
ones included) and as many new nodes as needed, and reports the nodes in use plus the new ones.
Like cluster-autoscaler, whose template node runs the DaemonSets a new node would run
(https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md), it judges a
pool by what a new node leaves free after AKS's DaemonSets (``reserved``), and
:func:`scale_up_refusal` words its ``NotTriggerScaleUp`` event when no pool could take a pod.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from emulators.azure import aksnode
from emulators.azure.fleet import SPOT_LABEL, Node, Pool

GPU = "nvidia.com/gpu"
_UNSCHEDULABLE = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
_SUFFIX: dict[str, Decimal] = {
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15),
    "E": Decimal(10**18),
}  # fmt: skip


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes quantity (``500m``, ``4Gi``, ``3500Mi``, ``1.5``, ``2e3``) as a Decimal."""
    text = str(value).strip()
    if not text:
        raise ValueError("empty quantity")
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
        if text.endswith(suffix):
            return _number(text[:-2]) * _SUFFIX[suffix]
    if text[-1] in "numkMGTPE":
        return _number(text[:-1]) * _SUFFIX[text[-1]]
    return _number(text)


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"quantities must match the regular expression: {text!r}") from None


def format_cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(amount: int) -> str:
    for suffix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount and amount % factor == 0:
            return f"{amount // factor}{suffix}"
    return str(amount)


@dataclass
class Resources:
    """Amounts the scheduler accounts: millicores, bytes, GPUs, pod slots."""

    cpu: int = 0
    memory: int = 0
    gpu: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu, self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory, self.gpu - other.gpu, self.pods - other.pods)

    def fits(self, free: Resources) -> bool:
        return self.cpu <= free.cpu and self.memory <= free.memory and self.gpu <= free.gpu and self.pods <= free.pods

    def short(self, free: Resources) -> list[str]:
        """Names of the resources ``free`` lacks, in the scheduler's words."""
        out = []
        if self.cpu > free.cpu:
            out.append("Insufficient cpu")
        if self.memory > free.memory:
            out.append("Insufficient memory")
        if self.gpu > free.gpu:
            out.append(f"Insufficient {GPU}")
        if self.pods > free.pods:
            out.append("Too many pods")
        return out


def _amounts(values: Mapping[str, Any]) -> Resources:
    out = Resources()
    try:
        if "cpu" in values:
            out.cpu = math.ceil(parse_quantity(values["cpu"]) * 1000)
        if "memory" in values:
            out.memory = math.ceil(parse_quantity(values["memory"]))
        if GPU in values:
            out.gpu = math.ceil(parse_quantity(values[GPU]))
    except ValueError:
        pass
    return out


def container_requests(container: Mapping[str, Any]) -> Resources:
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return _amounts(merged)


def pod_requests(spec: Mapping[str, Any]) -> Resources:
    total = Resources()
    for c in spec.get("containers") or []:
        total = total + container_requests(c)
    for c in spec.get("initContainers") or []:
        r = container_requests(c)
        total = Resources(max(total.cpu, r.cpu), max(total.memory, r.memory), max(total.gpu, r.gpu))
    total.pods = 1
    return total


def capacity_of(capacity: Mapping[str, str]) -> Resources:
    out = _amounts(capacity)
    out.pods = int(capacity.get("pods", "110"))
    return out


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for t in tolerations:
        effect = t.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key") or ""
        op = t.get("operator") or "Equal"
        if not key and op == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if op == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
        value = labels.get(str(key))
        if (
            (op == "In" and value not in values)
            or (op == "NotIn" and value in values)
            or (op == "Exists" and value is None)
            or (op == "DoesNotExist" and value is not None)
        ):
            return False
        if op in ("Gt", "Lt"):
            try:
                ok = value is not None and (int(value) > int(values[0]) if op == "Gt" else int(value) < int(values[0]))
            except (ValueError, IndexError):
                ok = False
            if not ok:
                return False
    return True


def selects(spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """``nodeSelector`` and required node affinity against node ``labels``."""
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        or {}
    ).get("nodeSelectorTerms")
    if required:
        return any(_term_matches(term, labels) for term in required)
    return True


def untolerated(spec: Mapping[str, Any], taints: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    tolerations = spec.get("tolerations") or []
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return taint
    return None


@dataclass
class NodeView:
    """A node as the scheduler sees it: labels, taints, allocatable and what is left of it."""

    name: str
    labels: dict[str, str]
    taints: list[dict[str, Any]]
    allocatable: Resources
    free: Resources
    ready: bool
    pods: list[str] = field(default_factory=list)
    unschedulable: bool = False  # cordoned (spec.unschedulable)


def node_view(node: Node, ready: bool, reserved: Resources | None = None, gpus: int = 0) -> NodeView:
    """The node with ``gpus`` more advertised (a device plugin runs on it) and ``reserved`` --
    what AKS's DaemonSet pods request on it -- already taken from ``free``."""
    alloc = capacity_of(node.allocatable or node.capacity)
    alloc.gpu += gpus
    taints = [dict(t) for t in node.taints]
    if not ready:
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    return NodeView(node.name, dict(node.labels), taints, alloc, alloc - (reserved or Resources()), ready)


def _score(view: NodeView, req: Resources) -> float:
    """LeastAllocated: the mean free fraction of cpu and memory after placing the pod."""
    cpu = (view.free.cpu - req.cpu) / view.allocatable.cpu if view.allocatable.cpu else 0
    mem = (view.free.memory - req.memory) / view.allocatable.memory if view.allocatable.memory else 0
    return (cpu + mem) / 2


def choose_node(spec: Mapping[str, Any], req: Resources, views: Sequence[NodeView]) -> tuple[NodeView | None, str]:
    """The node to bind to, or None and the scheduler's ``0/N nodes are available`` message."""
    feasible: list[NodeView] = []
    reasons: dict[str, int] = {}
    for view in views:
        why: list[str] = []
        if view.unschedulable and not tolerates(spec.get("tolerations") or [], _UNSCHEDULABLE):
            why = ["node(s) were unschedulable"]
        elif not selects(spec, view.labels):
            why = ["node(s) didn't match Pod's node affinity/selector"]
        elif (taint := untolerated(spec, view.taints)) is not None:
            why = [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"]
        else:
            why = req.short(view.free)
        if why:
            for w in why:
                reasons[w] = reasons.get(w, 0) + 1
        else:
            feasible.append(view)
    if feasible:
        best = max(feasible, key=lambda v: (_score(v, req), [-ord(c) for c in v.name]))
        return best, ""
    n = len(views)
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    message = f"0/{n} nodes are available" + (f": {detail}." if detail else ".")
    message += f" preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling."
    return None, message


def admits(spec: Mapping[str, Any], view: NodeView) -> bool:
    """Whether the autoscaler may count on ``view`` for the pod: cordon, selector and taints
    (a booting node's ``not-ready`` taint aside -- it will be Ready)."""
    if view.unschedulable and not tolerates(spec.get("tolerations") or [], _UNSCHEDULABLE):
        return False
    taints = [t for t in view.taints if t.get("key") != "node.kubernetes.io/not-ready"]
    return selects(spec, view.labels) and untolerated(spec, taints) is None


def pool_template(pool: Pool, reserved: Resources | None = None, gpus: int = 0) -> NodeView:
    """A node the pool would add (labels and taints as :class:`Fleet` gives its nodes), with
    ``gpus`` advertised and ``reserved`` taken, as :func:`node_view`."""
    spec = pool.spec
    labels = aksnode.labels(spec, f"<new {spec.name} node>")
    taints: list[dict[str, Any]] = []
    for text in spec.taints:
        key_value, _, effect = text.partition(":")
        key, _, value = key_value.partition("=")
        taints.append({"key": key, "value": value, "effect": effect})
    if spec.spot:
        labels[SPOT_LABEL] = "spot"
        if not any(t["key"] == SPOT_LABEL for t in taints):
            taints.append({"key": SPOT_LABEL, "value": "spot", "effect": "NoSchedule"})
    alloc = capacity_of(aksnode.allocatable(spec))
    alloc.gpu += gpus
    return NodeView(f"<new {spec.name} node>", labels, taints, alloc, alloc - (reserved or Resources()), True)


def _can_grow(pool: Pool) -> bool:
    return pool.spec.autoscale and len(pool.nodes) < pool.spec.max_count


def scale_up_refusal(
    spec: Mapping[str, Any], req: Resources, templates: Sequence[NodeView], *, blocked: bool = False
) -> str | None:
    """The cluster autoscaler's ``NotTriggerScaleUp`` message when no node group can add a node
    that takes the pod, else None. As cluster-autoscaler words it: ``pod didn't trigger
    scale-up:`` and, per reason, how many node groups it ruled out (``2 Insufficient cpu,
    1 node(s) didn't match Pod's node affinity/selector``). ``blocked``: the pod is in
    :func:`pool_demand`'s ``stuck`` (it fits a group's node, but every such group is at its
    maximum size with no room on its nodes), so each group it fits is ruled out as ``max node
    group size reached``."""
    reasons: dict[str, int] = {}
    for template in templates:
        if not selects(spec, template.labels):
            why = ["node(s) didn't match Pod's node affinity/selector"]
        elif (taint := untolerated(spec, template.taints)) is not None:
            why = [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"]
        else:
            why = req.short(template.free) or (["max node group size reached"] if blocked else [])
        if not why:
            return None
        for w in why:
            reasons[w] = reasons.get(w, 0) + 1
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return f"pod didn't trigger scale-up: {detail}" if detail else "pod didn't trigger scale-up: no node groups"


def pool_demand(
    pools: Sequence[Pool],
    views: Mapping[str, NodeView],
    pending: Sequence[tuple[Mapping[str, Any], Resources]],
    templates: Mapping[str, NodeView] | None = None,
    stuck: list[Mapping[str, Any]] | None = None,
) -> dict[str, tuple[int, list[str]]]:
    """pool name -> (nodes needed, names of nodes with pods), for :meth:`Fleet.set_demand`.
    A pod that fits some pool's node but finds no room on a node there, planned or not, and no
    such pool that may grow is added to ``stuck`` (when given): it waits at a maximum size.

    ``views`` has every existing node (booting ones too) with ``free`` net of bound pods;
    ``pending`` are the unschedulable pods' specs and requests, oldest first; ``templates``
    the node each pool would add (:func:`pool_template`, by default without DaemonSets).
    """
    templates = dict(templates) if templates is not None else {p.spec.name: pool_template(p) for p in pools}
    members = {p.spec.name: [views[n.name] for n in p.nodes if n.name in views] for p in pools}
    used = {name: {v.name for v in nodes if v.pods} for name, nodes in members.items()}
    free = {
        v.name: Resources(v.free.cpu, v.free.memory, v.free.gpu, v.free.pods) for vs in members.values() for v in vs
    }
    new_nodes: dict[str, list[Resources]] = {p.spec.name: [] for p in pools}
    for spec, req in pending:
        candidates = [
            p
            for p in pools
            if selects(spec, templates[p.spec.name].labels)
            and untolerated(spec, templates[p.spec.name].taints) is None
            and req.fits(templates[p.spec.name].free)
        ]
        # Like cluster-autoscaler: a pod that fits a node already there (booting ones
        # included) or already planned asks for nothing new; otherwise the first pool (by
        # name) that can grow gets a node.
        spot = next(
            (
                (p.spec.name, v)
                for p in candidates
                for v in members[p.spec.name]
                if req.fits(free[v.name]) and admits(spec, v)
            ),
            None,
        )
        if spot is not None:
            owner, view = spot
            free[view.name] = free[view.name] - req
            used[owner].add(view.name)
            continue
        planned = next(
            ((p.spec.name, i) for p in candidates for i, r in enumerate(new_nodes[p.spec.name]) if req.fits(r)), None
        )
        if planned is not None:
            name, i = planned
            new_nodes[name][i] = new_nodes[name][i] - req
            continue
        grower = next(
            (p for p in candidates if _can_grow(p) and len(p.nodes) + len(new_nodes[p.spec.name]) < p.spec.max_count),
            None,
        )
        if grower is not None:
            new_nodes[grower.spec.name].append(templates[grower.spec.name].free - req)
        elif candidates and stuck is not None:
            stuck.append(spec)
    return {
        p.spec.name: (
            len(used[p.spec.name]) + len(new_nodes[p.spec.name]),
            sorted(v.name for v in members[p.spec.name] if v.pods),
        )
        for p in pools
    }
