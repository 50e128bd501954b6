"""An in-memory ``ServiceRunner`` for testing the reconciler's pass over a service.

A provider plug-in like ``ScriptedProvider`` (not a stand-in for a Rayplane component),
with the contract of the local runner (``rayplane.providers.local.service``): one bounded
step per call, all progress in the JSON-able state it returns (the same layout, without
addresses), versions as clusters of their own (``<service_id>-v<n>``) started through the
``ScriptedProvider``, in place when the version number is the active one's, a rollout
otherwise, automatic rollback of a version not healthy within
``rollout.health_timeout_seconds`` of coming up (remembered in ``failed``, never tried
again), ``rollback`` on request, ``stop`` keeping what a start needs, and ``teardown``.

What takes time takes one call: a version's cluster starts and its Serve config is applied
in one call, its applications are judged at the next one (RUNNING, or DEPLOY_FAILED for a
version made to ``fail``). Time is a clock of the runner's own (``advance``): a traffic step
is due ``interval_seconds`` after the previous one, a health timeout ends as many seconds
after the version came up, or at once when ``expire`` says so. A drain finishes at once
unless ``hold_drain`` holds it. ``pause`` holds the next ``ensure`` of a service after its
step, so a test can record a change in the middle of a pass. ``kill_head`` kills a version's head (``observe`` reports
it down; the next ``ensure`` of that version starts it again, as a provider's ``ensure``
does). ``fail_next`` makes the next ``ensure``/``rollback``/``stop``/``teardown`` raise.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import threading
from typing import Any

from rayplane.providers.base import ClusterTarget, NodeShape, Observation, ProviderError, ProviderEvent
from rayplane.providers.services import (
    AppStatus,
    RolloutPolicy,
    ServeConfigSource,
    ServicePhase,
    ServiceProgress,
    ServiceRunner,
    ServiceStep,
    VersionTarget,
    version_cluster_id,
)
from tests.support.scripted_provider import ScriptedProvider

HOST = "127.0.0.1"
Phase = ServicePhase


def _event(code: str, reason: str) -> ProviderEvent:
    return ProviderEvent("service", reason, code)


def _bare(cluster_id: str) -> ClusterTarget:
    """Enough of a target to stop or tear a version's cluster down."""
    return ClusterTarget(cluster_id, cluster_id, "", None, NodeShape("", 0, 0.0), ())


def _initial(state: dict[str, Any]) -> dict[str, Any]:
    st = copy.deepcopy(state)
    defaults: dict[str, Any] = {
        "active": None,
        "pending": None,
        "traffic": 0,
        "step_index": -1,
        "step_at": None,
        "rolling_back": None,
        "failed": [],
        "failure": None,
        "versions": {},
    }
    for key, value in defaults.items():
        st.setdefault(key, value)
    return st


