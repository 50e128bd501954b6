"""The reconciler's pass over a service (a cluster of kind ``service``).

The same three phases as a plain cluster's (``reconcile``), with the provider's
``ServiceRunner`` in place of its cluster calls:

- **work** (no transaction open): ``teardown``/``stop`` on request; otherwise a requested
  ``rollback``, or an observation of every version (node health, autoscaling, usage) and one
  ``ensure`` step towards the wanted version (``ServiceSpec.version``) with its Serve config
  and rollout policy. The runner's state is the cluster's ``provider_state``.
- **apply** (the row locked): the runner's phase becomes the state (``PHASE_STATE``, through
  ``states.transition``), its progress the ``observed["service"]`` the API shows, each
  version's nodes usage intervals of their own (``v<n>/<group>``, sized by that version's
  spec: ``previous`` for the serving one during a rollout), so both versions are billed
  while they run, as the customer's cloud bills them.

Rollbacks. A new version that the runner dropped (automatically, when not healthy within
``health_timeout_seconds``, or on ``:rollback``) leaves the service RUNNING on the serving
version; the spec and Serve config return to ``previous`` (the generation grows, so an
If-Match against the abandoned spec fails), the update operations end Failed with Serve's
error (``RolloutFailed``), and a ``rollout_failed`` event says why. This happens once: the
same pass clears ``previous``.

Races: the apply phase holds the row lock, so a PATCH recorded during the work phase is
seen by the next pass (its version is not the snapshot's); a rollback recorded mid-pass
stays requested until a pass has run it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from rayplane.clusters import operations, planning
from rayplane.clusters.models import Cluster
from rayplane.clusters.serve import ServedVersion, ServiceSpec
from rayplane.clusters.spec import HEAD_GROUP, ClusterSpec
from rayplane.clusters.states import can_move, record_event, transition
from rayplane.clusters.values import Action, DesiredState, EventKind, OperationKind, State
from rayplane.providers.base import ClusterTarget, Observation, Provider, TerminalError
from rayplane.providers.services import ServicePhase, ServiceProgress, ServiceRunner, VersionTarget
from rayplane.usage import store as usage

if TYPE_CHECKING:
    from rayplane.clusters.reconcile import Outcome, Snapshot

PHASE_STATE: dict[ServicePhase, State | None] = {
    ServicePhase.PROVISIONING: None,  # stays PROVISIONING or STARTING
    ServicePhase.DEPLOYING: State.DEPLOYING,
    ServicePhase.RUNNING: State.RUNNING,
    ServicePhase.ROLLING_OUT: State.ROLLING_OUT,
    ServicePhase.ROLLING_BACK: State.ROLLING_BACK,
}


@dataclass
class ServiceResult:
    """What the work phase learned of a service, beside the cluster ``Outcome``."""

    progress: ServiceProgress | None = None
    versions: dict[int, Observation] = dataclasses.field(default_factory=dict)
    rolled_back: bool = False


def runner_of(provider: Provider, kind: str) -> ServiceRunner:
    runner = provider.service_runner()
    if runner is None:
        raise TerminalError(f"{kind!r} clouds cannot run services", code="ServicesUnsupported")
    return runner


def work(snap: Snapshot, provider: Provider, out: Outcome, target: ClusterTarget) -> None:
    """Phase 2 for a service: one runner call (see the module doc). Raises as the cluster
    calls do; the caller records the error."""
    runner = runner_of(provider, snap.cloud_provider)
    service = snap.service
    assert service is not None, "a service row always has its ServiceSpec"
    sid, token = snap.cluster_id, snap.ray_token or ""
    if out.action == Action.TEARDOWN:
        step = runner.teardown(sid, snap.provider_state)
    elif out.action in (Action.STOP, Action.RELEASE):
        step = runner.stop(sid, snap.provider_state, token=token)
    elif snap.rollback_requested:
        step = runner.rollback(sid, snap.provider_state, token=token, reason=snap.rollback_reason or "rolled back")
        out.service.rolled_back = True
    else:
        want = VersionTarget(service.version, target)
        if snap.provider_state and snap.state not in (State.STOPPED, State.PENDING):
            out.service.versions = runner.observe(sid, want, snap.provider_state)
            working = out.service.versions.get(_working_version(snap.provider_state, service))
            if working is not None:
                out.targets, out.scale_reasons = planning.autoscale(snap.spec, snap.targets, working)
                want = VersionTarget(service.version, dataclasses.replace(target, groups=_counts(target, out.targets)))
        step = runner.ensure(sid, want, service.serve, service.rollout, snap.provider_state)
    out.provider_state, out.events = step.state, step.events
    out.service.progress = step.progress


def _working_version(state: dict[str, Any], service: ServiceSpec) -> int:
    pending = state.get("pending")
    return int(pending) if pending is not None else int(state.get("active") or service.version)


def _counts(target: ClusterTarget, counts: dict[str, int]) -> tuple[Any, ...]:
    return tuple(dataclasses.replace(g, count=counts.get(g.name, g.count)) for g in target.groups)


def applied(session: Session, c: Cluster, snap: Snapshot, out: Outcome, now: datetime) -> None:
    """Phase 3 of an ``ensure`` (or rollback) pass: progress, usage, rollback and state."""
    progress = out.service.progress
    service = c.service
    if progress is None or service is None:
        return
    for reason in out.scale_reasons:
        record_event(session, c, EventKind.SCALED, reason)
    before = ((c.observed or {}).get("service") or {}).get("failure")
    if progress.failure and progress.failure != before:
        # Serve's error (an import error, a replica that does not start) once, when it appears.
        record_event(session, c, EventKind.PROVIDER, f"Serve: {progress.failure}"[:1000], code="ServeUnhealthy")
    versions = {
        str(v): planning.observed_summary(out.targets, o, now.isoformat()) for v, o in out.service.versions.items()
    }
    if out.service.rolled_back:
        # A rollback pass observes nothing: what the last pass saw of the versions still
        # running stays (not an empty answer, nor a dashboard gone for one pass).
        live = {str(v) for v in (progress.active_version, progress.pending_version) if v is not None}
        versions = {k: o for k, o in ((c.observed or {}).get("versions") or {}).items() if k in live}
    c.observed = {
        "targets": out.targets,
        "observed_at": now.isoformat(),
        "service": progress_json(progress),
        "versions": versions,
    }
    serving = out.service.versions.get(progress.active_version) if progress.active_version is not None else None
    if not out.service.rolled_back:
        c.dashboard_url = serving.dashboard_url if serving is not None else None
    if out.service.versions:
        usage.record_observation(session, tenant_id=c.tenant_id, cluster_id=c.id, groups=_usage(snap, out), at=now)
    if out.service.rolled_back and progress.pending_version is None:
        c.rollback_requested, c.rollback_reason = False, None
    dropped = (
        service.previous is not None
        and progress.pending_version is None
        and progress.active_version is not None
        and progress.active_version != service.version
        # Dropped by the runner (its error), or by a rollback asked before it had started it.
        and (progress.failure is not None or out.service.rolled_back)
        # A change recorded mid-pass (a newer version, say) is the next pass's to judge.
        and c.generation == snap.generation
    )
    if dropped:
        _roll_back_spec(session, c, service, progress, now, snap.rollback_reason)
    elif progress.active_version == service.version and progress.pending_version is None and service.previous:
        c.service = dataclasses.replace(service, previous=None)  # the rollout completed
    elif _snapshot_rollout_done(snap, progress) and service.previous:
        # The rollout completed while a newer version was recorded mid-pass: the version now
        # serving is the snapshot's, and the newer one's rollback returns to it.
        assert snap.service is not None
        c.service = dataclasses.replace(service, previous=ServedVersion(snap.spec, snap.service.serve))
    _move(session, c, snap, out, progress)


def _snapshot_rollout_done(snap: Snapshot, progress: ServiceProgress) -> bool:
    """The snapshot's rollout completed (its version serves alone) and it had one."""
    service = snap.service
    return (
        service is not None
        and service.previous is not None
        and progress.pending_version is None
        and progress.active_version == service.version
    )


