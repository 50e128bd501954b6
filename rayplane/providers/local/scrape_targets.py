"""Where a local cluster's Ray nodes serve their Prometheus metrics: each running node's
``--metrics-export-port`` on the loopback (``commands.node_args``).

A service's provider state holds one cluster state per version (``providers/local/service.py``);
the nodes of every version still running are scraped, so a rollout shows both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rayplane.providers.base import MetricsTarget
from rayplane.providers.local import commands, store
from rayplane.providers.local.processes import is_alive

METRICS_PORT = "metrics_export"


def targets(state: dict[str, Any]) -> tuple[MetricsTarget, ...]:
    versions = state.get("versions")
    if isinstance(versions, dict):
        found: list[MetricsTarget] = []
        for version in versions.values():
            found += targets(dict(version.get("provider") or {}))
        return tuple(found)
    cluster_id = str(state.get("cluster_id") or "")
    if not cluster_id:
        return ()
    cf = store.ClusterFile.from_dict(state, cluster_id)
    if state.get("cluster_dir"):
        cf = store.merge(store.read(Path(str(state["cluster_dir"])), cluster_id), state)
    return tuple(
        MetricsTarget(rec.name, rec.group, f"http://{commands.DASHBOARD_HOST}:{rec.ports[METRICS_PORT]}/metrics")
        for rec in cf.nodes.values()
        if METRICS_PORT in rec.ports and is_alive(rec)
    )
