"""The exact ``ray start`` command lines of local nodes."""

from __future__ import annotations

from pathlib import Path

from rayplane.providers.local import commands
from rayplane.providers.local.commands import slug as _slug
from rayplane.providers.local.processes import last_error
from rayplane.providers.local.shapes import NodeResources

RES = NodeResources(num_cpus=1, memory_bytes=2863311530, num_gpus=0, object_store_bytes=858993459)
RAY = Path("/venv/bin/ray")


def test_head_command() -> None:
    ports = dict(zip(commands.HEAD_PORTS, range(20001, 20010), strict=True))
    assert commands.head_command(RAY, Path("/tmp/rayplane/0000000001/head"), ports, RES, "head") == [
        "/venv/bin/ray",
        "start",
        "--head",
        "--block",
        "--port=20001",
        "--dashboard-port=20002",
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        "--ray-client-server-port=20003",
        "--dashboard-agent-listen-port=20004",
        "--dashboard-agent-grpc-port=20005",
        "--runtime-env-agent-port=20006",
        "--metrics-export-port=20007",
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--temp-dir=/tmp/rayplane/0000000001/head",
        "--labels=rayplane.io/node=head",
        "--num-cpus=1",
        "--num-gpus=0",
        "--memory=2863311530",
        "--object-store-memory=858993459",
        '--resources={"rayplane_group_head":1}',
        "--disable-usage-stats",
    ]
    assert commands.head_env(ports) == {"AUTOSCALER_METRIC_PORT": "20008", "DASHBOARD_METRIC_PORT": "20009"}


def test_worker_command() -> None:
    ports = dict(zip(commands.WORKER_PORTS, range(20010, 20014), strict=True))
    argv = commands.worker_command(RAY, Path("/tmp/rayplane/0000000001/cpu-3"), 20001, ports, RES, "cpu", "cpu-3")
    assert argv == [
        "/venv/bin/ray",
        "start",
        "--block",
        "--address=127.0.0.1:20001",
        "--dashboard-agent-listen-port=20010",
        "--dashboard-agent-grpc-port=20011",
        "--runtime-env-agent-port=20012",
        "--metrics-export-port=20013",
        "--min-worker-port=0",
        "--max-worker-port=0",
        "--temp-dir=/tmp/rayplane/0000000001/cpu-3",
        "--labels=rayplane.io/node=cpu-3",
        "--num-cpus=1",
        "--num-gpus=0",
        "--memory=2863311530",
        "--object-store-memory=858993459",
        '--resources={"rayplane_group_cpu":1}',
        "--disable-usage-stats",
    ]


def test_node_names_are_valid_directory_names_and_ray_label_values() -> None:
    assert _slug("cpu") == "cpu"
    assert _slug("GPU_workers.big") == "gpu-work"
    assert _slug("--x") == "x"
    assert _slug("__") == "w"
    assert _slug("ünï") == "n"


def test_last_error_picks_the_telling_line(tmp_path: Path) -> None:
    log = tmp_path / "start.log"
    log.write_text("INFO starting\nTraceback ...\nException: The current node timed out during startup.\n")
    assert last_error(log) == "Exception: The current node timed out during startup."
    log.write_text("INFO a\nINFO b\n")
    assert last_error(log) == "INFO b"
    assert last_error(tmp_path / "missing") == "no output"
