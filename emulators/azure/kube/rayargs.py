"""The ``ray start`` command line and environment of one emulated Ray pod (no I/O here).

KubeRay turns a group's ``rayStartParams`` into ``ray start`` flags in the Ray container
(``ray-operator/controllers/ray/common/pod.go``, ``generateRayStartCommand``); here the
same pod runs as local processes, so the flags are rewritten for one shared machine:

* **Resources** are declared, not measured, as KubeRay does: ``--num-cpus`` from
  ``num-cpus`` or the Ray container's cpu limit (rounded up, else its request), ``--num-gpus``
  from ``num-gpus`` or the ``nvidia.com/gpu`` limit -- so a GPU pod's Ray node reports ``GPU``
  although this machine has none. CPUs are capped at ``max_cpus`` per node: Ray starts up to
  that many task workers per node, and a D-series node's 3 CPUs per pod times a few pods
  would overwhelm a 2-core machine. ``--memory`` is capped at ``max_memory_bytes`` and the
  object store (shared memory Ray really allocates) is ``OBJECT_STORE_BYTES``, so several
  nodes fit on a small machine (the local provider scales its nodes down the same way).
  Custom ``resources`` and ``labels`` pass through.
* **Ports**: every port Ray would take from a fixed default is chosen per node (GCS,
  dashboard, client server, dashboard agent HTTP and gRPC, runtime-env agent, metrics
  export, and the head's autoscaler/dashboard metrics through environment variables);
  worker processes and the node and object managers bind kernel-chosen ports
  (``--min-worker-port=0 --max-worker-port=0``, manager ports 0). Several clusters, and
  other Ray installations on the machine, coexist.
* **Environment**: nothing of the emulator's passes except ``PATH`` and the locale: no host
  ``RAY_*`` variable changes how a node runs, and ``HOME``/``TMPDIR`` are the pod's own
  directory, so nothing is written to the host's ``~/.ray``. Token authentication is set as
  KubeRay v1.7.0 sets it for ``authOptions.mode: token`` (``RAY_AUTH_MODE=token`` and
  ``RAY_AUTH_TOKEN`` from the Secret's ``auth_token``: KubeRay's guide "Configure Ray
  clusters to use token authentication", Ray's "Ray token authentication" guide, Ray 2.52+,
  and ``ray/_private/authentication``: with a token in the environment Ray neither generates
  one nor reads ``~/.ray/auth_token``). ``MARKER_ENV`` names the emulator instance and the pod:
  every process Ray starts inherits it, which is how they are found again to be killed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulators.azure.kube.scheduler import GPU, parse_quantity

Obj = dict[str, Any]
MARKER_ENV = "AZURE_EMULATOR_RAY_NODE"
HEAD_PORTS = ("gcs", "dashboard", "client", "agent", "agent_grpc", "runtime_env", "metrics", "as_metrics", "db_metrics")
WORKER_PORTS = ("agent", "agent_grpc", "runtime_env", "metrics")
OBJECT_STORE_BYTES = 96 * 1024**2  # Ray refuses less than 75 MiB
_ALLOWED_ENV = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
# Flags that the emulator sets itself (addresses, ports, directories, resources it scales).
_OWN = {
    *("address", "port", "dashboard-port", "dashboard-host", "ray-client-server-port", "temp-dir", "block"),
    *("num-cpus", "num-gpus", "memory", "object-store-memory", "node-ip-address", "metrics-export-port"),
    *("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port"),
    *("min-worker-port", "max-worker-port", "node-manager-port", "object-manager-port", "head"),
}


@dataclass(frozen=True)
class NodePlan:
    """What to run for one pod: argv, environment, and the ports chosen for it."""

    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int]
    resources: dict[str, float]


def _limit_or_request(container: Mapping[str, Any], key: str) -> Any:
    res = container.get("resources") or {}
    return (res.get("limits") or {}).get(key) or (res.get("requests") or {}).get(key)


def declared(pod: Obj, params: Mapping[str, Any]) -> tuple[float, float, float]:
    """(CPUs, memory bytes, GPUs) the pod's Ray node declares, before scaling down."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    ray = containers[0]

    def pick(flag: str, key: str, *, ceil: bool) -> float:
        raw = params.get(flag)
        if raw is not None:
            return float(str(raw).strip("'\""))
        value = float(parse_quantity(_limit_or_request(ray, key) or 0))
        return float(math.ceil(value)) if ceil else value

    try:
        return (
            pick("num-cpus", "cpu", ceil=True),
            pick("memory", "memory", ceil=False),
            pick("num-gpus", GPU, ceil=True),
        )
    except ValueError:
        return 1.0, 0.0, 0.0