def _move(session: Session, c: Cluster, snap: Snapshot, out: Outcome, progress: ServiceProgress) -> None:
    state = c.state
    to = PHASE_STATE[progress.phase]
    serving = out.service.versions.get(progress.active_version) if progress.active_version is not None else None
    missing = (
        planning.shortfalls(out.targets, serving) if serving is not None and progress.pending_version is None else []
    )
    if to == State.RUNNING and c.service is not None and progress.active_version != c.service.version:
        # The wanted version does not serve yet (a superseded one was just dropped): the
        # rollout goes on, and an update is not answered by the old version running.
        to = None
    if c.desired_state != DesiredState.RUNNING or to is None:
        return
    if missing and state == State.RUNNING:
        # What the pass observed before its step (which may already have restarted the head):
        # the loss is shown as such, not as a deploy; RUNNING again once all is back.
        transition(session, c, State.DEGRADED, reason="; ".join(missing), code="NodeLost")
        record_event(session, c, EventKind.NODE_LOST, "; ".join(missing))
        return
    if state == State.DEGRADED and (to != State.RUNNING or missing):
        return  # still recovering: Serve's applications or the nodes are not all back
    if to != state and can_move(state, to):
        transition(session, c, to, reason=_why(to, state, progress))
    if c.state == State.RUNNING and progress.pending_version is None:
        # What this pass applied: a change recorded mid-pass is not observed yet.
        c.observed_generation = max(c.observed_generation, snap.generation)


