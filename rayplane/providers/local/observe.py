"""What a local cluster looks like, from its head's dashboard HTTP API only.

- ``GET /api/v0/nodes?detail=1``: nodes, ``state`` ALIVE/DEAD, ``is_head_node`` and
  ``resources_total``, where the ``rayplane_group_<name>`` resource names the group.
- ``GET /api/cluster_status?format=0``: ``data.clusterStatus.loadMetricsReport`` with
  ``resourceDemand`` ``[[bundle, count], ...]``, ``pgDemand``
  ``[[{"bundles": [[bundle, count], ...], "strategy": ...}, count], ...]``, ``requestDemand``
  ``[[bundle, count], ...]`` (``ray.autoscaler.sdk.request_resources``), ``idleTimeMap``
  (null with Ray 2.60's autoscaler) and ``data.autoscalingStatus``, a text whose
  ``NodeIdleSeconds: Min=.. Mean=.. Max=..`` line is the idle time over nodes. The
  dashboard camel-cases dict keys it finds directly under dicts (``usage`` turns
  ``rayplane_group_x`` into ``rayplaneGroupX``); bundles sit in lists and keep their names,
  but names are matched in both spellings anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from rayplane.providers.base import ClusterTarget, NodeInfo, Observation, ProviderEvent, check_ray_auth
from rayplane.providers.local.commands import NODE_LABEL
from rayplane.providers.local.shapes import GROUP_RESOURCE_PREFIX, HEAD_GROUP, NodeResources

Bundle = dict[str, float]
HEAD_ONLY_RESOURCE = "node:__internal_head__"
# How Ray words the deaths Rayplane caused (a stop, a scale-down) or an idle drain.
_ASKED_FOR = ("Expected termination", "Terminated due to idle")
_IDLE_RE = re.compile(r"NodeIdleSeconds:\s*Min=(-?\d+(?:\.\d+)?)")
EPS = 1e-9


@dataclass(frozen=True)
class RayNode:
    node_id: str
    is_head: bool
    alive: bool
    group: str | None
    resources_total: dict[str, float]
    name: str | None = None  # the rayplane.io/node label: the node's name in our records
    # Why Ray marked the node DEAD (the state API's ``state_message``, from the GCS's
    # NodeDeathInfo: "Unexpected termination: health check failed ..."), if it said.
    death: str | None = None


@dataclass
class Demand:
    """Resource demand Ray cannot place now, in Ray's terms."""

    bundles: list[tuple[Bundle, int]] = field(default_factory=list)
    # One entry per pending placement group: its bundles and strategy.
    placement_groups: list[tuple[list[Bundle], str]] = field(default_factory=list)
    requests: list[tuple[Bundle, int]] = field(default_factory=list)


