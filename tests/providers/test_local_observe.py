"""Reading a local cluster from its dashboard: nodes, demand per group, idle time.

The payloads are trimmed from what Ray 2.60's dashboard answered on a real cluster."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from rayplane.providers.base import ClusterTarget, GroupTarget, NodeShape
from rayplane.providers.local.observe import (
    Demand,
    death_events,
    demand_by_group,
    idle_times,
    observe_cluster,
    parse_demand,
    parse_nodes,
    to_camel_case,
)
from rayplane.providers.local.processes import pick_ports
from rayplane.providers.local.shapes import GIB, NodeResources

HEAD_ID = "82d205e4b43e07d40055372c81efe33c706ca7d87201684d77862747"
WORKER_ID = "f0b220ea9a1e307f0a8013f6ee97b3b9c0dbc80111a9c52ae699e9cb"
DEAD_ID = "aa" * 28


def node(node_id: str, *, head: bool, state: str, group: str, name: str | None = None) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "node_ip": "192.0.2.2",
        "is_head_node": head,
        "state": state,
        "state_message": None,
        "node_name": "192.0.2.2",
        "resources_total": {
            "node:192.0.2.2": 1.0,
            "object_store_memory": 322122547.0,
            "memory": 1073741824.0,
            "CPU": 1.0,
            f"rayplane_group_{group}": 1.0,
            **({"node:__internal_head__": 1.0} if head else {}),
        },
        "labels": {"ray.io/node-id": node_id, **({"rayplane.io/node": name} if name else {})},
        "start_time_ms": 1795683068096,
        "end_time_ms": 0,
    }


NODES = {
    "result": True,
    "msg": "",
    "data": {
        "result": {
            "total": 3,
            "num_after_truncation": 3,
            "num_filtered": 3,
            "result": [
                node(HEAD_ID, head=True, state="ALIVE", group="head", name="head"),
                node(WORKER_ID, head=False, state="ALIVE", group="cpu", name="cpu-1"),
                node(DEAD_ID, head=False, state="DEAD", group="cpu", name="cpu-0"),
            ],
            "partial_failure_warning": "",
            "warnings": None,
        }
    },
}

STATUS = {
    "result": True,
    "msg": "Got cluster status.",
    "data": {
        "autoscalingStatus": "Cluster status: 0 nodes\n - MostDelayedHeartbeats: {}\n"
        " - NodeIdleSeconds: Min=15 Mean=31 Max=46\n - ResourceUsage: 2.0/2.0 CPU\n",
        "autoscalingError": None,
        "clusterStatus": {
            "loadMetricsReport": {
                "usage": {"rayplaneGroupCpu": [0.0, 1.0], "CPU": [2.0, 2.0]},
                "resourceDemand": [[{"rayplane_group_cpu": 1.0, "CPU": 1.0}, 1], [{"CPU": 1.0}, 2]],
                "pgDemand": [[{"bundles": [[{"CPU": 1.0}, 3]], "strategy": "STRICT_SPREAD"}, 1]],
                "requestDemand": [[{"CPU": 1, "rayplane_group_cpu": 1}, 3]],
                "idleTimeMap": None,
            }
        },
    },
}

D2 = NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=8.0)
ONE_CPU = NodeResources(num_cpus=1, memory_bytes=GIB, num_gpus=0, object_store_bytes=300 * 2**20)
TWO_CPU = NodeResources(num_cpus=2, memory_bytes=2 * GIB, num_gpus=0, object_store_bytes=300 * 2**20)
GPU = NodeResources(num_cpus=4, memory_bytes=4 * GIB, num_gpus=1, object_store_bytes=300 * 2**20)


def test_parse_nodes() -> None:
    nodes = parse_nodes(NODES)
    assert [(n.is_head, n.alive, n.group) for n in nodes] == [
        (True, True, "head"),
        (False, True, "cpu"),
        (False, False, "cpu"),
    ]
    assert parse_nodes({}) == []


def test_parse_demand_shapes() -> None:
    demand = parse_demand(STATUS["data"]["clusterStatus"]["loadMetricsReport"])  # type: ignore[index]
    assert demand.bundles == [({"rayplane_group_cpu": 1.0, "CPU": 1.0}, 1), ({"CPU": 1.0}, 2)]
    assert demand.placement_groups == [([{"CPU": 1.0}] * 3, "STRICT_SPREAD")]
    assert demand.requests == [({"CPU": 1.0, "rayplane_group_cpu": 1.0}, 3)]
    assert parse_demand({"resourceDemand": None, "pgDemand": [["junk"]]}) == Demand()


def test_idle_time_from_the_status_text_or_the_map() -> None:
    assert idle_times(STATUS["data"]) == (15.0, {})  # type: ignore[arg-type]
    with_map = {"clusterStatus": {"loadMetricsReport": {"idleTimeMap": {"a": 4000, "b": 9000}}}}
    assert idle_times(with_map) == (4.0, {"a": 4.0, "b": 9.0})
    assert idle_times({"autoscalingStatus": " - NodeIdleSeconds: Min=-1 Mean=-1 Max=-1"}) == (None, {})
    assert idle_times({}) == (None, {})


def test_cpu_bundles_pack_into_nodes_of_the_group() -> None:
    wanted, messages = demand_by_group(Demand(bundles=[({"CPU": 1.0}, 3)]), {"cpu": TWO_CPU})
    assert wanted == {"cpu": 2}
    assert messages == []


def test_a_bundle_pinned_to_a_group_goes_there() -> None:
    demand = Demand(bundles=[({"CPU": 1.0, "rayplane_group_small": 1.0}, 1)])
    wanted, _ = demand_by_group(demand, {"big": TWO_CPU, "small": ONE_CPU})
    assert wanted == {"small": 1}
    # The dashboard's camel-cased spelling is understood too.
    demand = Demand(bundles=[({"CPU": 1.0, to_camel_case("rayplane_group_big"): 1.0}, 1)])
    assert demand_by_group(demand, {"big": TWO_CPU, "small": ONE_CPU})[0] == {"big": 1}


def test_cpu_work_prefers_groups_without_gpus_and_with_room() -> None:
    demand = Demand(bundles=[({"CPU": 1.0}, 1)])
    assert demand_by_group(demand, {"gpu": GPU, "cpu": TWO_CPU})[0] == {"cpu": 1}
    assert demand_by_group(demand, {"gpu": GPU, "cpu": TWO_CPU}, room={"cpu": False})[0] == {"gpu": 1}
    assert demand_by_group(Demand(bundles=[({"GPU": 1.0}, 2)]), {"gpu": GPU, "cpu": TWO_CPU})[0] == {"gpu": 2}


def test_strict_spread_needs_a_node_per_bundle() -> None:
    demand = Demand(placement_groups=[([{"CPU": 1.0}] * 3, "STRICT_SPREAD")])
    assert demand_by_group(demand, {"cpu": TWO_CPU})[0] == {"cpu": 3}
    demand = Demand(placement_groups=[([{"CPU": 1.0}] * 4, "PACK")])
    assert demand_by_group(demand, {"cpu": TWO_CPU})[0] == {"cpu": 2}


def test_requested_resources_count_beyond_what_alive_nodes_have() -> None:
    alive = parse_nodes(NODES)
    demand = Demand(requests=[({"CPU": 1.0, "rayplane_group_cpu": 1.0}, 3)])
    # One alive cpu worker covers one of the three bundles.
    assert demand_by_group(demand, {"cpu": ONE_CPU}, alive=alive)[0] == {"cpu": 2}


def test_demand_no_group_can_host_is_reported() -> None:
    wanted, messages = demand_by_group(Demand(bundles=[({"CPU": 8.0}, 2)]), {"cpu": TWO_CPU})
    assert wanted == {}
    assert messages == ["demand no worker group can host: 2 x {CPU: 8}"]
    wanted, _ = demand_by_group(Demand(bundles=[({"node:__internal_head__": 1.0}, 1)]), {"cpu": TWO_CPU})
    assert wanted == {}


class _Dashboard(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Any]] = {"/api/v0/nodes": NODES, "/api/cluster_status": STATUS}

    def do_GET(self) -> None:
        body = self.routes.get(self.path.split("?")[0])
        payload = json.dumps(body).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _target() -> ClusterTarget:
    return ClusterTarget(
        cluster_id="c1",
        name="t",
        ray_version="2.60.0",
        image=None,
        head=D2,
        groups=(GroupTarget("cpu", D2, 1, 0, 4), GroupTarget("gpu", D2, 0, 0, 1)),
    )


def test_observe_cluster_from_the_dashboard(dashboard: str) -> None:
    obs = observe_cluster(_target(), dashboard, {"head": ONE_CPU, "cpu": ONE_CPU, "gpu": GPU}, idle_node_seconds=10)
    assert obs.head_alive
    assert obs.dashboard_url == dashboard
    assert obs.nodes == {"cpu": 1, "gpu": 0}
    assert {(n.node_id, n.group) for n in obs.node_details} == {(HEAD_ID, "head"), (WORKER_ID, "cpu")}
    assert obs.cluster_idle_seconds == 15.0
    assert obs.idle_nodes == {"cpu": 1}  # the whole cluster has been idle 15 s > 10 s
    # 1 pinned + 2 plain CPU bundles, a 3-bundle strict spread, 3 requested less 1 alive.
    assert obs.pending_demand == {"cpu": 8}


def test_a_node_ray_still_lists_counts_only_while_its_process_runs(dashboard: str) -> None:
    groups = {"head": ONE_CPU, "cpu": ONE_CPU, "gpu": GPU}
    both = observe_cluster(_target(), dashboard, groups, idle_node_seconds=10, running={"head", "cpu-1"})
    assert both.head_alive
    assert both.nodes == {"cpu": 1, "gpu": 0}
    killed = observe_cluster(_target(), dashboard, groups, idle_node_seconds=10, running={"head", "cpu-2"})
    assert killed.nodes == {"cpu": 0, "gpu": 0}  # Ray has not noticed yet; the process is gone
    headless = observe_cluster(_target(), dashboard, groups, idle_node_seconds=10, running={"cpu-1"})
    assert not headless.head_alive


def test_a_dashboard_that_does_not_answer_means_the_head_is_down() -> None:
    port = pick_ports(1)[0]
    obs = observe_cluster(_target(), f"http://127.0.0.1:{port}", {"cpu": ONE_CPU}, idle_node_seconds=10, timeout=1)
    assert not obs.head_alive
    assert obs.nodes == {"cpu": 0, "gpu": 0}
    assert obs.dashboard_url is None


def test_ray_deaths_nobody_asked_for_become_events_with_what_happens_next() -> None:
    rows = [
        {**node(DEAD_ID, head=False, state="DEAD", group="cpu", name="cpu-0"), "state_message": message}
        for message in (
            "Unexpected termination: health check failed due to missing too many heartbeats",
            "Expected termination: received SIGTERM",
            "Terminated due to idle (no Ray activity)",
            "Terminated due to preemption: the VM was reclaimed",
        )
    ]
    rows.append(node(WORKER_ID, head=False, state="ALIVE", group="cpu", name="cpu-1"))
    nodes = parse_nodes({"data": {"result": {"result": rows}}})
    died, preempted = death_events(nodes)
    assert (died.kind, died.code, preempted.code) == ("node_fault", "RayNodeDied", "RayNodePreempted")
    assert died.reason.startswith("Ray lost a node of group 'cpu' (cpu-0): Unexpected termination: health check")
    assert "Rayplane starts a replacement" in died.reason
    assert death_events(parse_nodes(NODES)) == ()  # a DEAD node without a message says nothing
