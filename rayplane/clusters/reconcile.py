"""The reconciler: compares what a user wants with what runs, and takes the next step.

One pass over one cluster, in three phases so no database transaction spans cloud work:
1. take the lease (a conditional UPDATE; skip the pass when another worker holds it);
2. read a snapshot of the cluster, then do the provider work with no transaction open;
3. lock the row (``SELECT … FOR UPDATE``), apply what happened (provider state, observed
   nodes, state transitions with their events, usage intervals, jobs, operations), choose
   when to look again, release the lease and commit.
Every step is idempotent: a pass cut short anywhere is repeated by the next one, and the
provider's own records keep it from creating anything twice. Errors back off with jitter;
too many attempts, or a terminal error, end in FAILED with the reason and the cloud's code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from rayplane.clouds.models import Cloud
from rayplane.clusters import intent, operations, planning, service_pass, store
from rayplane.clusters.models import Cluster
from rayplane.clusters.serve import ServiceSpec
from rayplane.clusters.spec import HEAD_GROUP, ClusterSpec
from rayplane.clusters.states import can_move, record_event, transition
from rayplane.clusters.values import Action, ClusterKind, DesiredState, EventKind, OperationKind, State
from rayplane.common import raytoken
from rayplane.common.upstream import one_line
from rayplane.db.base import utcnow
from rayplane.jobs import store as job_store
from rayplane.jobs import sync as job_sync
from rayplane.logs import get_logger
from rayplane.providers.base import (
    ClusterTarget,
    Observation,
    Provider,
    ProviderError,
    ProviderEvent,
    TerminalError,
    ray_headers,
)
from rayplane.settings import Settings
from rayplane.tenants import store as tenant_store
from rayplane.usage import store as usage

log = get_logger("rayplane.reconcile")

BUSY = frozenset(
    {State.PENDING, State.PROVISIONING, State.STARTING, State.UPDATING, State.DEGRADED, State.STOPPING, State.DELETING}
    | {State.DEPLOYING, State.ROLLING_OUT, State.ROLLING_BACK}
)
# A stop asked in these states stops at once (a service's in a rollout too: ``stop`` then
# ``start`` resumes it, see ``ServiceRunner.stop``).
STOPPABLE = frozenset({State.RUNNING, State.STOPPING, State.DEPLOYING, State.ROLLING_OUT, State.ROLLING_BACK})


@dataclass
class Snapshot:
    cluster_id: str
    name: str
    state: State
    desired: DesiredState
    spec: ClusterSpec
    generation: int
    observed_generation: int
    provider_state: dict[str, Any]
    targets: dict[str, int]
    retry_requested: bool
    release_pending: bool
    cloud_provider: str
    cloud_config: dict[str, Any]
    pool_demand: dict[str, int]
    jobs: dict[str, str]  # job id -> submission id of unfinished jobs
    dashboard_url: str | None
    # The cluster's Ray token, opened; None when the sealed one does not open with this
    # secret key (only stop and teardown can proceed without it).
    ray_token: str | None = field(default=None, repr=False)
    kind: ClusterKind = ClusterKind.CLUSTER
    service: ServiceSpec | None = None
    rollback_requested: bool = False
    rollback_reason: str | None = None
    tenant_id: str = ""
    log_retention_days: int | None = None


@dataclass
class Outcome:
    action: Action
    provider_state: dict[str, Any]
    targets: dict[str, int]
    observation: Observation | None = None
    error: Exception | None = None
    events: tuple[ProviderEvent, ...] = ()
    scale_reasons: list[str] = field(default_factory=list)
    jobs: job_sync.Updates = field(default_factory=dict)
    # A teardown done without reaching the cloud: why (recorded, and the resources named).
    unreachable: str | None = None
    service: service_pass.ServiceResult = field(default_factory=service_pass.ServiceResult)


def choose_action(state: State, desired: DesiredState, retry_requested: bool, release_pending: bool = False) -> Action:
    """What this pass does: ``ensure``, ``stop``, ``teardown``, ``release`` or ``none``.

    A FAILED cluster is left alone unless asked to retry, stop or delete, except for one
    ``release`` of its nodes after it entered FAILED (``release_pending``)."""
    if state == State.DELETED:
        return Action.NONE
    if desired == DesiredState.DELETED:
        return Action.TEARDOWN
    if state == State.FAILED and desired == DesiredState.STOPPED:
        return Action.STOP
    if state == State.FAILED and not retry_requested:
        return Action.RELEASE if release_pending else Action.NONE
    if desired == DesiredState.STOPPED and state in STOPPABLE:
        return Action.STOP
    if desired == DesiredState.STOPPED and state == State.STOPPED:
        return Action.NONE
    if desired == DesiredState.RUNNING and state == State.STOPPING:
        return Action.STOP  # finish the stop first; STOPPED -> STARTING comes next
    return Action.ENSURE


def choose_action_for(c: Cluster) -> Action:
    return choose_action(c.state, c.desired_state, c.retry_requested, c.release_pending)


class Reconciler:
    def __init__(
        self, sessions: sessionmaker[Session], providers: dict[str, Provider], settings: Settings, owner: str
    ) -> None:
        self.sessions = sessions
        self.providers = providers
        self.settings = settings
        self.owner = owner

    # ---- phase 1 and 2 --------------------------------------------------------------
    def _begin(self, cluster_id: str) -> Snapshot | None:
        """Take the lease, announce the work about to start (PROVISIONING, STOPPING, ...) and
        read a snapshot; ``None`` when another worker holds the lease or the row is gone."""
        with self.sessions() as session, session.begin():
            if not store.acquire_lease(session, cluster_id, self.owner, self.settings.lease_seconds):
                return None
        with self.sessions() as session, session.begin():
            c = store.load(session, cluster_id, lock=True)
            if c is None:
                return None
            action = choose_action_for(c)
            if action == Action.ENSURE:
                self._entered(session, c)
            elif action == Action.STOP and can_move(c.state, State.STOPPING):
                transition(session, c, State.STOPPING, reason="stopping on request")
            elif action == Action.TEARDOWN and can_move(c.state, State.DELETING):
                transition(session, c, State.DELETING, reason="deleting on request")
            cloud = store.load_cloud(session, c.cloud_id)
            jobs = {j.id: j.submission_id for j in job_store.active(session, c.id)}
            if c.ray_token_sealed is None:
                # The only writer of the column; the row is locked, so two passes cannot
                # give one cluster two tokens.
                c.ray_token_sealed = raytoken.seal(self._token_key, raytoken.new_token())
            try:
                token: str | None = raytoken.open_token(self._token_key, c.ray_token_sealed)
            except raytoken.TokenUnreadable:
                token = None
            return Snapshot(
                cluster_id=c.id,
                name=c.name,
                state=c.state,
                desired=c.desired_state,
                spec=c.spec,
                generation=c.generation,
                observed_generation=c.observed_generation,
                provider_state=dict(c.provider_state or {}),
                targets=planning.group_targets(c.spec, (c.observed or {}).get("targets", {})),
                retry_requested=c.retry_requested,
                release_pending=c.release_pending,
                cloud_provider=cloud.provider if cloud else "local",
                cloud_config=dict(cloud.config) if cloud else {},
                pool_demand=self._pool_demand(session, cloud),
                jobs=jobs,
                dashboard_url=c.dashboard_url,
                ray_token=token,
                kind=c.kind,
                service=c.service,
                rollback_requested=c.rollback_requested,
                rollback_reason=c.rollback_reason,
                tenant_id=c.tenant_id,
                log_retention_days=tenant_store.log_retention_days(session, c.tenant_id),
            )

    def _pool_demand(self, session: Session, cloud: Cloud | None) -> dict[str, int]:
        """For a provider whose node pools are shared, the whole cloud's node demand per pool,
        so a shared pool is sized once for every cluster on it."""
        provider = self.providers.get(cloud.provider) if cloud else None
        if cloud is None or provider is None or not provider.shares_node_pools:
            return {}
        return store.pool_demand(session, cloud.id)

    @functools.cached_property
    def _token_key(self) -> bytes:
        return self.settings.hashing_key()

    def _target(self, snap: Snapshot, targets: dict[str, int]) -> ClusterTarget:
        return planning.cluster_target(
            snap.cluster_id,
            snap.name,
            snap.spec,
            targets,
            snap.cloud_config,
            snap.pool_demand,
            snap.ray_token or "",
            snap.tenant_id,
            snap.log_retention_days,
        )

    def _jobs_auth(self, provider: Provider, snap: Snapshot) -> job_sync.Auth:
        """The provider's way in (a proxy's token, its CA) plus the cluster's Ray token."""
        headers, verify = provider.jobs_auth(snap.cloud_config)
        return {**headers, **ray_headers(snap.ray_token or "")}, verify

    def _work(self, snap: Snapshot, provider: Provider) -> Outcome:
        action = choose_action(snap.state, snap.desired, snap.retry_requested, snap.release_pending)
        out = Outcome(action=action, provider_state=snap.provider_state, targets=snap.targets)
        target = self._target(snap, snap.targets)
        try:
            if snap.kind == ClusterKind.SERVICE:
                if action == Action.ENSURE and snap.ray_token is None:
                    raise TerminalError("the service's Ray token cannot be opened", code="RayTokenUnreadable")
                if action != Action.NONE:
                    service_pass.work(snap, provider, out, target)
            elif action in (Action.TEARDOWN, Action.STOP, Action.RELEASE):
                url = provider.jobs_endpoint(snap.provider_state)
                if url and snap.jobs:
                    auth = self._jobs_auth(provider, snap)
                    out.jobs = job_sync.fetch(url, snap.jobs, final=True, auth=auth)
                fn = provider.teardown if action == Action.TEARDOWN else provider.stop
                step = fn(target, snap.provider_state)
                out.provider_state, out.events = step.state, step.events
            elif action == Action.ENSURE:
                if snap.ray_token is None:
                    raise TerminalError(
                        "the cluster's Ray token cannot be opened with this RAYPLANE_SECRET_KEY (was it rotated?)",
                        code="RayTokenUnreadable",
                    )
                if snap.provider_state and snap.state not in (State.STOPPED, State.PENDING):
                    out.observation = provider.observe(target, snap.provider_state)
                    out.targets, out.scale_reasons = planning.autoscale(snap.spec, snap.targets, out.observation)
                    target = self._target(snap, out.targets)
                    if out.observation.head_alive and out.observation.dashboard_url and snap.jobs:
                        auth = self._jobs_auth(provider, snap)
                        out.jobs = job_sync.fetch(out.observation.dashboard_url, snap.jobs, final=False, auth=auth)
                step = provider.ensure(target, snap.provider_state)
                out.provider_state, out.events = step.state, step.events
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and backed off
            out.error = exc
            if isinstance(exc, ProviderError):
                out.events = exc.events
                if exc.provider_state is not None:
                    out.provider_state = exc.provider_state
        return out

    @staticmethod
    def _without_provider(snap: Snapshot) -> Outcome:
        """A cluster whose cloud kind has no provider in this process (the Azure app is not
        configured, or the demo emulator is gone): a delete closes the records at once, since
        retrying cannot reach the cloud either; anything else fails terminally, saying why."""
        action = choose_action(snap.state, snap.desired, snap.retry_requested, snap.release_pending)
        error = TerminalError(
            f"this control plane has no provider for {snap.cloud_provider!r} clouds, so the cloud cannot be "
            "reached (for Azure: configure RAYPLANE_AZURE_CLIENT_ID; in dev mode start with RAYPLANE_DEMO_AZURE=1)",
            code="ProviderUnavailable",
        )
        if action == Action.TEARDOWN:
            return Outcome(Action.TEARDOWN, {}, snap.targets, unreachable=error.message)
        return Outcome(Action.NONE, snap.provider_state, snap.targets, error=error)

    # ---- phase 3 ----------------------------------------------------------------------
    def reconcile(self, cluster_id: str) -> str:
        """One pass; returns what happened ("busy", "gone", or the action taken)."""
        snap = self._begin(cluster_id)
        if snap is None:
            return "busy"
        provider = self.providers.get(snap.cloud_provider)
        try:
            out = self._without_provider(snap) if provider is None else self._work(snap, provider)
            with self.sessions() as session, session.begin():
                cluster = store.load(session, cluster_id, lock=True)
                if cluster is None:
                    return "gone"
                self._apply(session, cluster, snap, out, provider)
                store.release_lease(session, cluster_id, self.owner)
            return out.action
        except BaseException:
            with self.sessions() as session, session.begin():
                store.release_lease(session, cluster_id, self.owner)
            raise

    def _apply(self, session: Session, c: Cluster, snap: Snapshot, out: Outcome, provider: Provider | None) -> None:
        now = utcnow()
        for event in out.events:
            record_event(session, c, event.kind or EventKind.PROVIDER, event.reason[:1000], code=event.code)
        c.provider_state = dict(out.provider_state)
        if out.jobs:
            for done in job_sync.apply(session, out.jobs, now):
                record_event(
                    session,
                    c,
                    EventKind.JOB_FINISHED,
                    f"job {done.job_id} {done.status}",
                    detail={"job_id": done.job_id},
                )
        # Entering STOPPED, DELETED or FAILED closes usage, ends jobs and settles operations
        # (``states.ON_ENTER``); nothing here repeats it.
        if out.error is not None and out.action == Action.RELEASE:
            self._release_failed(session, c, out.error, now)
        elif out.error is not None:
            self._failed_pass(session, c, out.error, now)
        elif out.action == Action.RELEASE:
            c.release_pending, c.observed, c.dashboard_url = False, {}, None
            if snap.provider_state:  # nodes may have run; say they no longer do
                why = "the nodes of the FAILED cluster were stopped; retry it, or stop and start it, to bring them back"
                record_event(session, c, EventKind.COMPUTE_RELEASED, why)
        elif out.action == Action.TEARDOWN:
            if out.unreachable:
                why = f"deleted without reaching the cloud: {out.unreachable}; its resources may remain there"
                record_event(session, c, EventKind.ERROR, why[:1000], code="ProviderUnavailable")
            for to in (State.DELETING, State.DELETED):
                transition(session, c, to, reason="deleted on request")
        elif out.action == Action.STOP:
            for to in (State.STOPPING, State.STOPPED):
                if can_move(c.state, to):
                    transition(session, c, to, reason="stopped on request")
        elif out.action == Action.ENSURE and c.kind == ClusterKind.SERVICE:
            service_pass.applied(session, c, snap, out, now)
        elif out.action == Action.ENSURE:
            self._ensured(session, c, snap, out, provider, now)
        if out.error is None:
            c.attempts = 0
        operations.settle(session, c, now)
        c.next_reconcile_at = self._next(c, now) if out.error is None else c.next_reconcile_at

    def _entered(self, session: Session, c: Cluster) -> None:
        """Cloud work was attempted: leave the resting states whatever its outcome."""
        state = c.state
        if state == State.PENDING:
            transition(session, c, State.PROVISIONING, reason="creating the head and worker nodes")
        elif state == State.STOPPED:
            transition(session, c, State.STARTING, reason="starting on request")
        elif state == State.FAILED and c.retry_requested:
            transition(session, c, State.PROVISIONING, reason="retrying on request")
            c.retry_requested, c.release_pending = False, False

    def _ensured(
        self, session: Session, c: Cluster, snap: Snapshot, out: Outcome, provider: Provider | None, now: datetime
    ) -> None:
        obs = out.observation
        for reason in out.scale_reasons:
            record_event(session, c, EventKind.SCALED, reason)
        if obs is not None:
            # A cause the provider saw (why pods stay Pending, say) is recorded once, when it
            # first appears, not on every pass that still sees it.
            before = set((c.observed or {}).get("causes") or [])
            for event in obs.events:
                if event.reason not in before:
                    record_event(session, c, event.kind or EventKind.PROVIDER, event.reason[:1000], code=event.code)
        c.observed = (
            planning.observed_summary(out.targets, obs, now.isoformat())
            if obs
            else {**(c.observed or {}), "targets": out.targets}
        )
        if provider is not None:
            c.dashboard_url = (obs.dashboard_url if obs else None) or provider.jobs_endpoint(out.provider_state)
        if obs is None:
            return
        spec = c.spec
        groups = [usage.GroupUsage(HEAD_GROUP, spec.head.vm_size, False, 1 if obs.head_alive else 0, spec.head.size)]
        groups += [
            usage.GroupUsage(g.name, g.vm_size, g.spot, obs.nodes.get(g.name, 0), g.size) for g in spec.worker_groups
        ]
        usage.record_observation(session, tenant_id=c.tenant_id, cluster_id=c.id, groups=groups, at=now)
        missing = planning.shortfalls(snap.targets, obs)
        state = c.state
        if obs.fatal is not None and state in (State.PROVISIONING, State.STARTING):
            # Nothing will change by waiting (a pod bigger than any node of its pool): fail now,
            # with the cause, rather than at the provisioning timeout.
            transition(session, c, State.FAILED, reason=obs.fatal.reason[:1000], code=obs.fatal.code or "Unschedulable")
            return
        # The spec this pass applied (the snapshot's generation), and only while the cluster is
        # still wanted running: a stop or delete recorded mid-pass is for the next pass, and
        # must not show a spurious RUNNING -> UPDATING first.
        if (
            state == State.RUNNING
            and snap.generation > c.observed_generation
            and c.desired_state == DesiredState.RUNNING
        ):
            transition(session, c, State.UPDATING, reason="applying a spec change")
        elif state == State.RUNNING and missing:
            transition(session, c, State.DEGRADED, reason="; ".join(missing), code="NodeLost")
            record_event(session, c, EventKind.NODE_LOST, "; ".join(missing))
        elif state in (State.PROVISIONING, State.STARTING, State.UPDATING, State.DEGRADED) and not missing:
            reason = "recovered" if state == State.DEGRADED else "head and worker groups are up"
            transition(session, c, State.RUNNING, reason=reason)
            # What this pass applied: a change recorded mid-pass is not observed yet.
            c.observed_generation = snap.generation
        elif state in (State.PROVISIONING, State.STARTING) and self._stuck(c, now):
            transition(session, c, State.FAILED, reason="timed out: " + "; ".join(missing), code="ProvisioningTimeout")
        self._idle_check(session, c, obs, now)

    def _stuck(self, c: Cluster, now: datetime) -> bool:
        return now - c.updated_at > timedelta(seconds=self.settings.provisioning_timeout_seconds)

    def _idle_check(self, session: Session, c: Cluster, obs: Observation, now: datetime) -> None:
        busy = bool(job_store.active(session, c.id)) or (
            obs.cluster_idle_seconds is not None and obs.cluster_idle_seconds < 30
        )
        if busy or c.last_activity_at is None:
            c.last_activity_at = now
            return
        minutes = c.spec.idle_timeout_minutes
        if minutes and c.state == State.RUNNING and now - c.last_activity_at >= timedelta(minutes=minutes):
            why = f"no job or activity for {minutes} minutes; stopping automatically"
            intent.write(session, intent.request(c, OperationKind.STOP, event=(EventKind.IDLE_STOP, why)))

    def _failed_pass(self, session: Session, c: Cluster, error: Exception, now: datetime) -> None:
        c.attempts += 1
        code = getattr(error, "code", None)
        full = getattr(error, "message", None) or str(error) or type(error).__name__
        # Users read events and reasons: one line of the cloud's text, without its paths or
        # traceback; the whole text is in the log.
        message = one_line(full, 500)
        terminal = isinstance(error, TerminalError) or c.attempts >= self.settings.max_attempts
        record_event(session, c, EventKind.ERROR, message, code=code, detail={"attempt": c.attempts})
        log.warning("reconcile_failed", cluster_id=c.id, attempt=c.attempts, code=code, error=full[:20_000])
        if c.kind == ClusterKind.SERVICE:
            service_pass.failed_step(session, c)
        if terminal and c.kind == ClusterKind.SERVICE and service_pass.abandon_rollout(session, c, message):
            c.attempts, c.next_reconcile_at = 0, now  # the next pass drops the new version
            return
        if terminal and c.desired_state != DesiredState.DELETED:
            why = message if isinstance(error, TerminalError) else f"gave up after {c.attempts} attempts: {message}"
            if c.state == State.RUNNING:
                transition(session, c, State.DEGRADED, reason=message[:1000], code=code)
            if can_move(c.state, State.FAILED):
                transition(session, c, State.FAILED, reason=why[:1000], code=code or type(error).__name__)
                # Entering FAILED asked for one more pass that stops the nodes (release).
                c.attempts = 0
                c.next_reconcile_at = now if c.release_pending else None
                return
        delay = planning.backoff(c.attempts, base=self.settings.reconcile_busy_seconds)
        c.next_reconcile_at = now + timedelta(seconds=delay)

    def _release_failed(self, session: Session, c: Cluster, error: Exception, now: datetime) -> None:
        """A release that failed: retried with backoff; after the maximum attempts (or a
        terminal error) given up, saying so, so the cluster is not looked at for ever."""
        c.attempts += 1
        code = getattr(error, "code", None)
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        if isinstance(error, TerminalError) or c.attempts >= self.settings.max_attempts:
            why = f"could not stop the nodes of the FAILED cluster: {message}; delete it, or stop it again"
            record_event(session, c, EventKind.ERROR, why[:1000], code=code, detail={"attempt": c.attempts})
            c.release_pending, c.next_reconcile_at = False, None
            return
        record_event(session, c, EventKind.ERROR, message[:1000], code=code, detail={"attempt": c.attempts})
        delay = planning.backoff(c.attempts, base=self.settings.reconcile_busy_seconds)
        c.next_reconcile_at = now + timedelta(seconds=delay)

    def _next(self, c: Cluster, now: datetime) -> datetime | None:
        state = c.state
        if state in (State.DELETED, State.STOPPED) and c.desired_state != DesiredState.RUNNING:
            return None
        if state == State.FAILED and not c.retry_requested and not c.release_pending:
            return None
        if state in BUSY or c.desired_state != DesiredState.RUNNING or state == State.STOPPED:
            return now + timedelta(seconds=self.settings.reconcile_busy_seconds)
        return now + timedelta(seconds=self.settings.reconcile_steady_seconds)
