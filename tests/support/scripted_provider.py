"""An in-memory provider for testing the reconciler's decisions in isolation.

It is a plugin behind the provider interface (not a stand-in for any Rayplane component):
nodes asked for by ``ensure`` appear at the next ``observe``; tests can kill nodes, add
demand, mark nodes idle, and make the next calls fail. End-to-end tests use the real
local provider instead.
"""

from __future__ import annotations

from typing import Any

from rayplane.providers.base import ClusterTarget, Observation, Provider, ProviderError, ProviderEvent, Step


class ScriptedProvider(Provider):
    kind = "local"

    def __init__(self) -> None:
        self.running: dict[str, dict[str, int]] = {}  # cluster id -> group -> alive nodes (head = "head")
        self.calls: list[tuple[str, str]] = []
        self.fail_next: list[ProviderError] = []
        self.demand: dict[str, dict[str, int]] = {}
        self.idle: dict[str, dict[str, int]] = {}
        self.cluster_idle: dict[str, float] = {}
        # What observe reports as causes (kept until changed) and as a fatal condition.
        self.causes: dict[str, tuple[ProviderEvent, ...]] = {}
        self.fatal: dict[str, ProviderEvent] = {}

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def ensure(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        self.calls.append(("ensure", target.cluster_id))
        self._maybe_fail()
        want = {"head": 1, **{g.name: g.count for g in target.groups}}
        nodes = self.running.setdefault(target.cluster_id, {})
        nodes.clear()
        nodes.update(want)
        return Step({"nodes": dict(want), "dashboard": f"http://127.0.0.1/{target.cluster_id}"})

    def observe(self, target: ClusterTarget, state: dict[str, Any]) -> Observation:
        self.calls.append(("observe", target.cluster_id))
        nodes = self.running.get(target.cluster_id, {})
        return Observation(
            head_alive=nodes.get("head", 0) > 0,
            dashboard_url=state.get("dashboard"),
            nodes={k: v for k, v in nodes.items() if k != "head"},
            pending_demand=self.demand.pop(target.cluster_id, {}),
            idle_nodes=self.idle.pop(target.cluster_id, {}),
            cluster_idle_seconds=self.cluster_idle.get(target.cluster_id),
            events=self.causes.get(target.cluster_id, ()),
            fatal=self.fatal.get(target.cluster_id),
        )

    def stop(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        self.calls.append(("stop", target.cluster_id))
        self._maybe_fail()
        self.running.pop(target.cluster_id, None)
        return Step({**state, "nodes": {}})

    def teardown(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        self.calls.append(("teardown", target.cluster_id))
        self._maybe_fail()
        self.running.pop(target.cluster_id, None)
        return Step({})

    def jobs_endpoint(self, state: dict[str, Any]) -> str | None:
        return None

    def kill(self, cluster_id: str, group: str, count: int = 1) -> None:
        nodes = self.running[cluster_id]
        nodes[group] = max(0, nodes.get(group, 0) - count)
