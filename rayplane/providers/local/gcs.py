"""Head-node fault tolerance for local clusters: Ray's GCS in a Redis (``Settings.gcs_redis_url``:
the one ``rayplane dev`` starts for it, one an operator names, or the control plane's own).

A cluster whose spec asks for ``head.gcs_fault_tolerance`` runs its head with Ray's external
Redis storage (checked with Ray 2.60's source):

- ``RAY_REDIS_ADDRESS`` (``host:port``, or ``rediss://host:port`` for TLS) is read by
  ``ray._private.node.Node`` when ``ray start --head`` runs, and handed to the gcs_server as
  ``--redis_address``/``--redis_port``/``--redis_enable_ssl`` (``services.start_gcs_server``).
- The Redis user and password are ``ray start``'s ``--redis-username``/``--redis-password``
  options (``ray/scripts/scripts.py``); Ray reads no environment variable for them (its
  ``RAY_REDIS_PASSWORD`` is only for the Ray Client server). Ray passes the password to its
  gcs_server on the command line too, so it is visible in the process list of this machine.
- ``RAY_external_storage_namespace`` (a RayConfig entry, read from the environment by the
  gcs_server) names the cluster's keys: Ray stores every table under ``RAY<namespace>@…``
  (``gcs_utils.cleanup_redis_storage`` deletes that prefix). Ray's client has no database
  number, so the keys are in database 0 whatever the URL's path says (see
  ``base.gcs_storage_namespace`` for why the namespace holds the cluster id).
- Workers get ``RAY_gcs_rpc_server_reconnect_timeout_s``: how long a raylet waits for the GCS
  to come back before it exits. Ray's default is 60 s (``ray_config_def.h``); KubeRay sets 600
  s on the workers of fault-tolerant clusters, and so does Rayplane.

A head that dies is started again on the same GCS port (the workers reconnect to that
address) with the same namespace, and the GCS reloads the cluster's tables from Redis. The
namespace's keys are deleted when the cluster is stopped or deleted: a stopped cluster keeps
no Ray state, as without fault tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import redis

from rayplane.providers.base import ClusterTarget, RetriableError, TerminalError, gcs_storage_namespace
from rayplane.providers.local import store
from rayplane.providers.local.processes import NodeRecord
from rayplane.providers.local.store import ClusterFile

# Workers wait this long for a restarted GCS (Ray's default is 60 s; KubeRay's FT default).
RECONNECT_TIMEOUT_S = 600
# Ray's key layout in Redis: every table of a cluster is a hash named RAY<namespace>@<table>.
KEY_PREFIX = "RAY"
KEY_SEPARATOR = "@"
UNAVAILABLE = "GcsRedisUnavailable"
# Where ``ray start`` records the address of the last cluster started from a temp dir.
RAY_ADDRESS_FILE = "ray_current_cluster"


@dataclass(frozen=True)
class RedisEndpoint:
    """Where Ray's GCS keeps its tables: a TCP Redis (Ray cannot use a unix socket)."""

    host: str
    port: int
    tls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def ray_address(self) -> str:
        """``RAY_REDIS_ADDRESS`` as ``ray._private.services.get_address`` parses it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss://' if self.tls else ''}{host}:{self.port}"


def problem(url: str | None) -> str | None:
    """Why head fault tolerance cannot run on this Redis URL (None when it can)."""
    try:
        endpoint(url)
    except TerminalError as exc:
        return exc.message
    return None


def endpoint(url: str | None) -> RedisEndpoint:
    """The TCP Redis of a ``redis://`` or ``rediss://`` URL; TerminalError for anything else."""
    hint = (
        "set RAYPLANE_LOCAL_GCS_REDIS_URL (or RAYPLANE_REDIS_URL) to a redis:// (or rediss://) address "
        "that the Ray nodes can reach; `rayplane dev` starts such a Redis of its own"
    )
    if not url:
        raise TerminalError(
            f"head fault tolerance needs a TCP Redis; the control plane has none: {hint}", code=UNAVAILABLE
        )
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise TerminalError(
            f"head fault tolerance needs a TCP Redis, and the control plane's Redis is a unix socket "
            f"({parts.scheme}://): Ray's GCS cannot use one; {hint}",
            code=UNAVAILABLE,
        )
    return RedisEndpoint(
        host=parts.hostname,
        port=parts.port or 6379,
        tls=parts.scheme == "rediss",
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def head_env(ep: RedisEndpoint | None, cluster_id: str) -> dict[str, str]:
    """The head's environment for fault tolerance (none without it)."""
    if ep is None:
        return {}
    return {"RAY_REDIS_ADDRESS": ep.ray_address, "RAY_external_storage_namespace": gcs_storage_namespace(cluster_id)}


def head_args(ep: RedisEndpoint | None) -> list[str]:
    """``ray start`` options for the Redis credentials (none without fault tolerance)."""
    args: list[str] = []
    if ep is None:
        return args
    if ep.username:
        args.append(f"--redis-username={ep.username}")
    if ep.password:
        args.append(f"--redis-password={ep.password}")
    return args


def worker_env() -> dict[str, str]:
    return {"RAY_gcs_rpc_server_reconnect_timeout_s": str(RECONNECT_TIMEOUT_S)}


def prepare_head(cf: ClusterFile, port: int, temp_dir: Path) -> None:
    """Before a fault-tolerant head starts (again) on ``port``.

    - Live workers reconnect to the GCS address they know, so only the last head's GCS port
      will do: a head that would move is refused (for now) while workers run.
    - ``ray start --head`` refuses to start where "Ray is already running": when the address in
      its temp dir's ``ray_current_cluster`` (written by the last head) is one that some local
      process names with ``--gcs-address`` (``scripts.py``, ``services.find_gcs_addresses``),
      which the surviving workers' raylets and agents do. The dead head's file goes, as Ray's
      own ``ray stop`` removes it (``reset_ray_address``)."""
    last = cf.head_ports.get("gcs")
    if cf.workers() and last is not None and last != port:
        raise RetriableError(
            f"the head's GCS port {last} is taken by another process; the head starts again once it is free",
            code="GcsPortTaken",
        )
    (temp_dir / RAY_ADDRESS_FILE).unlink(missing_ok=True)


def adopt_workers(cdir: Path, cf: ClusterFile, head: NodeRecord) -> None:
    """The restarted head's GCS serves the old one's address with its tables from Redis, and
    the workers' raylets reconnect to it: record them as the new head's workers (kept, not
    replaced as a head change otherwise makes them)."""
    for worker in cf.workers():
        worker.head_pid, worker.head_create_time = head.pid, head.create_time
    store.write(cdir, cf)


def forget(url: str | None, target: ClusterTarget, state: dict[str, Any]) -> None:
    """Delete a fault-tolerant head's GCS keys once no node runs (stop and delete): a stopped
    cluster keeps no Ray state. For a cluster that has it on, or had it when it last ran."""
    if (target.gcs_fault_tolerance or state.get("gcs_namespace")) and problem(url) is None:
        delete_namespace(endpoint(url), gcs_storage_namespace(target.cluster_id))


def key_pattern(namespace: str) -> str:
    """The SCAN pattern of the namespace's keys (``RAY<namespace>@*``, glob characters escaped)."""
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in namespace)
    return f"{KEY_PREFIX}{escaped}{KEY_SEPARATOR}*"


