"""From Ray's Prometheus text to the figures a cluster's charts show (no I/O here).

Each Ray node serves its metrics at its ``--metrics-export-port`` (``/metrics``): the node's
own (``ray_node_*``: CPU, memory, GPU, from the dashboard agent), its raylet's
(``ray_object_store_used_memory``) and, summed over nodes, the cluster's tasks and actors by
state (``ray_tasks``, ``ray_actors``; the GCS reports actors on the head). A service's proxy
adds Serve's request counters and latency histogram. :func:`node_figures` reads one node's
text; :func:`combine` adds the nodes of a scrape up per group and for the cluster, and turns
Serve's counters into rates against the previous scrape's counters.

A figure is keyed ``name`` (the cluster) or ``name/group``. Gauges only: a counter is kept
beside the figures (``counters``) to compute the next rate, never charted itself, so that
averaging figures into coarser tiers stays meaningful.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


class Figure(enum.StrEnum):
    """The names a chart can ask for (``GET /v1/clusters/{id}/metrics?names=``), with the
    unit in the name where it has one."""

    NODES_READY = "nodes_ready"
    NODES_WANTED = "nodes_wanted"
    CPU_PERCENT = "cpu_utilization_percent"
    MEMORY_USED = "memory_used_bytes"
    MEMORY_TOTAL = "memory_total_bytes"
    MEMORY_PERCENT = "memory_utilization_percent"
    GPU_PERCENT = "gpu_utilization_percent"
    GPU_MEMORY_USED = "gpu_memory_used_bytes"
    OBJECT_STORE_USED = "object_store_used_bytes"
    TASKS_RUNNING = "tasks_running"
    TASKS_PENDING = "tasks_pending"
    ACTORS_ALIVE = "actors_alive"
    ACTORS_PENDING = "actors_pending"
    JOBS_RUNNING = "jobs_running"
    JOBS_PENDING = "jobs_pending"
    REQUESTS_PER_SECOND = "serve_requests_per_second"
    ERROR_RATIO = "serve_error_ratio"
    LATENCY_P50 = "serve_latency_p50_ms"
    LATENCY_P99 = "serve_latency_p99_ms"


# Per node, averaged over a group's nodes (and over all nodes for the cluster).
AVERAGED = (Figure.CPU_PERCENT, Figure.MEMORY_PERCENT, Figure.GPU_PERCENT)
# Per node, summed.
SUMMED = (Figure.MEMORY_USED, Figure.MEMORY_TOTAL, Figure.GPU_MEMORY_USED, Figure.OBJECT_STORE_USED)
# Cluster-wide only (the same work seen from every node it touched).
CLUSTER_ONLY = (Figure.TASKS_RUNNING, Figure.TASKS_PENDING, Figure.ACTORS_ALIVE, Figure.ACTORS_PENDING)
_PENDING_TASK = ("PENDING_", "SUBMITTED_TO_WORKER")
_PENDING_ACTOR = frozenset({"PENDING_CREATION", "DEPENDENCIES_UNREADY", "RESTARTING"})
REQUESTS = "ray_serve_num_http_requests"
ERRORS = "ray_serve_num_http_error_requests"
LATENCY = "ray_serve_http_request_latency_ms"


@dataclass
class NodeFigures:
    """One node's figures and Serve counters (cumulative, as Ray exports them)."""

    group: str
    figures: dict[Figure, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)


