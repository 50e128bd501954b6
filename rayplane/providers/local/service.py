"""A Rayplane service on the local provider: Ray Serve on one local Ray cluster per
version, behind one stable Caddy endpoint, with rollouts and automatic rollback.

Composition: a ``LocalProvider`` runs each version as a cluster of its own (cluster id
``<service_id>-v<version>``: its own directory, ports and processes; started, observed and
torn down by the provider's own calls), a ``ServeClient`` deploys and reads Serve on it
through its dashboard, and a ``CaddyProxy`` holds the service's route (route id = service
id, on a loopback port chosen once and kept in ``state``) with the versions' Serve
addresses as weighted upstreams.

Contract of ``ensure(service_id, want, serve, rollout, state)``
---------------------------------------------------------------
- **One bounded step**: each call does at most one thing that takes time (a cluster's
  start, which ``LocalProvider.ensure`` bounds by its head timeout; a deploy; one traffic
  step; one drain, bounded by ``drain_timeout``; one teardown) and returns a
  ``ServiceStep``. The caller calls it again on every pass until the phase is RUNNING.
- **Idempotent and resumable**: all progress is in the JSON-able ``state`` it returns
  (layout below); a new process given that state carries on. A Serve config is deployed
  again only when its digest (of the body before uploads) changes, so a changed file under
  the same local ``working_dir`` path is picked up only with a changed config.
- **In place** (``want.version`` equal to the active version's): the Serve config is
  deployed on the active cluster; DEPLOYING until every application is RUNNING.
- **New version** (``want.version`` greater): its cluster starts beside the active one
  (ROLLING_OUT); once all its applications are RUNNING, traffic moves in
  ``rollout.traffic_steps()``, one step per ``interval_seconds``; at 100 % the old
  version's upstream is drained (``CaddyProxy.drain``), then removed, and its cluster torn
  down; RUNNING again on the new one.
- **Automatic rollback**: a new version whose applications are not all RUNNING
  ``health_timeout_seconds`` after its cluster came up (its Serve port known), traffic never
  having moved, is dropped: its cluster is torn down, 100 % stays on the old one, the
  phase is RUNNING with ``failure`` carrying Serve's message (a DEPLOY_FAILED application's
  traceback, e.g. ``ModuleNotFoundError``). Decision: DEPLOY_FAILED does not roll back at
  once but at the timeout like any other unhealthy state, since Serve's controller retries
  replicas that fail to start and an application can still leave DEPLOY_FAILED; the timeout
  is the user's one knob. The version is remembered (``failed``) and not tried again until
  the version number grows. ``rollback`` does the same on request, also after traffic moved
  (then it drains the new version's upstream before the teardown). A new version that
  turns unhealthy after traffic moved is not rolled back automatically: the steps stop
  (ROLLING_OUT with ``failure``) until it recovers or ``rollback`` is called.
- A new version whose cluster never comes up (``LocalProvider.ensure`` raising each call)
  is not rolled back here either: the error goes to the caller, whose retry policy decides.
- A version that became superseded while rolling out (the number grew again) is dropped
  the same way, without being remembered as failed.
- Only the version being worked on is ``ensure``d by the provider: during a rollout the
  active cluster is left as it runs (its processes are detached) and read through Serve.
  Every version runs with the wanted target's Ray token (one token per service).

Races: one caller per service at a time (the reconciler's lease); the Caddy route writes
are serialised by ``CaddyProxy`` itself. A crash between a Caddy change and the state's
persistence is repaired by the next call, which sets the route it computes again.

State layout::

    {"listen_port": 41234, "active": 1, "pending": 2, "traffic": 20, "step_index": 0,
     "step_at": <epoch s>, "rolling_back": {"version": 2, "reason": "...", "remember": true} | null,
     "failed": [3], "failure": "..." | null,
     "versions": {"1": {"cluster_id": "svc-v1", "provider": {<LocalProvider state>},
                        "address": "127.0.0.1:8123", "config_digest": "<sha256>",
                        "up_at": <epoch s>, "deploy_error": null}}}
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import socket
import time
from pathlib import Path
from typing import Any

from rayplane.providers.base import (
    ClusterTarget,
    NodeShape,
    Observation,
    ProviderError,
    ProviderEvent,
    RetriableError,
    TerminalError,
)
from rayplane.providers.local import isolation
from rayplane.providers.local.provider import LocalProvider
from rayplane.providers.local.proxy import CaddyProxy, Upstream
from rayplane.providers.local.serve import ServeClient, ServeError, ServeStatus, failure_text, routes_ready
from rayplane.providers.local.serve_config import ServeConfig, ServeConfigError
from rayplane.providers.services import (
    AppStatus,
    RolloutPolicy,
    ServeConfigSource,
    ServicePhase,
    ServiceProgress,
    ServiceStep,
    VersionTarget,
    version_cluster_id,
)

__all__ = [
    "CaddyProxy",
    "LocalServiceRunner",
    "ServicePhase",
    "ServiceProgress",
    "ServiceStep",
    "VersionTarget",
    "version_cluster_id",
]

LISTEN_HOST = "127.0.0.1"
EVENT_KIND = "service"
PROXY_LOCATION = "HeadOnly"  # one proxy per local cluster (docs/architecture.md)


def _event(code: str, reason: str) -> ProviderEvent:
    return ProviderEvent(EVENT_KIND, reason, code)


def _initial(state: dict[str, Any]) -> dict[str, Any]:
    st = copy.deepcopy(state)
    for key, default in (
        ("active", None),
        ("pending", None),
        ("traffic", 0),
        ("step_index", -1),
        ("step_at", None),
        ("rolling_back", None),
        ("failed", []),
        ("failure", None),
        ("versions", {}),
    ):
        st.setdefault(key, default)
    return st


def _bare_target(cluster_id: str) -> ClusterTarget:
    """Enough of a target to stop or tear a cluster down: the provider needs its id only
    (and its state, which says whether it kept GCS keys in Redis)."""
    return ClusterTarget(cluster_id, cluster_id, "", None, NodeShape("", 0, 0.0), ())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LISTEN_HOST, 0))
        return int(sock.getsockname()[1])


class LocalServiceRunner:
    """Services on one machine: ``LocalServiceRunner(provider, proxy)``; see the module doc."""

    def __init__(
        self,
        provider: LocalProvider,
        proxy: CaddyProxy,
        *,
        serve_timeout: float = 60.0,
        drain_timeout: float = 10.0,
    ) -> None:
        self.provider = provider
        self.proxy = proxy
        self.serve_timeout = serve_timeout
        self.drain_timeout = drain_timeout

    # -- the calls ---------------------------------------------------------------------

    def ensure(
        self,
        service_id: str,
        want: VersionTarget,
        serve: ServeConfigSource,
        rollout: RolloutPolicy,
        state: dict[str, Any],
    ) -> ServiceStep:
        st = _initial(state)
        events: list[ProviderEvent] = []
        token = want.cluster.ray_token
        st.setdefault("listen_port", _free_port())
        if st["rolling_back"] is not None:
            return self._roll_back(service_id, st, events, token)
        active, pending, v = st["active"], st["pending"], want.version
        # In place on the active version unless the number grew to one not failed before.
        work = v if active is None or (v > active and v not in st["failed"]) else active
        if pending is not None and pending != work:
            # Superseded (the number grew again, or went back): drop it, not as a failure.
            st["rolling_back"] = {"version": pending, "reason": f"version {pending} superseded", "remember": False}
            return self._roll_back(service_id, st, events, token)
        if active is not None and work != active and pending is None:
            st.update(pending=work, traffic=0, step_index=-1, step_at=None, failure=None)
            events.append(_event("RolloutStarted", f"version {work} starting beside version {active}"))
        self._drop_strays(st, keep={active, work})
        target = dataclasses.replace(want.cluster, cluster_id=version_cluster_id(service_id, work))
        vs = st["versions"].setdefault(
            str(work),
            {"cluster_id": target.cluster_id, "provider": {}, "address": None, "config_digest": None, "up_at": None},
        )
        try:
            step = self.provider.ensure(target, vs["provider"])
        except ProviderError as exc:
            # The step's progress (a rollout started, its events) is kept with the error, so
            # the caller shows the rollout and its next call resumes it.
            if exc.provider_state is not None:
                vs["provider"] = exc.provider_state
            exc.provider_state, exc.events = st, (*events, *exc.events)
            raise
        vs["provider"] = step.state
        events += step.events
        endpoint = self.provider.serve_endpoint(vs["provider"])
        if endpoint is None:  # the head started but died since: the next call starts it
            return self._step(
                st, events, ServicePhase.PROVISIONING if active is None else ServicePhase.ROLLING_OUT, token=token
            )
        now = time.time()
        if vs["up_at"] is None:
            vs["up_at"] = now
        vs["address"] = endpoint.address
        raw = serve.deploy_config(http_host=endpoint.host, http_port=endpoint.port, proxy_location=PROXY_LOCATION)
        if want.version in st["failed"]:
            # The failed version's config is neither applied nor judged: the active runs its own.
            raw = {"applications": []}
        names = [str(a["name"]) for a in raw.get("applications") or ()]
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        with ServeClient(endpoint.dashboard_url, token=target.ray_token, timeout=self.serve_timeout) as client:
            status = self._status(client) if vs["config_digest"] == digest else None
            if status is not None and names and not any(n in status.applications for n in names):
                # Deployed once, but Serve knows none of the applications: its controller came
                # back without its tables (a head restarted with its GCS lost). Apply again.
                vs["config_digest"] = None
                events.append(_event("ServeRedeployed", f"Serve on version {work} lost its applications"))
            if vs["config_digest"] != digest and want.version not in st["failed"]:
                vs.update(config_digest=digest, deploy_error=None)
                try:
                    client.deploy(ServeConfig.from_spec(self._uploaded(client, raw)))
                    events.append(_event("ServeDeployed", f"Serve config applied on version {work}"))
                except ServeError as exc:
                    if exc.retriable:
                        vs["config_digest"] = None  # asked again on the next call
                        raise RetriableError(str(exc), code="ServeUnavailable", state=st) from None
                    # Refused (4xx): not asked again until the config changes.
                    vs["deploy_error"] = str(exc)
                    events.append(_event("ServeConfigRefused", str(exc)))
                except TerminalError as exc:
                    # A config that cannot be sent (an unreadable working_dir): like a refusal,
                    # it fails this version's deploy, not the service, which keeps serving.
                    vs["deploy_error"] = exc.message
                    events.append(_event(exc.code or "ServeConfigRefused", exc.message))
                # Serve may still report the previous config's statuses: judge on the next call.
                phase = ServicePhase.ROLLING_OUT if work == st["pending"] else ServicePhase.DEPLOYING
                return self._step(st, events, phase, token=token)
            if status is None:
                status = self._status(client)
        running = status is not None and status.all_running(names) and not vs.get("deploy_error")
        # RUNNING is the controller's word; the proxy learns the routes by long poll after
        # it, and answers 404 until then: no traffic before it lists every route.
        running = running and routes_ready(endpoint.url, raw)
        failure = vs.get("deploy_error") or failure_text(status, names)
        if work == st["pending"]:
            return self._roll_out(
                service_id, st, events, rollout, running=running, failure=failure, now=now, token=token
            )
        if active is None and not running:  # no route before the first version runs
            return self._step(st, events, ServicePhase.DEPLOYING, failure=failure, token=token)
        self._route(service_id, st, {work: 100})  # also restores it after a lost Caddy change
        if active is None:
            st["active"] = work
            events.append(_event("ServiceRunning", f"version {work} serves all traffic"))
        phase = ServicePhase.RUNNING if running else ServicePhase.DEPLOYING
        return self._step(st, events, phase, failure=None if running else failure, token=token)

    def rollback(
        self, service_id: str, state: dict[str, Any], *, token: str = "", reason: str = "rolled back on request"
    ) -> ServiceStep:
        """Drop the pending version now (traffic back to the active one first, drained if it
        had moved) and remember it as failed; a no-op step without a pending version.
        ``token`` (the service's Ray token) only lets the progress read Serve's statuses."""
        st = _initial(state)
        if st["rolling_back"] is None and st["pending"] is not None:
            st["rolling_back"] = {"version": st["pending"], "reason": reason, "remember": True}
        if st["rolling_back"] is None:
            return self._step(
                st, [], ServicePhase.RUNNING if st["active"] is not None else ServicePhase.PROVISIONING, token=token
            )
        return self._roll_back(service_id, st, [], token)

    def stop(self, service_id: str, state: dict[str, Any], *, token: str = "") -> ServiceStep:
        """Remove the route and stop every version's nodes; their directories and ports stay,
        so ``ensure`` starts the active version again (and deploys its config again). A
        rollout stopped half-way resumes on the pending version only: call ``rollback``
        before ``stop`` to keep just the active one."""
        st = _initial(state)
        self.proxy.remove_route(service_id)
        events: list[ProviderEvent] = []
        for vs in st["versions"].values():
            step = self.provider.stop(_bare_target(vs["cluster_id"]), vs["provider"])
            vs["provider"], vs["up_at"], vs["config_digest"] = step.state, None, None
            events += step.events
        return self._step(st, events, ServicePhase.PROVISIONING, token=token)

    def teardown(self, service_id: str, state: dict[str, Any]) -> ServiceStep:
        """Remove the route and everything every version had; the returned state is empty."""
        st = _initial(state)
        self.proxy.remove_route(service_id)
        for key in list(st["versions"]):
            vs = st["versions"][key]
            self.provider.teardown(_bare_target(vs["cluster_id"]), vs["provider"])
            del st["versions"][key]  # the provider's teardown is idempotent: a retry is safe
        return ServiceStep({}, ServiceProgress(ServicePhase.PROVISIONING, None, None, 0, (), None))

    def observe(self, service_id: str, want: VersionTarget, state: dict[str, Any]) -> dict[int, Observation]:
        """Each version's nodes, through the provider's ``observe`` (its head's APIs): the
        worked-on version with the wanted target's groups; the other with the same names
        (a group missing from its own shape simply counts no node)."""
        out: dict[int, Observation] = {}
        for key, vs in (_initial(state)["versions"] or {}).items():
            if not vs.get("provider"):
                continue
            target = dataclasses.replace(want.cluster, cluster_id=vs["cluster_id"])
            out[int(key)] = self.provider.observe(target, vs["provider"])
        return out

    # -- the steps ---------------------------------------------------------------------

    def _roll_out(
        self,
        service_id: str,
        st: dict[str, Any],
        events: list[ProviderEvent],
        rollout: RolloutPolicy,
        *,
        running: bool,
        failure: str | None,
        now: float,
        token: str,
    ) -> ServiceStep:
        old, new = st["active"], st["pending"]
        vs = st["versions"][str(new)]
        if st["traffic"] == 0 and not running:
            if now - vs["up_at"] < rollout.health_timeout_seconds:
                return self._step(st, events, ServicePhase.ROLLING_OUT, token=token)
            reason = (
                f"version {new} not healthy within {rollout.health_timeout_seconds} s of its cluster being up: "
                + (failure or "its applications are not all RUNNING")
            )
            st["rolling_back"] = {"version": new, "reason": reason, "remember": True}
            return self._roll_back(service_id, st, events, token)
        if not running:
            # Unhealthy after traffic moved: no further step; the automatic rollback is for a
            # version that never had traffic, this one waits for ``rollback`` or a recovery.
            return self._step(st, events, ServicePhase.ROLLING_OUT, failure=failure, token=token)
        steps = rollout.traffic_steps()
        if st["traffic"] < 100:
            due = st["step_at"] is None or now >= st["step_at"] + rollout.interval_seconds
            if not due:
                return self._step(st, events, ServicePhase.ROLLING_OUT, token=token)
            index = min(st["step_index"] + 1, len(steps) - 1)
            share = steps[index]
            self._route(service_id, st, {old: 100 - share, new: share})
            st.update(traffic=share, step_index=index, step_at=now)
            events.append(_event("TrafficMoved", f"version {new} takes {share} % of new requests"))
            if share < 100:
                return self._step(st, events, ServicePhase.ROLLING_OUT, token=token)
        # All new requests go to the new version: let the old one's finish, then drop it.
        old_address = st["versions"][str(old)]["address"]
        if old_address and not self.proxy.drain(old_address, timeout=self.drain_timeout):
            return self._step(st, events, ServicePhase.ROLLING_OUT, token=token)
        self._route(service_id, st, {new: 100})
        self._teardown_version(st, old)
        st.update(active=new, pending=None, traffic=0, step_index=-1, step_at=None)
        events.append(_event("RolloutCompleted", f"version {new} serves all traffic; version {old} removed"))
        return self._step(st, events, ServicePhase.RUNNING, token=token)

    def _roll_back(self, service_id: str, st: dict[str, Any], events: list[ProviderEvent], token: str) -> ServiceStep:
        """Traffic back to the active version, the dropped version drained (if it had
        traffic) and torn down; ROLLING_BACK while its drain is not done."""
        rb = st["rolling_back"]
        dropped, active = int(rb["version"]), st["active"]
        vs = st["versions"].get(str(dropped))
        if active is not None:
            self._route(service_id, st, {active: 100})
        drained = vs is None or st["traffic"] == 0 or not vs.get("address")
        if not drained and not self.proxy.drain(vs["address"], timeout=self.drain_timeout):
            return self._step(st, events, ServicePhase.ROLLING_BACK, token=token)
        if vs is not None:
            self._teardown_version(st, dropped)
        st.update(pending=None, traffic=0, step_index=-1, step_at=None, rolling_back=None)
        if rb["remember"]:
            st["failed"] = sorted({*st["failed"], dropped})
            st["failure"] = rb["reason"]
            events.append(_event("RolledBack", rb["reason"]))
        else:
            events.append(_event("VersionDropped", rb["reason"]))
        phase = ServicePhase.RUNNING if active is not None else ServicePhase.PROVISIONING
        return self._step(st, events, phase, token=token)

    # -- helpers -----------------------------------------------------------------------

    def _route(self, service_id: str, st: dict[str, Any], weights: dict[int, int]) -> None:
        """Set the service's route to these versions' Serve addresses (idempotent: Caddy is
        not touched when it holds them already)."""
        upstreams = [
            Upstream(st["versions"][str(v)]["address"], w)
            for v, w in sorted(weights.items())
            if str(v) in st["versions"]
        ]
        self.proxy.set_route(service_id, (LISTEN_HOST, int(st["listen_port"])), upstreams)

    def _teardown_version(self, st: dict[str, Any], version: int) -> None:
        vs = st["versions"][str(version)]
        self.provider.teardown(_bare_target(vs["cluster_id"]), vs["provider"])
        del st["versions"][str(version)]

    def _drop_strays(self, st: dict[str, Any], keep: set[int | None]) -> None:
        """Tear down versions neither active nor worked on (a first version that never ran,
        replaced by a newer number): they never had traffic."""
        for key in [k for k in st["versions"] if int(k) not in keep]:
            self._teardown_version(st, int(key))

    def _uploaded(self, client: ServeClient, raw: dict[str, Any]) -> dict[str, Any]:
        """``raw`` with each local ``working_dir`` uploaded and replaced by its ``gcs://`` URI
        (Serve's REST API takes URIs only); ServeConfigError becomes a TerminalError."""
        out = copy.deepcopy(raw)
        for app in out.get("applications") or ():
            env = app.get("runtime_env") or {}
            wd = env.get("working_dir")
            if isinstance(wd, str) and "://" not in wd:
                if not Path(wd).is_dir():
                    raise TerminalError(f"working_dir {wd!r} of application {app.get('name')!r} is not a directory")
                user = isolation.resolve_node_user(self.provider.node_user)
                hidden = isolation.unreadable_by(user, Path(wd)) if user is not None else None
                if hidden is not None:
                    raise TerminalError(
                        f"working_dir {wd!r} of application {app.get('name')!r}: {hidden} is not readable by "
                        f"the nodes' user {user.name if user else ''!r}; only what the nodes could read is uploaded",
                        code="WorkingDirNotReadable",
                    )
                env["working_dir"] = client.upload_directory(Path(wd))
        try:
            ServeConfig.from_spec(out)
        except ServeConfigError as exc:
            raise TerminalError(f"the Serve config is invalid: {exc}", code="InvalidServeConfig") from None
        return out

    def _status(self, client: ServeClient) -> ServeStatus | None:
        try:
            return client.status()
        except ServeError:
            return None  # the dashboard is restarting: not running, judged again next call

    def _step(
        self,
        st: dict[str, Any],
        events: list[ProviderEvent],
        phase: ServicePhase,
        *,
        token: str,
        failure: str | None = None,
    ) -> ServiceStep:
        """The step to return, with each live version's applications as Serve reports them
        now (none for a version whose dashboard does not answer or refuses ``token``)."""
        apps: list[AppStatus] = []
        for key in sorted(st["versions"], key=int):
            endpoint = self.provider.serve_endpoint(st["versions"][key]["provider"])
            if endpoint is None:
                continue
            with ServeClient(endpoint.dashboard_url, token=token, timeout=self.serve_timeout) as client:
                status = self._status(client)
            for name, app in sorted((status.applications if status else {}).items()):
                apps.append(AppStatus(int(key), name, str(app.status), app.message))
        url = f"http://{LISTEN_HOST}:{st['listen_port']}" if st["active"] is not None else None
        progress = ServiceProgress(
            phase=phase,
            active_version=st["active"],
            pending_version=st["pending"],
            traffic_percent=st["traffic"],
            applications=tuple(apps),
            endpoint_url=url,
            failure=failure if failure is not None else st["failure"],
        )
        return ServiceStep(st, progress, tuple(events))