def _client(ep: RedisEndpoint, timeout: float) -> redis.Redis:
    # Database 0: where Ray's client writes, whatever database the control plane uses.
    return redis.Redis(
        host=ep.host,
        port=ep.port,
        db=0,
        username=ep.username or None,
        password=ep.password or None,
        ssl=ep.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


def namespace_keys(ep: RedisEndpoint, namespace: str, *, timeout: float = 5.0) -> list[str]:
    """The keys Ray keeps for ``namespace`` (for checks and tests)."""
    with _client(ep, timeout) as client:
        return sorted(k.decode() for k in client.scan_iter(match=key_pattern(namespace), count=1000))


def delete_namespace(ep: RedisEndpoint, namespace: str, *, timeout: float = 5.0) -> int:
    """Delete the namespace's keys (SCAN + DEL, the prefix Ray's own cleanup deletes); how many.

    SCAN rather than Ray's ``cleanup_redis_storage``: that helper needs ``ray._raylet`` in the
    control plane's process, which imports nothing of Ray otherwise."""
    try:
        deleted = 0
        with _client(ep, timeout) as client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=key_pattern(namespace), count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(client.delete(*batch))
                    batch = []
            if batch:
                deleted += int(client.delete(*batch))
        return deleted
    except redis.RedisError as exc:
        raise RetriableError(
            f"could not delete the head's GCS keys from Redis: {exc}", code="GcsCleanupFailed"
        ) from exc