def node_figures(group: str, text: str) -> NodeFigures:
    """The figures of one node's Prometheus ``text`` (a parse error is the caller's)."""
    out = NodeFigures(group)
    gpu_util: list[float] = []
    sums: dict[Figure, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels, value = s.name, s.labels, float(s.value)
            if math.isnan(value):
                continue
            if name == "ray_node_cpu_utilization":
                out.figures[Figure.CPU_PERCENT] = value
            elif name == "ray_node_mem_used":
                out.figures[Figure.MEMORY_USED] = value
            elif name == "ray_node_mem_total":
                out.figures[Figure.MEMORY_TOTAL] = value
            elif name == "ray_node_gpus_utilization":
                gpu_util.append(value)
            elif name == "ray_node_gram_used":
                sums[Figure.GPU_MEMORY_USED] += value * 2**20  # Ray exports GPU memory in MiB
            elif name == "ray_object_store_used_memory":
                out.figures[Figure.OBJECT_STORE_USED] = value
            elif name == "ray_tasks":
                state = labels.get("State", "")
                # Owners and executors each report their part, with negative corrections
                # (an executor's SUBMITTED_TO_WORKER -1 when it starts): sums are the counts.
                if state.startswith("RUNNING"):
                    sums[Figure.TASKS_RUNNING] += value
                elif state.startswith(_PENDING_TASK):
                    sums[Figure.TASKS_PENDING] += value
            elif name == "ray_actors" and labels.get("Source", "gcs") == "gcs":
                # The GCS's view of actor lifecycles; executors report busy/idle besides.
                state = labels.get("State", "")
                if state == "ALIVE":
                    sums[Figure.ACTORS_ALIVE] += value
                elif state in _PENDING_ACTOR:
                    sums[Figure.ACTORS_PENDING] += value
            elif name in (f"{REQUESTS}_total", f"{ERRORS}_total"):
                key = name.removesuffix("_total")
                out.counters[key] = out.counters.get(key, 0.0) + value
            elif name == f"{LATENCY}_bucket":
                key = f"{LATENCY}_bucket:{labels.get('le', '+Inf')}"
                out.counters[key] = out.counters.get(key, 0.0) + value
    out.figures.update(sums)
    if gpu_util:
        out.figures[Figure.GPU_PERCENT] = sum(gpu_util) / len(gpu_util)
    used, total = out.figures.get(Figure.MEMORY_USED), out.figures.get(Figure.MEMORY_TOTAL)
    if used is not None and total:
        out.figures[Figure.MEMORY_PERCENT] = 100.0 * used / total
    return out


def _quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of a cumulative histogram's increase (``le`` -> count), read as
    Prometheus's ``histogram_quantile`` does: linear within the bucket that holds it."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank, below, lower = q * buckets[bounds[-1]], 0.0, 0.0
    for upper in bounds:
        count = buckets[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        below, lower = count, upper
    return None


def _serve(counters: Mapping[str, float], before: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Serve's rates since the previous scrape; a counter that went down restarted (a new
    proxy) and counts from zero."""

    def delta(key: str) -> float:
        now, then = counters.get(key, 0.0), before.get(key, 0.0)
        return now if now < then else now - then

    if REQUESTS not in counters or seconds <= 0:
        return {}
    requests = delta(REQUESTS)
    out = {Figure.REQUESTS_PER_SECOND.value: requests / seconds}
    out[Figure.ERROR_RATIO.value] = delta(ERRORS) / requests if requests > 0 else 0.0
    buckets = {float(k.rsplit(":", 1)[1]): delta(k) for k in counters if k.startswith(f"{LATENCY}_bucket:")}
    for figure, q in ((Figure.LATENCY_P50, 0.5), (Figure.LATENCY_P99, 0.99)):
        value = _quantile(q, buckets)
        if value is not None:
            out[figure.value] = value
    return out


def combine(
    nodes: Iterable[NodeFigures],
    *,
    groups: Mapping[str, tuple[int, int]],
    jobs: Mapping[str, int],
    before: Mapping[str, float] | None,
    seconds: float,
) -> tuple[dict[str, float], dict[str, float]]:
    """The scrape's figures (``name`` and ``name/group`` keys) and its counters.

    ``groups`` is ``{group: (ready, wanted)}`` as the reconciler last observed them, ``jobs``
    ``{"running": n, "pending": n}`` from Rayplane's own records, ``before`` the previous
    scrape's counters and ``seconds`` the time since it (None: no rates this time)."""
    per_group: dict[str, list[NodeFigures]] = defaultdict(list)
    counters: dict[str, float] = defaultdict(float)
    for node in nodes:
        per_group[node.group].append(node)
        for key, value in node.counters.items():
            counters[key] += value
    out: dict[str, float] = {}
    everyone = [n for members in per_group.values() for n in members]
    for scope, members in [("", everyone), *sorted(per_group.items())]:
        suffix = f"/{scope}" if scope else ""
        for figure in AVERAGED:
            values = [n.figures[figure] for n in members if figure in n.figures]
            if values:
                out[figure.value + suffix] = sum(values) / len(values)
        for figure in SUMMED:
            values = [n.figures[figure] for n in members if figure in n.figures]
            if values:
                out[figure.value + suffix] = sum(values)
    for figure in CLUSTER_ONLY:
        values = [n.figures[figure] for n in everyone if figure in n.figures]
        if values:
            # Nodes export every few seconds, each on its own clock: an executor's correction
            # may arrive before its owner's count, and a sum dip below zero for a moment.
            out[figure.value] = max(sum(values), 0.0)
    for group, (ready, wanted) in groups.items():
        out[f"{Figure.NODES_READY.value}/{group}"] = float(ready)
        out[f"{Figure.NODES_WANTED.value}/{group}"] = float(wanted)
    out[Figure.NODES_READY.value] = float(sum(r for r, _ in groups.values()))
    out[Figure.NODES_WANTED.value] = float(sum(w for _, w in groups.values()))
    out[Figure.JOBS_RUNNING.value] = float(jobs.get("running", 0))
    out[Figure.JOBS_PENDING.value] = float(jobs.get("pending", 0))
    if before is not None:
        out.update(_serve(counters, before, seconds))
    return out, dict(counters)
