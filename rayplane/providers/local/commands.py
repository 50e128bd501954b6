"""The ``ray start`` command lines of local nodes.

Every port that Ray would otherwise take from a fixed default is set per node, so that
several clusters run side by side on one machine (checked with Ray 2.60):

- ``--port`` (GCS, default 6379) and ``--dashboard-port`` (8265): per head.
- ``--ray-client-server-port`` (10001): the second head's Ray Client server cannot bind.
- ``--dashboard-agent-listen-port`` (52365, every node): the second node's agent gives up
  binding after a few retries and runs without its HTTP server, which job submission
  needs (the dashboard forwards jobs to a node's agent).
- ``AUTOSCALER_METRIC_PORT`` (44217) and ``DASHBOARD_METRIC_PORT`` (44227), environment
  variables of the head: the autoscaler's and the dashboard's Prometheus endpoints.
- ``--min-worker-port=0 --max-worker-port=0``: worker processes bind ports the kernel
  picks, instead of each raylet drawing from the shared default range 10002-19999.
- ``--dashboard-agent-grpc-port``, ``--runtime-env-agent-port``, ``--metrics-export-port``:
  left unset, Ray picks them at random in the kernel's ephemeral range some time before
  binding them, where any outgoing connection can take them first; Rayplane picks them
  in its own range (below the ephemeral one) and records them.

The object manager and node manager ports stay 0: the raylet binds them to a port the
kernel assigns at once, with no race.

``SERVE_PORT`` is not Ray's: it is the port picked for the head with the others and kept in the
head's record, where Serve's HTTP proxy listens once applications are deployed (``serve.py``;
Ray binds nothing there until then).
"""

from __future__ import annotations

import json
from pathlib import Path

from rayplane.providers.local.shapes import NodeResources, group_resource

# Port names of a head, in the order ``pick_ports`` returns them.
NODE_PORTS = ("agent", "agent_grpc", "runtime_env_agent", "metrics_export")
HEAD_PORTS = ("gcs", "dashboard", "client", *NODE_PORTS, "autoscaler_metrics", "dashboard_metrics")
WORKER_PORTS = NODE_PORTS
DASHBOARD_HOST = "127.0.0.1"
# The head's port for Serve's HTTP proxy (on DASHBOARD_HOST): reserved, not passed to Ray.
SERVE_PORT = "serve"
# A label naming the node in Rayplane's records (``head``, ``<group>-<n>``): the dashboard
# lists it under ``labels``, so what Ray reports is matched to the processes we started.
NODE_LABEL = "rayplane.io/node"


def _port_args(ports: dict[str, int]) -> list[str]:
    return [
        f"--dashboard-agent-listen-port={ports['agent']}",
        f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
        f"--runtime-env-agent-port={ports['runtime_env_agent']}",
        f"--metrics-export-port={ports['metrics_export']}",
        "--min-worker-port=0",
        "--max-worker-port=0",
    ]


def _resource_args(res: NodeResources, group: str, name: str) -> list[str]:
    return [
        f"--labels={NODE_LABEL}={name}",
        f"--num-cpus={res.num_cpus}",
        f"--num-gpus={res.num_gpus}",  # explicit 0: no node claims the machine's GPUs
        f"--memory={res.memory_bytes}",
        f"--object-store-memory={res.object_store_bytes}",
        "--resources=" + json.dumps({group_resource(group): 1}, separators=(",", ":")),
    ]


def head_command(ray: Path, temp_dir: Path, ports: dict[str, int], res: NodeResources, name: str = "head") -> list[str]:
    return [
        str(ray),
        "start",
        "--head",
        "--block",
        f"--port={ports['gcs']}",
        f"--dashboard-port={ports['dashboard']}",
        f"--dashboard-host={DASHBOARD_HOST}",
        "--include-dashboard=true",
        f"--ray-client-server-port={ports['client']}",
        *_port_args(ports),
        f"--temp-dir={temp_dir}",
        *_resource_args(res, "head", name),
        "--disable-usage-stats",
    ]


def head_env(ports: dict[str, int]) -> dict[str, str]:
    return {
        "AUTOSCALER_METRIC_PORT": str(ports["autoscaler_metrics"]),
        "DASHBOARD_METRIC_PORT": str(ports["dashboard_metrics"]),
    }


def worker_command(
    ray: Path, temp_dir: Path, gcs_port: int, ports: dict[str, int], res: NodeResources, group: str, name: str
) -> list[str]:
    # A worker node has a temp dir of its own (Ray allows one per node): its session dir,
    # sockets and logs stay under the worker's directory.
    return [
        str(ray),
        "start",
        "--block",
        f"--address=127.0.0.1:{gcs_port}",
        *_port_args(ports),
        f"--temp-dir={temp_dir}",
        *_resource_args(res, group, name),
        "--disable-usage-stats",
    ]


def slug(group: str) -> str:
    """A group name cut to 8 characters usable in a directory name and a Ray label value
    (letters, digits and dashes, starting with a letter or digit)."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in group.lower())[:8].strip("-")
    return cleaned or "w"
