"""Ray's Prometheus text read into a cluster's figures (``rayplane.metrics.series``): the
node sample is trimmed from what a real Ray 2.60 head exported with three one-CPU tasks on
one CPU and one actor."""

from __future__ import annotations

from pathlib import Path

import pytest

from rayplane.metrics.series import Figure, NodeFigures, combine, node_figures

SAMPLE = (Path(__file__).resolve().parents[1] / "support" / "ray_node_metrics.txt").read_text()


def serve_text(requests: float, errors: float, buckets: dict[str, float]) -> str:
    lines = [
        "# TYPE ray_serve_num_http_requests_total counter",
        f'ray_serve_num_http_requests_total{{route="/echo",application="echo"}} {requests}',
        "# TYPE ray_serve_num_http_error_requests_total counter",
        f'ray_serve_num_http_error_requests_total{{route="/echo",application="echo"}} {errors}',
        "# TYPE ray_serve_http_request_latency_ms histogram",
    ]
    lines += [f'ray_serve_http_request_latency_ms_bucket{{route="/echo",le="{le}"}} {n}' for le, n in buckets.items()]
    return "\n".join(lines) + "\n"


def test_a_real_nodes_text() -> None:
    node = node_figures("head", SAMPLE)
    assert node.figures[Figure.CPU_PERCENT] == 42.3
    assert node.figures[Figure.MEMORY_USED] == 2.913722368e09
    assert node.figures[Figure.MEMORY_PERCENT] == pytest.approx(100 * 2.913722368e09 / 2.5276071936e10)
    # Owner and executor reports with their corrections add up to 1 running and 2 waiting.
    assert (node.figures[Figure.TASKS_RUNNING], node.figures[Figure.TASKS_PENDING]) == (1, 2)
    # The GCS's lifecycle view only: the executor's ALIVE_IDLE is the same actor again.
    assert (node.figures[Figure.ACTORS_ALIVE], node.figures[Figure.ACTORS_PENDING]) == (1, 0)
    assert Figure.GPU_PERCENT not in node.figures
    assert node.counters == {}


def test_groups_are_averaged_or_summed_and_the_cluster_has_both() -> None:
    head = NodeFigures("head", {Figure.CPU_PERCENT: 10.0, Figure.MEMORY_USED: 1.0, Figure.TASKS_RUNNING: 2})
    a = NodeFigures("cpu", {Figure.CPU_PERCENT: 50.0, Figure.MEMORY_USED: 4.0, Figure.TASKS_RUNNING: 1})
    b = NodeFigures("cpu", {Figure.CPU_PERCENT: 90.0, Figure.MEMORY_USED: 5.0})
    figures, counters = combine(
        [head, a, b], groups={"head": (1, 1), "cpu": (2, 3)}, jobs={"running": 1}, before=None, seconds=0
    )
    assert figures["cpu_utilization_percent"] == 50.0
    assert figures["cpu_utilization_percent/cpu"] == 70.0
    assert figures["memory_used_bytes/cpu"] == 9.0
    assert figures["memory_used_bytes"] == 10.0
    assert figures["tasks_running"] == 3
    assert "tasks_running/cpu" not in figures  # the cluster's work, not a group's
    assert (figures["nodes_ready/cpu"], figures["nodes_wanted/cpu"], figures["nodes_wanted"]) == (2, 3, 4)
    assert (figures["jobs_running"], figures["jobs_pending"]) == (1, 0)
    assert counters == {}


def test_serve_rates_and_latency_quantiles_come_from_the_counters_increase() -> None:
    before_text = serve_text(100, 1, {"10": 50, "100": 100, "+Inf": 100})
    now_text = serve_text(400, 7, {"10": 50, "100": 340, "+Inf": 400})
    _, before = combine([node_figures("head", before_text)], groups={}, jobs={}, before=None, seconds=0)
    figures, _ = combine([node_figures("head", now_text)], groups={}, jobs={}, before=before, seconds=15)
    assert figures["serve_requests_per_second"] == 20.0
    assert figures["serve_error_ratio"] == pytest.approx(6 / 300)
    # 300 new requests: none under 10 ms, 240 from 10 to 100 ms, 60 above 100 ms.
    assert figures["serve_latency_p50_ms"] == pytest.approx(10 + 90 * (150 / 240))
    assert figures["serve_latency_p99_ms"] == 100.0  # in the +Inf bucket: its lower bound
    # A proxy that restarted counts from zero: its counters are the increase.
    restarted, _ = combine(
        [node_figures("head", serve_text(30, 0, {"+Inf": 30}))], groups={}, jobs={}, before=before, seconds=15
    )
    assert restarted["serve_requests_per_second"] == 2.0
