"""``LocalProvider``: each Ray cluster is a set of ``ray start --block`` processes here.

Layout: ``<root>/<last 10 characters of the cluster id>/`` holds ``nodes.json`` (the
records of the nodes that exist), a lock file, and one directory per node (``head``,
``<group>-<n>``) that is that node's ``--temp-dir`` and holds ``start.log`` (the output of
``ray start``) next to Ray's session directories.

Nodes are started detached (their own session), so a caller killed with SIGKILL leaves
them running and the next call, from any process, adopts them through ``nodes.json``. Only
pids whose creation time matches a record are signalled; ``ray stop`` is never run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import shutil
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx

from rayplane.providers.base import (
    ClusterTarget,
    MetricsTarget,
    Observation,
    Provider,
    RetriableError,
    Step,
    TerminalError,
    gcs_storage_namespace,
    ray_headers,
)
from rayplane.providers.local import commands, gcs, isolation, logship, processes, scrape_targets, store
from rayplane.providers.local.isolation import NodeUser
from rayplane.providers.local.observe import auth_mode, head_registered, observe_cluster
from rayplane.providers.local.processes import NodeRecord
from rayplane.providers.local.serve import ServeEndpoint
from rayplane.providers.local.shapes import HEAD_GROUP, NodeResources, node_resources
from rayplane.providers.local.store import ClusterFile
from rayplane.providers.services import ServiceRunner

# How long a node that died stays in ``Observation.messages``.
EVENT_SECONDS = 600.0
# The nodes' HOME and TMPDIR, inside the cluster's directory.
HOME_DIR = "home"
# The cluster's Ray token, for its nodes (RAY_AUTH_TOKEN_PATH).
TOKEN_FILE = "ray_token"  # noqa: S105 - a file name


class LocalProvider(Provider):
    kind = "local"

    def __init__(
        self,
        root: Path,
        *,
        head_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        http_timeout: float = 3.0,
        idle_node_seconds: float = 300.0,
        lock_timeout: float = 180.0,
        node_user: str | None = isolation.DEFAULT_NODE_USER,
        gcs_redis_url: str | None = None,
        log_shipping: logship.Shipping | None = None,
    ) -> None:
        """``node_user``: the OS user nodes run as when this process is root (created if
        missing); None keeps them as root (see ``isolation``). ``gcs_redis_url``: the Redis
        that heads of fault-tolerant clusters keep their GCS in (the control plane's).
        ``log_shipping``: where each node's shipper stores its Ray logs (none: not shipped)."""
        self.root = Path(root)
        self.log_shipping = log_shipping
        self.gcs_redis_url = gcs_redis_url
        self.node_user = node_user
        self._user: NodeUser | None = None
        self._user_known = False
        self.head_timeout = head_timeout
        self.stop_timeout = stop_timeout
        self.http_timeout = http_timeout
        self.idle_node_seconds = idle_node_seconds
        self.lock_timeout = lock_timeout
        self._services: ServiceRunner | None = None

    # -- the Provider interface -------------------------------------------------------

    def ensure(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        cdir = self._cluster_dir(target.cluster_id)
        if not target.ray_token:
            raise TerminalError("a local cluster needs its Ray token", code="RayTokenMissing")
        ft = gcs.endpoint(self.gcs_redis_url) if target.gcs_fault_tolerance else None
        ray = processes.ray_binary()
        user = self._run_as(ray)
        shapes = node_resources(target)
        with store.locked(cdir, self.lock_timeout):
            self._prepare(cdir, user)
            self._write_token(cdir, user, target.ray_token)
            cf = store.merge(store.read(cdir, target.cluster_id), state)
            cf.tenant = target.tenant_id
            self._drop_dead(cdir, cf)
            self._kill_orphans(cdir, cf)
            head = cf.head()
            if (
                head is not None
                and processes.is_alive(head)
                and auth_mode(_dashboard_url(head), self.http_timeout) == "disabled"
            ):
                # A head started before Rayplane turned token authentication on: it and its
                # workers start again with it (a head that is still starting says nothing).
                self._stop_records(cdir, cf, [*cf.workers(), head], remove_dirs=False)
                cf.add_event("Ray head restarted with token authentication on")
                store.write(cdir, cf)
                head = None
            if head is None:
                if ft is None:
                    # No head: workers of an old head (if any survived) cannot be kept.
                    self._stop_records(cdir, cf, cf.workers(), remove_dirs=True)
                head = self._start_head(ray, cdir, cf, shapes[HEAD_GROUP], user, ft, target.cluster_id)
                if ft is not None:
                    gcs.adopt_workers(cdir, cf, head)
            self._wait_for_dashboard(cdir, cf, head, target.ray_token)
            store.reserve_serve_port(self.root, cdir, cf, head)
            stale = [w for w in cf.workers() if (w.head_pid, w.head_create_time) != (head.pid, head.create_time)]
            surplus = stale + self._surplus(target, [w for w in cf.workers() if w not in stale])
            self._stop_records(cdir, cf, surplus, remove_dirs=True)
            for group in target.groups:
                have = sum(1 for w in cf.workers() if w.group == group.name)
                for _ in range(max(0, group.count - have)):
                    self._start_worker(ray, cdir, cf, head, group.name, shapes[group.name], user, ft is not None)
            out = self._state(cdir, cf)
            if ft is not None:
                out["gcs_namespace"] = gcs_storage_namespace(target.cluster_id)
            return Step(out)

    def observe(self, target: ClusterTarget, state: dict[str, Any]) -> Observation:
        cdir = self._cluster_dir(target.cluster_id)
        cf = store.merge(store.read(cdir, target.cluster_id), state)
        head = cf.head()
        url = _dashboard_url(head) if head is not None and processes.is_alive(head) else None
        running = {HEAD_GROUP} if head is not None and processes.is_alive(head) else set()
        for worker in cf.workers():
            joined = head is not None and (worker.head_pid, worker.head_create_time) == (head.pid, head.create_time)
            if joined and processes.is_alive(worker):
                running.add(worker.name)
        obs = observe_cluster(
            target,
            url,
            node_resources(target),
            idle_node_seconds=self.idle_node_seconds,
            timeout=self.http_timeout,
            running=running,
            headers=ray_headers(target.ray_token),
        )
        recent = cf.recent_events(EVENT_SECONDS)
        return dataclasses.replace(obs, messages=(*obs.messages, *recent)) if recent else obs

    def stop(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        cdir = self._cluster_dir(target.cluster_id)
        if not cdir.exists() and not state.get("nodes"):
            gcs.forget(self.gcs_redis_url, target, state)
            return Step(self._state(cdir, ClusterFile(cluster_id=target.cluster_id)))
        with store.locked(cdir, self.lock_timeout):
            cf = store.merge(store.read(cdir, target.cluster_id), state)
            self._stop_records(cdir, cf, cf.workers(), remove_dirs=False)
            head = cf.head()
            if head is not None:
                self._stop_records(cdir, cf, [head], remove_dirs=False)
            leftovers = processes.processes_under(cdir)
            if leftovers:
                processes.kill_processes(leftovers)
                leftovers = processes.processes_under(cdir)
            if leftovers:
                pids = ", ".join(str(p.pid) for p in leftovers)
                raise RetriableError(f"processes of the cluster still run after SIGKILL: {pids}", code="StopIncomplete")
            logship.wait(cdir, self.stop_timeout + logship.LINGER_SECONDS)  # the nodes' last lines
            gcs.forget(self.gcs_redis_url, target, state)
            return Step(self._state(cdir, cf))

    def teardown(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        self.stop(target, state)
        cdir = self._cluster_dir(target.cluster_id)
        shutil.rmtree(cdir, ignore_errors=True)
        if cdir.exists():
            raise RetriableError(f"could not remove {cdir}", code="TeardownIncomplete")
        return Step({})

    def stop_all(self, owned: Collection[str] | None = None) -> list[str]:
        """Stop the nodes of the clusters under ``root`` that ``owned`` names (every one when
        ``owned`` is None); returns the cluster ids touched.

        For the dev supervisor's shutdown: nodes are detached (they outlive a crashed
        worker), so when the whole control plane stops it stops them too. The supervisor
        passes its own database's local cluster ids (a service's covers its versions), so a
        root shared with another control plane never costs the other its clusters; a
        directory is matched by the id in its ``nodes.json``. Directories stay: the
        reconciler restarts these clusters on the next start.
        """
        touched: list[str] = []
        if not self.root.is_dir():
            return touched
        wanted = None if owned is None else set(owned)
        for cdir in sorted(p for p in self.root.iterdir() if (p / store.STATE_FILE).is_file()):
            try:
                owner = str(json.loads((cdir / store.STATE_FILE).read_text()).get("cluster_id") or "")
            except (OSError, ValueError, AttributeError):
                continue
            if not owner or (wanted is not None and owner not in wanted and owner.rsplit("-v", 1)[0] not in wanted):
                continue
            with store.locked(cdir, self.lock_timeout):
                cf = store.read(cdir, owner)
                if not cf.nodes:
                    continue
                self._stop_records(cdir, cf, cf.workers(), remove_dirs=False)
                head = cf.head()
                if head is not None:
                    self._stop_records(cdir, cf, [head], remove_dirs=False)
                touched.append(owner)
        return touched

    def service_runner(self) -> ServiceRunner:
        """One runner per provider; its Caddy pair lives in ``root/proxy`` (see ``proxy``)."""
        if self._services is None:
            from rayplane.providers.local import service  # it imports this module; Caddy on demand

            self._services = service.LocalServiceRunner(self, service.CaddyProxy(self.root / "proxy"))
        return self._services

    def jobs_endpoint(self, state: dict[str, Any]) -> str | None:
        head = store.live_head(state)
        return None if head is None else _dashboard_url(head)

    def serve_endpoint(self, state: dict[str, Any]) -> ServeEndpoint | None:
        """A running cluster's dashboard (for ``ServeClient``) and its head's Serve port (for
        ``ServeConfig.with_http``); None while no head runs (see ``store.pick_head_ports``)."""
        head = store.live_head(state)
        if head is None or commands.SERVE_PORT not in head.ports:
            return None
        return ServeEndpoint(_dashboard_url(head), commands.DASHBOARD_HOST, head.ports[commands.SERVE_PORT])

    def metrics_targets(self, state: dict[str, Any], cloud_config: object = None) -> tuple[MetricsTarget, ...]:
        return scrape_targets.targets(state)

    def ray_versions(self, cloud_config: dict[str, Any]) -> list[str]:
        try:
            return [importlib.metadata.version("ray")]
        except importlib.metadata.PackageNotFoundError:
            return []

    # -- nodes ----------------------------------------------------------------------

    def _run_as(self, ray: Path) -> NodeUser | None:
        """The user nodes run as (resolved once), checked able to run Ray."""
        if not self._user_known:
            self._user, self._user_known = isolation.resolve_node_user(self.node_user), True
        if self._user is not None:
            python = ray.parent / "python"
            isolation.check_can_run_ray(self._user, str(python if python.exists() else sys.executable))
        return self._user

    def _write_token(self, cdir: Path, user: NodeUser | None, token: str) -> None:
        """``<cluster dir>/ray_token``: the nodes' RAY_AUTH_TOKEN_PATH, readable by the node
        user alone (it is the cluster's own token: its jobs may see it, nothing else)."""
        path = cdir / TOKEN_FILE
        with contextlib.suppress(OSError):
            if path.read_text() == token:
                return
        tmp = cdir / f".{TOKEN_FILE}.tmp"
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        isolation.own(tmp, user, 0o400)
        os.replace(tmp, path)

    def _prepare(self, cdir: Path, user: NodeUser | None) -> None:
        """Directories a node user can reach: the root and the cluster's directory are
        searchable but not listable (0711, ours); ``home`` (the nodes' HOME and TMPDIR) is
        the node user's alone."""
        if user is not None:
            for path in (self.root, cdir):
                if path.stat().st_uid == os.geteuid():
                    path.chmod(0o711)
        home = cdir / HOME_DIR
        home.mkdir(exist_ok=True)
        isolation.own(home, user, 0o700)

    def _cluster_dir(self, cluster_id: str) -> Path:
        cdir = store.cluster_dir(self.root, cluster_id)
        longest = len(str(cdir / "xxxxxxxx-99999")) + store.RAY_SOCKET_SUFFIX_LEN
        if longest > store.MAX_SOCKET_PATH:
            raise TerminalError(
                f"local Ray root {self.root} is too long for Ray's unix sockets; use a shorter one",
                code="InvalidConfiguration",
            )
        return cdir

    def _drop_dead(self, cdir: Path, cf: ClusterFile) -> None:
        """Forget nodes whose leader is gone, after killing what is left of their groups."""
        dead = [rec for rec in cf.nodes.values() if not processes.is_alive(rec)]
        if dead:
            processes.stop_nodes(dead, timeout=0)
            for rec in dead:
                cf.nodes.pop(rec.name, None)
                cf.add_event(f"Ray node {rec.name} exited: {processes.last_error(Path(rec.log_path))}")
            store.write(cdir, cf)

    def _kill_orphans(self, cdir: Path, cf: ClusterFile) -> None:
        """Kill nodes under our directory that no record names (their starter died before it
        could write the record): they cannot be adopted safely."""
        known = {rec.pid for rec in cf.nodes.values()}
        orphans = [p for p in processes.node_leaders_under(cdir) if p.pid not in known]
        if orphans:
            processes.kill_processes(orphans)

    def _surplus(self, target: ClusterTarget, workers: list[NodeRecord]) -> list[NodeRecord]:
        """Workers beyond each group's count (newest first), and all of groups not targeted."""
        wanted = {g.name: g.count for g in target.groups}
        surplus: list[NodeRecord] = []
        for name in {w.group for w in workers}:
            mine = sorted((w for w in workers if w.group == name), key=lambda w: w.index)
            surplus.extend(mine[wanted.get(name, 0) :])
        return surplus

    def _stop_records(self, cdir: Path, cf: ClusterFile, records: list[NodeRecord], *, remove_dirs: bool) -> None:
        if not records:
            return
        stuck = processes.stop_nodes(records, timeout=self.stop_timeout)
        for rec in records:
            if rec.name in stuck:
                continue
            cf.nodes.pop(rec.name, None)
            if remove_dirs and rec.group != HEAD_GROUP:
                logship.wait(Path(rec.temp_dir), self.stop_timeout + logship.LINGER_SECONDS)
                shutil.rmtree(rec.temp_dir, ignore_errors=True)
        store.write(cdir, cf)
        if stuck:
            raise RetriableError(f"nodes still running after SIGKILL: {', '.join(stuck)}", code="StopIncomplete")

    def _spawn(
        self,
        cdir: Path,
        cf: ClusterFile,
        *,
        name: str,
        group: str,
        index: int,
        argv: list[str],
        env: dict[str, str],
        ports: dict[str, int],
        res: NodeResources,
        head: NodeRecord | None,
        user: NodeUser | None,
    ) -> NodeRecord:
        temp_dir = cdir / name
        temp_dir.mkdir(parents=True, exist_ok=True)
        isolation.own(temp_dir, user, 0o700)
        logship.wait(temp_dir, self.stop_timeout)  # a head started again: the last one's shipper ends first
        log_path = temp_dir / "start.log"
        who = (user.uid, user.gid) if user is not None else None
        try:
            pid, create_time = processes.spawn_detached(argv, env=env, log_path=log_path, cwd=temp_dir, user=who)
        except (OSError, RuntimeError) as exc:
            raise RetriableError(f"could not start Ray node {name}: {exc}", code="NodeStartFailed") from exc
        rec = NodeRecord(
            name=name,
            group=group,
            index=index,
            pid=pid,
            create_time=create_time,
            temp_dir=str(temp_dir),
            log_path=str(log_path),
            ports=ports,
            resources=res.to_dict(),
            started_at=time.time(),
            head_pid=head.pid if head is not None else None,
            head_create_time=head.create_time if head is not None else None,
        )
        cf.nodes[name] = rec
        store.write(cdir, cf)  # at once: a caller killed from here on leaves a record
        if self.log_shipping is not None and cf.tenant:
            where = {"tenant": cf.tenant, "cluster": cf.cluster_id, "node": name}
            logship.start(self.log_shipping, temp_dir, leader=(pid, create_time), **where)
        return rec

    def _start_head(
        self,
        ray: Path,
        cdir: Path,
        cf: ClusterFile,
        res: NodeResources,
        user: NodeUser | None,
        ft: gcs.RedisEndpoint | None = None,
        cluster_id: str = "",
    ) -> NodeRecord:
        ports = store.pick_head_ports(self.root, cdir, cf)
        temp_dir = cdir / HEAD_GROUP
        if ft is not None:
            gcs.prepare_head(cf, ports["gcs"], temp_dir)
        cf.head_ports = dict(ports)
        argv = commands.head_command(ray, temp_dir, ports, res, HEAD_GROUP) + gcs.head_args(ft)
        env = self._env(ray, cdir, user, commands.head_env(ports) | gcs.head_env(ft, cluster_id))
        return self._spawn(
            cdir,
            cf,
            name=HEAD_GROUP,
            group=HEAD_GROUP,
            index=0,
            argv=argv,
            env=env,
            ports=ports,
            res=res,
            head=None,
            user=user,
        )

    def _start_worker(
        self,
        ray: Path,
        cdir: Path,
        cf: ClusterFile,
        head: NodeRecord,
        group: str,
        res: NodeResources,
        user: NodeUser | None,
        ft: bool = False,
    ) -> NodeRecord:
        index = cf.next_index
        cf.next_index += 1
        store.write(cdir, cf)  # the index is taken before the node exists: no dir is reused
        name = f"{commands.slug(group)}-{index}"
        used = [port for rec in cf.nodes.values() for port in rec.ports.values()]
        try:
            picked = processes.pick_ports(len(commands.WORKER_PORTS), avoid=used)
        except RuntimeError as exc:
            raise RetriableError(str(exc), code="NoFreePorts") from exc
        ports = dict(zip(commands.WORKER_PORTS, picked, strict=True))
        argv = commands.worker_command(ray, cdir / name, head.ports["gcs"], ports, res, group, name)
        return self._spawn(
            cdir,
            cf,
            name=name,
            group=group,
            index=index,
            argv=argv,
            env=self._env(ray, cdir, user, gcs.worker_env() if ft else None),
            ports=ports,
            res=res,
            head=head,
            user=user,
        )

    def _env(self, ray: Path, cdir: Path, user: NodeUser | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Set explicitly, whatever the host has (``~/.ray/auth_token``, ``RAY_AUTH_MODE``):
        token authentication on, with the cluster's token from its file."""
        name = user.name if user is not None else isolation.current_user()
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(cdir / TOKEN_FILE)}
        return isolation.node_env(bindir=ray.parent, home=cdir / HOME_DIR, user=name, extra={**auth, **(extra or {})})

    def _wait_for_dashboard(self, cdir: Path, cf: ClusterFile, head: NodeRecord, token: str) -> None:
        """Poll the head's dashboard until it lists the head alive; on timeout or an early death, kill
        the head and raise RetriableError with the end of its log. A head that refuses the
        token is left running and reported as ``RayAuthFailed``: it answered."""
        url = _dashboard_url(head)
        deadline = time.monotonic() + self.head_timeout
        headers = ray_headers(token)
        with httpx.Client(timeout=min(2.0, self.http_timeout), trust_env=False, headers=headers) as client:
            while True:
                alive = processes.is_alive(head)
                if alive and head_registered(client, url):
                    return
                if not alive or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        why = "exited" if not processes.is_alive(head) else f"did not answer within {self.head_timeout:g} s"
        tail = processes.log_tail(Path(head.log_path))
        self._stop_records(cdir, cf, [head], remove_dirs=False)
        raise RetriableError(f"Ray head {why} (dashboard {url}); log {head.log_path}:\n{tail}", code="HeadNotReady")

    def _state(self, cdir: Path, cf: ClusterFile) -> dict[str, Any]:
        out = cf.to_dict()
        out["cluster_dir"] = str(cdir)
        head = cf.head()
        if head is not None:
            out["dashboard_url"] = _dashboard_url(head)
            out["gcs_address"] = f"127.0.0.1:{head.ports['gcs']}"
            out["client_address"] = f"ray://127.0.0.1:{head.ports['client']}"
            if commands.SERVE_PORT in head.ports:
                out["serve_url"] = f"http://{commands.DASHBOARD_HOST}:{head.ports[commands.SERVE_PORT]}"
        return out


def _dashboard_url(head: NodeRecord) -> str:
    return f"http://{commands.DASHBOARD_HOST}:{head.ports['dashboard']}"
