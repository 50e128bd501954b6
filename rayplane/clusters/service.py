"""Cluster use cases on the API side.

The API never runs cloud work and never writes ``state`` after creation: it records what
the user wants (spec, ``desired_state``, a retry request), bumps ``generation`` (the
ETag), opens an ``Operation`` and makes the cluster due (``next_reconcile_at = now``).
The reconciler, under its lease, does the rest. A nudge is sent by the adapter after
commit; if it is lost, the sweep finds the due row anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clouds.models import Cloud
from rayplane.clouds.repository import CloudRepository
from rayplane.clouds.service import LOCAL, effective_capacity, ensure_local_cloud, resolve_cloud, unavailable_reason
from rayplane.clusters import intent
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.clusters.repository import ClusterRepository, OperationRepository
from rayplane.clusters.schemas import ClusterCreate, ClusterPatch
from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.states import record_created
from rayplane.clusters.validation import Quotas, Usage, validate_spec
from rayplane.clusters.values import ClusterKind, DesiredState, OperationKind, State
from rayplane.common import raytoken
from rayplane.common.errors import Conflict, FieldError, Forbidden, InvalidInput, Unavailable, found, invalid
from rayplane.common.etags import check_if_match
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.common.principal import Principal, Role
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.jobs.target import JobTarget
from rayplane.tenants.repository import TenantRepository


class TenantGuard(Protocol):
    """Tenant-level rules that live above clusters (the Marketplace plan and status, spend
    budgets), handed in by the adapter so this module imports neither noun."""

    async def may_run(self, session: AsyncSession, tenant_id: str, action: str) -> None:
        """Raise ``Forbidden`` (saying why) when the tenant may not ``action`` (create or
        start) compute now. Takes the tenant row's lock before any cluster row's."""

    async def plan_violations(
        self, session: AsyncSession, tenant_id: str, spec: ClusterSpec, *, cluster: Cluster | None, starting: bool
    ) -> list[FieldError]:
        """What the tenant's plan (and, on create and resize, its hard-stop budget) forbids in
        ``spec`` (``[]`` when it fits); paths start at ``spec`` when ``starting``, else at ``body``."""


class NoGuard:
    """No tenant-level rules (a deployment without Marketplace or budgets, and unit tests)."""

    async def may_run(self, session: AsyncSession, tenant_id: str, action: str) -> None:
        return None

    async def plan_violations(
        self, session: AsyncSession, tenant_id: str, spec: ClusterSpec, *, cluster: Cluster | None, starting: bool
    ) -> list[FieldError]:
        return []


@dataclass(frozen=True)
class ClusterPolicy:
    """Server settings and tenant rules the cluster use cases depend on (from the adapter)."""

    local_clouds: bool
    local_capacity: dict[str, Any]
    quota_vcpus: int
    quota_clusters: int
    guard: TenantGuard = field(default_factory=NoGuard)
    # Kinds of cloud this control plane has a provider for; None: every kind.
    served: frozenset[str] | None = None
    # Whether local heads can keep their GCS in the control plane's Redis (a TCP one).
    local_gcs_redis: bool = True
    # Kinds of cloud whose provider runs services (``Provider.service_runner``).
    services_on: frozenset[str] = frozenset({"local", "azure"})
    # Kinds of cloud whose provider uploads a service's local code to its clusters.
    local_code_on: frozenset[str] = frozenset({"local"})


async def cloud_for(session: AsyncSession, principal: Principal, ref: str | None, policy: ClusterPolicy) -> Cloud:
    if policy.local_clouds and (ref is None or ref == LOCAL):
        await ensure_local_cloud(session, principal.tenant_id, policy.local_capacity)
    return await resolve_cloud(session, principal.tenant_id, ref)


async def validate_request(
    session: AsyncSession,
    principal: Principal,
    spec: ClusterSpec,
    cloud: Cloud,
    policy: ClusterPolicy,
    *,
    cluster: Cluster | None,
) -> None:
    """One pass: every catalog, cloud, quota and plan error at once, as one 422."""
    if policy.served is not None:
        reason = unavailable_reason(cloud, policy.served)
        if reason is not None:
            raise InvalidInput.on("body.cloud", f"cloud {cloud.name!r} is unavailable: {reason}")
    tenant = await TenantRepository(session).get(principal.tenant_id)
    assert tenant is not None
    others = await ClusterRepository(session).live_specs(principal.tenant_id, excluding=cluster.id if cluster else None)
    quotas = Quotas(
        vcpus=tenant.quota_vcpus if tenant.quota_vcpus is not None else policy.quota_vcpus,
        clusters=tenant.quota_clusters if tenant.quota_clusters is not None else policy.quota_clusters,
    )
    capacity = None
    if cloud.provider == LOCAL:
        capacity = effective_capacity(dict(cloud.config.get("capacity", {})), policy.local_capacity)
    errors = validate_spec(
        spec,
        cloud,
        usage=Usage.of(others),
        quotas=quotas,
        new_cluster=cluster is None,
        capacity=capacity,
        local_gcs_redis=policy.local_gcs_redis,
    )
    known = {e.field for e in errors}
    plan = await policy.guard.plan_violations(session, principal.tenant_id, spec, cluster=cluster, starting=False)
    errors += [e for e in plan if e not in errors and not (e.field in known and e.field.endswith(".vm_size"))]
    if errors:
        raise invalid(errors)


def authorize_create(principal: Principal) -> None:
    """The role a create needs; checked before an idempotent replay too."""
    principal.require(Role.MEMBER)


async def create_cluster(
    session: AsyncSession, principal: Principal, body: ClusterCreate, policy: ClusterPolicy
) -> tuple[Cluster, Operation]:
    authorize_create(principal)
    await policy.guard.may_run(session, principal.tenant_id, "create")
    cloud = await cloud_for(session, principal, body.cloud, policy)
    if await ClusterRepository(session).get_live_by_name(principal.tenant_id, body.name) is not None:
        raise Conflict(f"a cluster named {body.name!r} already exists in this tenant")
    spec = ClusterSpec.build(
        ray_version=body.ray_version or (cloud.ray_versions[0] if cloud.ray_versions else ""),
        image=body.image,
        head_vm_size=body.head.vm_size,
        worker_groups=[g.model_dump() for g in body.worker_groups],
        idle_timeout_minutes=body.idle_timeout_minutes,
        gcs_fault_tolerance=body.head.gcs_fault_tolerance,
    )
    await validate_request(session, principal, spec, cloud, policy, cluster=None)
    now = utcnow()
    cluster = Cluster(
        id=new_id("cls"),
        tenant_id=principal.tenant_id,
        cloud_id=cloud.id,
        name=body.name,
        spec=spec,
        labels=body.labels,
        generation=1,
        desired_state=DesiredState.RUNNING,
        state_reason="accepted",
        observed={},
        provider_state={},
        next_reconcile_at=now,
        last_activity_at=now,
    )
    await ClusterRepository(session).add(cluster)
    record_created(session, cluster, f"created by {principal.actor_id}")
    op = await OperationRepository(session).add(intent.new_operation(cluster, OperationKind.CREATE))
    return cluster, op


async def get_cluster(
    session: AsyncSession,
    principal: Principal,
    cluster_id: str,
    *,
    for_update: bool = False,
    kind: ClusterKind = ClusterKind.CLUSTER,
) -> Cluster:
    """The caller's cluster, or service with ``kind`` (``for_update`` locks its row until the
    request commits); 404 for the other kind, as /v1/clusters and /v1/services are apart."""
    row = await ClusterRepository(session).get(principal.tenant_id, cluster_id, for_update=for_update, kind=kind)
    return found(row, str(kind), cluster_id)


async def live_count_on_cloud(session: AsyncSession, cloud_id: str) -> int:
    """How many clusters not yet deleted use the cloud (what keeps a cloud from deletion)."""
    return await ClusterRepository(session).live_count_on_cloud(cloud_id)


async def list_clusters(
    session: AsyncSession,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    states: list[str] | None,
    cloud: str | None,
    labels: list[str] | None,
    kind: ClusterKind = ClusterKind.CLUSTER,
) -> Page[Cluster]:
    for i, s in enumerate(states or []):
        if s not in State.__members__:
            raise InvalidInput.on(f"query.state.{i}", f"unknown state {s!r}; one of {', '.join(State)}")
    label_filter: dict[str, str] = {}
    for i, item in enumerate(labels or []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput.on(f"query.label.{i}", "use key=value")
        label_filter[key] = value
    cloud_id = None
    if cloud:
        cloud_id = (await resolve_cloud(session, principal.tenant_id, cloud, field="query.cloud")).id
    rows = await ClusterRepository(session).list_page(
        principal.tenant_id,
        after=decode_cursor(cursor),
        limit=limit,
        states=states,
        cloud_id=cloud_id,
        labels=label_filter or None,
        kind=kind,
    )
    return page_of(rows, limit)


async def list_events(
    session: AsyncSession,
    principal: Principal,
    cluster_id: str,
    *,
    cursor: str | None,
    limit: int,
    kind: ClusterKind = ClusterKind.CLUSTER,
) -> Page[ClusterEvent]:
    cluster = await get_cluster(session, principal, cluster_id, kind=kind)
    rows = await ClusterRepository(session).events(cluster.id, after=decode_cursor(cursor), limit=limit)
    return page_of(rows, limit)


async def get_operation(session: AsyncSession, principal: Principal, op_id: str) -> Operation:
    return found(await OperationRepository(session).get(principal.tenant_id, op_id), "operation", op_id)


def _not_deleted(cluster: Cluster) -> None:
    if cluster.desired_state == DesiredState.DELETED:
        raise Conflict(f"cluster {cluster.name!r} is being deleted")


async def update_cluster(
    session: AsyncSession,
    principal: Principal,
    cluster_id: str,
    body: ClusterPatch,
    policy: ClusterPolicy,
    *,
    if_match: str | None,
) -> tuple[Cluster, Operation]:
    principal.require(Role.MEMBER)
    cluster = await get_cluster(session, principal, cluster_id, for_update=True)
    check_if_match(if_match, cluster.etag)
    _not_deleted(cluster)
    groups = [g.model_dump() for g in body.worker_groups] if body.worker_groups is not None else None
    spec = cluster.spec.with_changes(worker_groups=groups)
    if "idle_timeout_minutes" in body.model_fields_set:
        spec = spec.with_changes(idle_timeout_minutes=body.idle_timeout_minutes)
    wanted_ft = body.head.gcs_fault_tolerance if body.head is not None else None
    if wanted_ft is not None and wanted_ft != spec.head.gcs_fault_tolerance:
        # The head runs with or without it from its start: switched only while nothing runs.
        if cluster.state != State.STOPPED or cluster.desired_state != DesiredState.STOPPED:
            raise InvalidInput.on(
                "body.head.gcs_fault_tolerance",
                f"changing it needs the head to start again: stop the cluster first (it is {cluster.state})",
            )
        spec = spec.with_changes(gcs_fault_tolerance=wanted_ft)
    if cluster.cloud_id is None:
        raise Conflict("the cluster's cloud no longer exists")
    cloud = await CloudRepository(session).get(principal.tenant_id, cluster.cloud_id)
    assert cloud is not None
    await validate_request(session, principal, spec, cloud, policy, cluster=cluster)
    cluster.spec = spec
    if body.labels is not None:
        cluster.labels = body.labels
    op = await intent.write_async(session, intent.request(cluster, OperationKind.UPDATE))
    return cluster, op


async def _power(
    session: AsyncSession,
    principal: Principal,
    cluster_id: str,
    kind: OperationKind,
    *,
    if_match: str | None,
    guard: TenantGuard | None = None,
    of: ClusterKind = ClusterKind.CLUSTER,
) -> tuple[Cluster, Operation]:
    principal.require(Role.MEMBER)
    guard = guard or NoGuard()
    if kind in (OperationKind.START, OperationKind.RETRY):
        # The tenant's row before the cluster's, the order the Marketplace's Suspend takes them in.
        await guard.may_run(session, principal.tenant_id, "start")
    cluster = await get_cluster(session, principal, cluster_id, for_update=True, kind=of)
    check_if_match(if_match, cluster.etag)
    if kind == OperationKind.DELETE:
        if cluster.state == State.DELETED:
            raise found(None, str(of), cluster_id)
    else:
        _not_deleted(cluster)
    if kind == OperationKind.START and cluster.desired_state != DesiredState.RUNNING:
        errors = await guard.plan_violations(session, cluster.tenant_id, cluster.spec, cluster=cluster, starting=True)
        if errors:
            raise Forbidden(f"starting this cluster would exceed the plan: {invalid(errors).detail}", errors=errors)
    if kind == OperationKind.RETRY and cluster.state != State.FAILED:
        raise Conflict(f"only a FAILED cluster can be retried; this one is {cluster.state}")
    op = await intent.write_async(session, intent.request(cluster, kind))
    return cluster, op


async def stop_cluster(
    session: AsyncSession,
    p: Principal,
    cid: str,
    policy: ClusterPolicy,
    *,
    if_match: str | None,
    of: ClusterKind = ClusterKind.CLUSTER,
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, OperationKind.STOP, if_match=if_match, guard=policy.guard, of=of)


async def start_cluster(
    session: AsyncSession,
    p: Principal,
    cid: str,
    policy: ClusterPolicy,
    *,
    if_match: str | None,
    of: ClusterKind = ClusterKind.CLUSTER,
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, OperationKind.START, if_match=if_match, guard=policy.guard, of=of)


async def retry_cluster(
    session: AsyncSession,
    p: Principal,
    cid: str,
    policy: ClusterPolicy,
    *,
    if_match: str | None,
    of: ClusterKind = ClusterKind.CLUSTER,
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, OperationKind.RETRY, if_match=if_match, guard=policy.guard, of=of)


async def delete_cluster(
    session: AsyncSession, p: Principal, cid: str, *, if_match: str | None, of: ClusterKind = ClusterKind.CLUSTER
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, OperationKind.DELETE, if_match=if_match, of=of)


# States whose clusters run jobs (a spec change or a lost node does not stop them).
JOB_READY = frozenset({State.RUNNING, State.UPDATING, State.DEGRADED})


async def job_target(session: AsyncSession, principal: Principal, cluster_id: str) -> JobTarget:
    """The caller's cluster as the job use cases need it (404 for another tenant's)."""
    cluster = await get_cluster(session, principal, cluster_id)
    cloud = await CloudRepository(session).get(principal.tenant_id, cluster.cloud_id) if cluster.cloud_id else None
    return JobTarget(
        cluster_id=cluster.id,
        tenant_id=cluster.tenant_id,
        name=cluster.name,
        state=cluster.state,
        accepts_jobs=cluster.state in JOB_READY,
        dashboard_url=cluster.dashboard_url,
        provider=cloud.provider if cloud else "local",
        cloud_config=dict(cloud.config) if cloud else {},
        ray_token_sealed=cluster.ray_token_sealed,
    )


async def ray_token(
    session: AsyncSession, principal: Principal, cluster_id: str, secret_key: bytes
) -> tuple[Cluster, str]:
    """The cluster's Ray token, opened, for members and above (a viewer may look at a cluster
    but not act on it through Ray). ``Conflict`` before the reconciler's first pass has given
    the cluster one (a second or so after create)."""
    principal.require(Role.MEMBER)
    cluster = await get_cluster(session, principal, cluster_id)
    _not_deleted(cluster)
    if cluster.ray_token_sealed is None:
        raise Conflict(f"cluster {cluster.name!r} has no Ray token yet; it gets one when it first starts")
    try:
        return cluster, raytoken.open_token(secret_key, cluster.ray_token_sealed)
    except raytoken.TokenUnreadable as exc:
        raise Unavailable(str(exc)) from None