def group_params(rc: Obj, pod: Obj, is_head: bool) -> dict[str, Any]:
    spec = rc.get("spec") or {}
    if is_head:
        return dict((spec.get("headGroupSpec") or {}).get("rayStartParams") or {})
    group = ((pod.get("metadata") or {}).get("labels") or {}).get("ray.io/group")
    for g in spec.get("workerGroupSpecs") or []:
        if g.get("groupName") == group:
            return dict(g.get("rayStartParams") or {})
    return {}


def _flag(key: str, value: Any) -> str:
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]  # KubeRay users shell-quote JSON values; there is no shell here
    return f"--{key}={text}" if text != "" else f"--{key}"


def plan(
    *,
    ray: Path,
    rc: Obj,
    pod: Obj,
    is_head: bool,
    temp_dir: Path,
    home: Path,
    ports: dict[str, int],
    gcs_port: int | None,
    token: str | None,
    marker: str,
    max_cpus: int,
    max_memory_bytes: int,
) -> NodePlan:
    """The node to start for ``pod`` (``gcs_port``: the head's, for a worker)."""
    params = group_params(rc, pod, is_head)
    cpus, memory, gpus = declared(pod, params)
    cpus = float(min(cpus, max_cpus))
    memory = float(min(memory, max_memory_bytes)) if memory > 0 else float(max_memory_bytes)
    argv = [str(ray), "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    if is_head:
        argv += [
            "--head",
            f"--port={ports['gcs']}",
            f"--dashboard-port={ports['dashboard']}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--ray-client-server-port={ports['client']}",
        ]
    else:
        argv.append(f"--address=127.0.0.1:{gcs_port}")
    argv += [
        f"--dashboard-agent-listen-port={ports['agent']}",
        f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
        f"--runtime-env-agent-port={ports['runtime_env']}",
        f"--metrics-export-port={ports['metrics']}",
        "--min-worker-port=0",
        "--max-worker-port=0",
        f"--temp-dir={temp_dir}",
        f"--num-cpus={int(cpus)}",
        f"--num-gpus={int(gpus)}",
        f"--memory={int(memory)}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
    ]
    argv += [_flag(k, v) for k, v in sorted(params.items()) if k not in _OWN]
    env = {k: v for k, v in os.environ.items() if k in _ALLOWED_ENV or k.startswith("LC_")}
    # The venv's bin first: a job's `python` is the interpreter that has Ray.
    env["PATH"] = os.pathsep.join([str(ray.parent), env.get("PATH", "/usr/local/bin:/usr/bin:/bin")])
    env |= {
        "HOME": str(home),
        "TMPDIR": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
        MARKER_ENV: marker,
        # KubeRay's env for every Ray container (pod.go): the cluster name, the pod name.
        "RAY_CLUSTER_NAME": str(rc["metadata"]["name"]),
        "RAY_CLOUD_INSTANCE_ID": str(pod["metadata"]["name"]),
        "RAY_NODE_TYPE_NAME": str(pod["metadata"]["labels"].get("ray.io/group", "")),
    }
    if is_head:
        env["AUTOSCALER_METRIC_PORT"] = str(ports["as_metrics"])
        env["DASHBOARD_METRIC_PORT"] = str(ports["db_metrics"])
    if token is not None:
        env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    resources = {"CPU": cpus, "GPU": gpus, "memory": memory}
    custom = params.get("resources")
    if custom:
        raw = str(custom).strip().strip("'")
        with contextlib.suppress(ValueError, AttributeError):
            resources |= {str(k): float(v) for k, v in json.loads(raw.replace('\\"', '"').strip('"')).items()}
    return NodePlan(argv, env, dict(ports), {k: v for k, v in resources.items() if v > 0})