def _why(to: State, state: State, progress: ServiceProgress) -> str:
    if to == State.RUNNING:
        if state == State.DEGRADED:
            return "recovered"
        return f"version {progress.active_version} serves all traffic; every application is RUNNING"
    if to == State.DEPLOYING:
        return "applying the Serve applications"
    if to == State.ROLLING_OUT:
        return f"version {progress.pending_version} rolling out beside version {progress.active_version}"
    return f"version {progress.pending_version} being dropped; traffic back on version {progress.active_version}"


def _roll_back_spec(
    session: Session,
    c: Cluster,
    service: ServiceSpec,
    progress: ServiceProgress,
    now: datetime,
    reason: str | None = None,
) -> None:
    """The wanted version was dropped: the spec returns to what serves (see the module doc)."""
    previous = service.previous
    assert previous is not None
    failure = progress.failure or reason or "rolled back on request"
    why = f"version {service.version} rolled back; version {progress.active_version} still serves: {failure}"
    record_event(session, c, EventKind.ROLLOUT_FAILED, why[:1000], code="RolloutFailed")
    operations.fail_running(session, c, frozenset({OperationKind.UPDATE}), "RolloutFailed", why, now)
    c.spec = previous.spec
    c.service = dataclasses.replace(service, serve=previous.serve, version=progress.active_version or 1, previous=None)
    c.generation += 1
    c.observed_generation = c.generation  # the returned spec is the one that runs


def _usage(snap: Snapshot, out: Outcome) -> list[usage.GroupUsage]:
    service = snap.service
    assert service is not None
    groups: list[usage.GroupUsage] = []
    for version, obs in sorted(out.service.versions.items()):
        spec: ClusterSpec = snap.spec
        if version != service.version and service.previous is not None:
            spec = service.previous.spec
        head = spec.head
        groups.append(
            usage.GroupUsage(f"v{version}/{HEAD_GROUP}", head.vm_size, False, 1 if obs.head_alive else 0, head.size)
        )
        groups += [
            usage.GroupUsage(f"v{version}/{g.name}", g.vm_size, g.spot, obs.nodes.get(g.name, 0), g.size)
            for g in spec.worker_groups
        ]
    return groups


def progress_json(p: ServiceProgress) -> dict[str, Any]:
    return {
        "phase": str(p.phase),
        "active_version": p.active_version,
        "pending_version": p.pending_version,
        "traffic_percent": p.traffic_percent,
        "endpoint_url": p.endpoint_url,
        "failure": p.failure,
        "applications": [
            {"version": a.version, "name": a.name, "status": a.status, "message": a.message} for a in p.applications
        ],
    }


def failed_step(session: Session, c: Cluster) -> None:
    """A pass that failed still shows a rollout the runner started (its state came back with
    the error): RUNNING becomes ROLLING_OUT, so the answer does not hide a failing rollout."""
    pending = (c.provider_state or {}).get("pending")
    if pending is not None and c.state == State.RUNNING and c.desired_state == DesiredState.RUNNING:
        transition(session, c, State.ROLLING_OUT, reason=f"version {pending} starting")


def abandon_rollout(session: Session, c: Cluster, message: str) -> bool:
    """A new version that cannot be brought up (a terminal error, or too many attempts) is
    dropped like an unhealthy one: True when there is a serving version to keep, and the
    next pass rolls back (the update fails with this message); False when nothing serves
    yet, and the service fails as a cluster does. A serving version is never stopped for a
    new one's failure."""
    service = c.service
    serving = ((c.observed or {}).get("service") or {}).get("active_version")
    if service is None or service.previous is None or serving is None or serving == service.version:
        return False
    c.rollback_requested = True
    c.rollback_reason = f"version {service.version} could not be started: {message}"[:1000]
    record_event(session, c, EventKind.ROLLBACK_REQUESTED, c.rollback_reason, code="RolloutAbandoned")
    return True