def to_camel_case(name: str) -> str:
    """The dashboard's key rewrite (ray.dashboard.utils.to_camel_case)."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def group_of(resources: Mapping[str, float]) -> str | None:
    for key in resources:
        if key.startswith(GROUP_RESOURCE_PREFIX):
            return key[len(GROUP_RESOURCE_PREFIX) :]
    return None


def parse_nodes(payload: Mapping[str, Any]) -> list[RayNode]:
    rows = (((payload.get("data") or {}).get("result") or {}).get("result")) or []
    nodes = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        resources = {str(k): float(v) for k, v in (row.get("resources_total") or {}).items()}
        name = (row.get("labels") or {}).get(NODE_LABEL)
        nodes.append(
            RayNode(
                node_id=str(row.get("node_id", "")),
                is_head=bool(row.get("is_head_node")),
                alive=row.get("state") == "ALIVE",
                group=group_of(resources),
                resources_total=resources,
                name=str(name) if name else None,
                death=str(row["state_message"]) if row.get("state_message") else None,
            )
        )
    return nodes


def death_events(nodes: Iterable[RayNode]) -> tuple[ProviderEvent, ...]:
    """A ``node_fault`` event per node Ray marked DEAD for a reason nobody asked for (not
    Rayplane's own stop or scale-down, which Ray calls an expected termination, nor an idle
    drain), with what happens next. Dead nodes stay in Ray's node table, so the same text
    comes back on every pass and the reconciler records it once."""
    found: list[ProviderEvent] = []
    for n in nodes:
        if n.alive or not n.death or n.death.startswith(_ASKED_FOR):
            continue
        who = "the head" if n.is_head else f"a node of group {n.group or '?'!r}"
        label = n.name or n.node_id[:12]
        preempted = n.death.startswith("Terminated due to preemption")
        text = (
            f"Ray lost {who} ({label}): {n.death}. Its tasks are retried and its actors restarted where "
            "they allow it; Rayplane starts a replacement. If it happens again, the node's raylet log says "
            "why (running out of memory is the usual cause)."
        )
        found.append(ProviderEvent("node_fault", text, "RayNodePreempted" if preempted else "RayNodeDied"))
    return tuple(found)


def _pairs(raw: Any) -> Iterable[tuple[Any, int]]:
    for item in raw or []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], (int, float)):
            yield item[0], int(item[1])


def _bundle(raw: Any) -> Bundle | None:
    if not isinstance(raw, dict):
        return None
    try:
        return {str(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        return None


def parse_demand(load_metrics: Mapping[str, Any]) -> Demand:
    demand = Demand()
    for raw, count in _pairs(load_metrics.get("resourceDemand")):
        if (b := _bundle(raw)) is not None and count > 0:
            demand.bundles.append((b, count))
    for raw, count in _pairs(load_metrics.get("requestDemand")):
        if (b := _bundle(raw)) is not None and count > 0:
            demand.requests.append((b, count))
    for raw, count in _pairs(load_metrics.get("pgDemand")):
        if not isinstance(raw, dict):
            continue
        bundles = [b for braw, n in _pairs(raw.get("bundles")) if (b := _bundle(braw)) is not None for _ in range(n)]
        strategy = str(raw.get("strategy") or "PACK")
        demand.placement_groups.extend((bundles, strategy) for _ in range(count))
    return demand


def idle_times(status_data: Mapping[str, Any]) -> tuple[float | None, dict[str, float]]:
    """(idle seconds of the whole cluster, idle seconds per node id when Ray reports them)."""
    cluster = status_data.get("clusterStatus") or {}
    load = cluster.get("loadMetricsReport") or {}
    per_node: dict[str, float] = {}
    for node_id, ms in (load.get("idleTimeMap") or {}).items():
        if isinstance(ms, (int, float)) and ms >= 0:
            per_node[str(node_id)] = ms / 1000.0
    if per_node:
        return min(per_node.values()), per_node
    match = _IDLE_RE.search(str(status_data.get("autoscalingStatus") or ""))
    if match and float(match.group(1)) >= 0:
        return float(match.group(1)), per_node
    return None, per_node


def _normalise(bundle: Bundle, known: Iterable[str]) -> Bundle:
    camel = {to_camel_case(k): k for k in known}
    return {(k if k in camel.values() else camel.get(k, k)): v for k, v in bundle.items() if v > EPS}


def fits(bundle: Bundle, capacity: Mapping[str, float]) -> bool:
    for key, amount in bundle.items():
        if key == HEAD_ONLY_RESOURCE:
            return False
        if key.startswith("node:"):
            continue  # every local node shares this machine's address
        if capacity.get(key, 0.0) + EPS < amount:
            return False
    return True


def _take(free: dict[str, float], bundle: Bundle) -> None:
    for key, amount in bundle.items():
        if not key.startswith("node:"):
            free[key] = free.get(key, 0.0) - amount


def _pack(items: Sequence[tuple[Bundle, bool]], capacity: Mapping[str, float]) -> int:
    """Nodes of ``capacity`` needed for these bundles (first fit, largest first); a bundle
    flagged True needs a node of its own (strict spread)."""
    nodes: list[tuple[dict[str, float], bool]] = []
    for bundle, alone in sorted(items, key=lambda it: (-it[0].get("CPU", 0), -it[0].get("memory", 0))):
        spot = None if alone else next((free for free, single in nodes if not single and fits(bundle, free)), None)
        if spot is None:
            spot = dict(capacity)
            nodes.append((spot, alone))
        _take(spot, bundle)
    return len(nodes)


def demand_by_group(
    demand: Demand,
    groups: Mapping[str, NodeResources],
    *,
    room: Mapping[str, bool] | None = None,
    alive: Sequence[RayNode] = (),
) -> tuple[dict[str, int], list[str]]:
    """Nodes wanted per group for this demand, and messages for demand no group can host.

    Each bundle goes to a group whose node could host it: a group with room to grow
    first, a group without GPUs for a bundle that needs none, then the smallest node.
    Requested resources (``request_resources``) count only for what the alive nodes'
    total resources do not already cover."""
    capacities = {name: res.as_ray_resources(name) for name, res in groups.items()}
    known = {k for cap in capacities.values() for k in cap} | {HEAD_ONLY_RESOURCE}
    has_room = dict(room or {})
    items: dict[str, list[tuple[Bundle, bool]]] = {name: [] for name in groups}
    unplaced: dict[str, int] = {}

    def place(bundle: Bundle, alone: bool) -> None:
        candidates = [name for name, cap in capacities.items() if fits(bundle, cap)]
        if not candidates:
            key = ", ".join(f"{k}: {v:g}" for k, v in sorted(bundle.items()))
            unplaced[key] = unplaced.get(key, 0) + 1
            return
        wants_gpu = bundle.get("GPU", 0) > 0

        def rank(name: str) -> tuple[bool, bool, float, float]:
            cap = capacities[name]
            return (not has_room.get(name, True), not wants_gpu and cap["GPU"] > 0, cap["CPU"], cap["memory"])

        items[min(candidates, key=rank)].append((bundle, alone))

    for raw, count in demand.bundles:
        bundle = _normalise(raw, known)
        for _ in range(count):
            place(bundle, False)
    for raw_bundles, strategy in demand.placement_groups:
        for raw in raw_bundles:
            place(_normalise(raw, known), strategy == "STRICT_SPREAD")
    free_nodes = [dict(n.resources_total) for n in alive if n.alive]
    for raw, count in demand.requests:
        bundle = _normalise(raw, known)
        for _ in range(count):
            spot = next((free for free in free_nodes if fits(bundle, free)), None)
            if spot is not None:
                _take(spot, bundle)
            else:
                place(bundle, False)
    wanted = {name: _pack(group_items, capacities[name]) for name, group_items in items.items() if group_items}
    messages = [f"demand no worker group can host: {n} x {{{key}}}" for key, n in sorted(unplaced.items())]
    return wanted, messages


def observe_cluster(
    target: ClusterTarget,
    dashboard_url: str | None,
    groups: Mapping[str, NodeResources],
    *,
    idle_node_seconds: float,
    timeout: float = 5.0,
    running: set[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Observation:
    """Ask the dashboard; a dashboard that does not answer means the head is down.

    ``running`` names the nodes whose processes are alive: Ray marks a killed node DEAD
    only once its health checks time out (15 s or more), so a node Ray still lists ALIVE
    counts only if its ``rayplane.io/node`` label names a running node (nodes without the
    label are counted as Ray reports them). ``headers`` carry the cluster's Ray token; a
    dashboard that refuses it raises ``RayAuthFailed`` (it answered: the head is up)."""
    zero = {g.name: 0 for g in target.groups}
    if dashboard_url is None:
        return Observation(head_alive=False, dashboard_url=None, nodes=zero)
    messages: list[str] = []
    with httpx.Client(base_url=dashboard_url, timeout=timeout, trust_env=False, headers=dict(headers or {})) as client:
        try:
            resp = client.get("/api/v0/nodes", params={"detail": "1", "limit": "10000"})
            check_ray_auth(dashboard_url, resp.status_code)
            resp.raise_for_status()
            nodes = parse_nodes(resp.json())
        except (httpx.HTTPError, ValueError):
            return Observation(head_alive=False, dashboard_url=None, nodes=zero)
        status: dict[str, Any] = {}
        try:
            resp = client.get("/api/cluster_status", params={"format": "0"})
            resp.raise_for_status()
            status = resp.json().get("data") or {}
        except (httpx.HTTPError, ValueError, AttributeError):
            messages.append("the cluster status (demand, idle time) is not available yet")
    alive = [n for n in nodes if n.alive and (running is None or n.name is None or n.name in running)]
    head_alive = any(n.is_head for n in alive)
    counts = dict(zero)
    for node in alive:
        if not node.is_head and node.group is not None:
            counts[node.group] = counts.get(node.group, 0) + 1
    cluster_idle, per_node = idle_times(status)
    details = tuple(
        NodeInfo(
            node_id=n.node_id,
            group=HEAD_GROUP if n.is_head else (n.group or "unknown"),
            alive=True,
            idle_seconds=per_node.get(n.node_id, cluster_idle if not per_node and len(alive) == 1 else None),
        )
        for n in alive
    )
    idle_nodes = _idle_nodes(alive, per_node, cluster_idle, idle_node_seconds)
    load = (status.get("clusterStatus") or {}).get("loadMetricsReport") or {}
    worker_groups = {g.name: groups[g.name] for g in target.groups if g.name in groups}
    room = {g.name: counts.get(g.name, 0) < g.max_nodes for g in target.groups}
    pending, unplaced = demand_by_group(parse_demand(load), worker_groups, room=room, alive=alive)
    return Observation(
        head_alive=head_alive,
        dashboard_url=dashboard_url if head_alive else None,
        nodes=counts,
        node_details=details,
        pending_demand=pending,
        idle_nodes=idle_nodes,
        cluster_idle_seconds=cluster_idle,
        messages=tuple(messages + unplaced),
        events=death_events(nodes),
    )


def _idle_nodes(
    alive: Sequence[RayNode], per_node: Mapping[str, float], cluster_idle: float | None, threshold: float
) -> dict[str, int]:
    """Workers idle for longer than ``threshold`` per group. Ray 2.60 reports idle time per
    node only as a minimum over all nodes, so without per-node times either every worker
    counts (the whole cluster has been idle that long) or none does."""
    out: dict[str, int] = {}
    for node in alive:
        if node.is_head or node.group is None:
            continue
        idle = per_node.get(node.node_id, cluster_idle if not per_node else None)
        if idle is not None and idle >= threshold:
            out[node.group] = out.get(node.group, 0) + 1
    return out


def head_registered(client: httpx.Client, url: str) -> bool:
    """The dashboard answers and lists the head node ALIVE (its raylet registers a few
    seconds after the dashboard is up); ``RayAuthFailed`` if it refuses our token."""
    try:
        resp = client.get(url + "/api/v0/nodes", params={"detail": "1"})
    except httpx.HTTPError:
        return False
    check_ray_auth(url, resp.status_code)
    try:
        return resp.status_code == 200 and any(n.is_head and n.alive for n in parse_nodes(resp.json()))
    except ValueError:
        return False


def auth_mode(url: str, timeout: float) -> str | None:
    """The head's authentication mode ("token", "disabled"), from the one dashboard route that
    needs no token; None when it does not answer (dead, or still starting)."""
    try:
        resp = httpx.get(url + "/api/authentication_mode", timeout=timeout, trust_env=False)
        return str(resp.json().get("authentication_mode")) if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