class ScriptedServiceRunner:
    """Services over a ``ScriptedProvider``'s clusters; see the module doc."""

    def __init__(self, provider: ScriptedProvider) -> None:
        self.provider = provider
        self.now = 1_000_000.0
        self.calls: list[tuple[str, str]] = []
        self.fail_next: list[ProviderError] = []
        self.failing: dict[str, str] = {}  # version cluster id -> Serve's message
        self.expired: set[str] = set()  # service ids whose pending version's timeout is up
        self.held: set[str] = set()  # version cluster ids whose drain does not finish
        self.apps: dict[str, dict[str, tuple[str, str]]] = {}  # cluster id -> name -> (status, message)
        self.routes: dict[str, dict[int, int]] = {}  # service id -> version -> weight
        self._ports = itertools.count(41000)
        self.paused: set[str] = set()
        self.reached = threading.Event()  # a paused ensure has done its step
        self.resume = threading.Event()  # and may return

    # -- what tests script ---------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def fail(self, service_id: str, version: int, message: str) -> None:
        """The version's applications report DEPLOY_FAILED with ``message`` from the next call."""
        self.failing[version_cluster_id(service_id, version)] = message

    def recover(self, service_id: str, version: int) -> None:
        self.failing.pop(version_cluster_id(service_id, version), None)

    def expire(self, service_id: str) -> None:
        """The pending version's health timeout is over at the next ``ensure``."""
        self.expired.add(service_id)

    def hold_drain(self, service_id: str, version: int) -> None:
        self.held.add(version_cluster_id(service_id, version))

    def release_drain(self, service_id: str, version: int) -> None:
        self.held.discard(version_cluster_id(service_id, version))

    def kill_head(self, service_id: str, version: int) -> None:
        self.provider.kill(version_cluster_id(service_id, version), "head")

    def pause(self, service_id: str) -> None:
        """The next ``ensure`` of the service, its step done, sets ``reached`` and waits for
        ``resume`` before returning: a test records a change in the middle of a pass."""
        self.paused.add(service_id)
        self.reached.clear()
        self.resume.clear()

    def _maybe_fail(self, call: str, service_id: str) -> None:
        self.calls.append((call, service_id))
        if self.fail_next:
            raise self.fail_next.pop(0)

    # -- the calls -------------------------------------------------------------------------

    def ensure(
        self,
        service_id: str,
        want: VersionTarget,
        serve: ServeConfigSource,
        rollout: RolloutPolicy,
        state: dict[str, Any],
    ) -> ServiceStep:
        self._maybe_fail("ensure", service_id)
        step = self._ensure(service_id, want, serve, rollout, state)
        if service_id in self.paused:
            self.paused.discard(service_id)
            self.reached.set()
            if not self.resume.wait(timeout=60):
                raise AssertionError("the test never resumed the paused pass")
        return step

    def _ensure(
        self,
        service_id: str,
        want: VersionTarget,
        serve: ServeConfigSource,
        rollout: RolloutPolicy,
        state: dict[str, Any],
    ) -> ServiceStep:
        st = _initial(state)
        events: list[ProviderEvent] = []
        st.setdefault("listen_port", next(self._ports))
        if st["rolling_back"] is not None:
            return self._roll_back(service_id, st, events)
        active, pending, v = st["active"], st["pending"], want.version
        work = v if active is None or (v > active and v not in st["failed"]) else active
        if pending is not None and pending != work:
            st["rolling_back"] = {"version": pending, "reason": f"version {pending} superseded", "remember": False}
            return self._roll_back(service_id, st, events)
        if active is not None and work != active and pending is None:
            st.update(pending=work, traffic=0, step_index=-1, step_at=None, failure=None)
            events.append(_event("RolloutStarted", f"version {work} starting beside version {active}"))
        for key in [k for k in st["versions"] if int(k) not in (active, work)]:
            self._teardown_version(st, int(key))  # a stray that never had traffic
        cid = version_cluster_id(service_id, work)
        vs = st["versions"].setdefault(str(work), {"cluster_id": cid, "provider": {}, "config_digest": None})
        step = self.provider.ensure(dataclasses.replace(want.cluster, cluster_id=cid), vs["provider"])
        vs["provider"] = step.state
        events += step.events
        if vs.get("up_at") is None:
            vs["up_at"] = self.now
        raw = serve.deploy_config(http_host=HOST, http_port=8000)
        if want.version in st["failed"]:
            raw = {"applications": []}  # the failed version's config is neither applied nor judged
        names = [str(a["name"]) for a in raw.get("applications") or ()]
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
        if vs["config_digest"] != digest and want.version not in st["failed"]:
            vs["config_digest"] = digest
            self.apps[cid] = dict.fromkeys(names, ("DEPLOYING", ""))
            events.append(_event("ServeDeployed", f"Serve config applied on version {work}"))
            return self._step(st, events, Phase.ROLLING_OUT if work == st["pending"] else Phase.DEPLOYING)
        apps = self._judge(cid, names)
        running = all(apps[n][0] == "RUNNING" for n in names)
        failure = "\n".join(f"{n}: {s}: {m}" for n, (s, m) in apps.items() if n in names and s != "RUNNING") or None
        if work == st["pending"]:
            return self._roll_out(service_id, st, events, rollout, running=running, failure=failure)
        if active is None and not running:
            return self._step(st, events, Phase.DEPLOYING, failure=failure)
        self.routes[service_id] = {work: 100}
        if active is None:
            st["active"] = work
            events.append(_event("ServiceRunning", f"version {work} serves all traffic"))
        if not running:
            return self._step(st, events, Phase.DEPLOYING, failure=failure)
        return self._step(st, events, Phase.RUNNING)

    def rollback(
        self, service_id: str, state: dict[str, Any], *, token: str = "", reason: str = "rolled back on request"
    ) -> ServiceStep:
        self._maybe_fail("rollback", service_id)
        st = _initial(state)
        if st["rolling_back"] is None and st["pending"] is not None:
            st["rolling_back"] = {"version": st["pending"], "reason": reason, "remember": True}
        if st["rolling_back"] is None:
            return self._step(st, [], Phase.RUNNING if st["active"] is not None else Phase.PROVISIONING)
        return self._roll_back(service_id, st, [])

    def stop(self, service_id: str, state: dict[str, Any], *, token: str = "") -> ServiceStep:
        self._maybe_fail("stop", service_id)
        st = _initial(state)
        self.routes.pop(service_id, None)
        for vs in st["versions"].values():
            vs["provider"] = self.provider.stop(_bare(vs["cluster_id"]), vs["provider"]).state
            vs["up_at"], vs["config_digest"] = None, None
            self.apps.pop(vs["cluster_id"], None)
        return self._step(st, [], Phase.PROVISIONING)

    def teardown(self, service_id: str, state: dict[str, Any]) -> ServiceStep:
        self._maybe_fail("teardown", service_id)
        st = _initial(state)
        self.routes.pop(service_id, None)
        for key in list(st["versions"]):
            self._teardown_version(st, int(key))
        return ServiceStep({}, ServiceProgress(Phase.PROVISIONING, None, None, 0, (), None))

    def observe(self, service_id: str, want: VersionTarget, state: dict[str, Any]) -> dict[int, Observation]:
        self.calls.append(("observe", service_id))
        out: dict[int, Observation] = {}
        for key, vs in _initial(state)["versions"].items():
            if vs.get("provider"):
                target = dataclasses.replace(want.cluster, cluster_id=vs["cluster_id"])
                out[int(key)] = self.provider.observe(target, vs["provider"])
        return out

    # -- the steps -------------------------------------------------------------------------

    def _roll_out(
        self,
        service_id: str,
        st: dict[str, Any],
        events: list[ProviderEvent],
        rollout: RolloutPolicy,
        *,
        running: bool,
        failure: str | None,
    ) -> ServiceStep:
        old, new = st["active"], st["pending"]
        vs = st["versions"][str(new)]
        if st["traffic"] == 0 and not running:
            timed_out = self.now - vs["up_at"] >= rollout.health_timeout_seconds or service_id in self.expired
            if not timed_out:
                return self._step(st, events, Phase.ROLLING_OUT)
            self.expired.discard(service_id)
            reason = f"version {new} not healthy within {rollout.health_timeout_seconds} s of its cluster being up: "
            st["rolling_back"] = {
                "version": new,
                "reason": reason + (failure or "its applications are not all RUNNING"),
                "remember": True,
            }
            return self._roll_back(service_id, st, events)
        if not running:  # unhealthy after traffic moved: no further step, no automatic rollback
            return self._step(st, events, Phase.ROLLING_OUT, failure=failure)
        steps = rollout.traffic_steps()
        if st["traffic"] < 100:
            if st["step_at"] is not None and self.now < st["step_at"] + rollout.interval_seconds:
                return self._step(st, events, Phase.ROLLING_OUT)
            index = min(st["step_index"] + 1, len(steps) - 1)
            share = steps[index]
            self.routes[service_id] = {old: 100 - share, new: share}
            st.update(traffic=share, step_index=index, step_at=self.now)
            events.append(_event("TrafficMoved", f"version {new} takes {share} % of new requests"))
            if share < 100:
                return self._step(st, events, Phase.ROLLING_OUT)
        if version_cluster_id(service_id, old) in self.held:
            return self._step(st, events, Phase.ROLLING_OUT)
        self.routes[service_id] = {new: 100}
        self._teardown_version(st, old)
        st.update(active=new, pending=None, traffic=0, step_index=-1, step_at=None)
        events.append(_event("RolloutCompleted", f"version {new} serves all traffic; version {old} removed"))
        return self._step(st, events, Phase.RUNNING)

    def _roll_back(self, service_id: str, st: dict[str, Any], events: list[ProviderEvent]) -> ServiceStep:
        rb = st["rolling_back"]
        dropped, active = int(rb["version"]), st["active"]
        vs = st["versions"].get(str(dropped))
        if active is not None:
            self.routes[service_id] = {active: 100}
        if vs is not None and st["traffic"] > 0 and vs["cluster_id"] in self.held:
            return self._step(st, events, Phase.ROLLING_BACK)
        if vs is not None:
            self._teardown_version(st, dropped)
        st.update(pending=None, traffic=0, step_index=-1, step_at=None, rolling_back=None)
        if rb["remember"]:
            st["failed"] = sorted({*st["failed"], dropped})
            st["failure"] = rb["reason"]
            events.append(_event("RolledBack", rb["reason"]))
        else:
            events.append(_event("VersionDropped", rb["reason"]))
        return self._step(st, events, Phase.RUNNING if active is not None else Phase.PROVISIONING)

    # -- helpers ---------------------------------------------------------------------------

    def _judge(self, cluster_id: str, names: list[str]) -> dict[str, tuple[str, str]]:
        """The applications as Serve reports them now: those applied on an earlier call are
        RUNNING, or DEPLOY_FAILED on a version made to ``fail``."""
        message = self.failing.get(cluster_id)
        apps = self.apps.setdefault(cluster_id, {})
        for name in names:
            apps[name] = ("DEPLOY_FAILED", message) if message is not None else ("RUNNING", "")
        return apps

    def _teardown_version(self, st: dict[str, Any], version: int) -> None:
        vs = st["versions"].pop(str(version))
        self.provider.teardown(_bare(vs["cluster_id"]), vs["provider"])
        self.apps.pop(vs["cluster_id"], None)

    def _step(
        self, st: dict[str, Any], events: list[ProviderEvent], phase: ServicePhase, *, failure: str | None = None
    ) -> ServiceStep:
        apps = [
            AppStatus(int(key), name, status, message)
            for key in sorted(st["versions"], key=int)
            if st["versions"][key]["cluster_id"] in self.provider.running
            for name, (status, message) in sorted(self.apps.get(st["versions"][key]["cluster_id"], {}).items())
        ]
        progress = ServiceProgress(
            phase=phase,
            active_version=st["active"],
            pending_version=st["pending"],
            traffic_percent=st["traffic"],
            applications=tuple(apps),
            endpoint_url=f"http://{HOST}:{st['listen_port']}" if st["active"] is not None else None,
            failure=failure if failure is not None else st["failure"],
        )
        return ServiceStep(st, progress, tuple(events))


class ScriptedServiceProvider(ScriptedProvider):
    """A ``ScriptedProvider`` whose clouds run services too, through ``services``."""

    def __init__(self) -> None:
        super().__init__()
        self.services = ScriptedServiceRunner(self)

    def service_runner(self) -> ServiceRunner | None:
        return self.services
