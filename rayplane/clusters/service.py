"""Cluster use cases on the API side.

The API never runs cloud work and never writes ``state`` after creation: it records what
the user wants (spec, ``desired_state``, a retry request), bumps ``generation`` (the
ETag), opens an ``Operation`` and makes the cluster due (``next_reconcile_at = now``).
The reconciler, under its lease, does the rest. A nudge is sent by the adapter after
commit; if it is lost, the sweep finds the due row anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing import budgets
from rayplane.clouds.models import Cloud
from rayplane.clouds.repository import CloudRepository
from rayplane.clouds.service import LOCAL, ensure_local_cloud, resolve_cloud
from rayplane.clusters.models import Cluster, ClusterEvent, Operation
from rayplane.clusters.repository import ClusterRepository, OperationRepository
from rayplane.clusters.schemas import ClusterCreate, ClusterPatch
from rayplane.clusters.states import State
from rayplane.clusters.validation import Usage, max_vcpus, validate_spec
from rayplane.common.errors import Conflict, InvalidInput, NotFound
from rayplane.common.etags import check_if_match
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id
from rayplane.identity.principal import Principal, Role
from rayplane.marketplace import entitlements
from rayplane.tenants.repository import TenantRepository


@dataclass(frozen=True)
class ClusterPolicy:
    """Server settings the cluster rules depend on (passed in by the adapter)."""

    local_clouds: bool
    local_capacity: dict[str, Any]
    quota_vcpus: int
    quota_clusters: int


async def _cloud_for(session: AsyncSession, principal: Principal, ref: str | None, policy: ClusterPolicy) -> Cloud:
    if policy.local_clouds and (ref is None or ref == LOCAL):
        await ensure_local_cloud(session, principal.tenant_id, policy.local_capacity)
    return await resolve_cloud(session, principal.tenant_id, ref)


async def _validate(
    session: AsyncSession,
    principal: Principal,
    spec: dict[str, Any],
    cloud: Cloud,
    policy: ClusterPolicy,
    *,
    excluding: str | None,
) -> None:
    tenant = await TenantRepository(session).get(principal.tenant_id)
    assert tenant is not None
    others = await ClusterRepository(session).live_specs(principal.tenant_id, excluding=excluding)
    usage = Usage(vcpus=sum(max_vcpus(s) for s in others), clusters=len(others))
    errors = validate_spec(
        spec,
        cloud,
        usage=usage,
        quota_vcpus=tenant.quota_vcpus if tenant.quota_vcpus is not None else policy.quota_vcpus,
        quota_clusters=tenant.quota_clusters if tenant.quota_clusters is not None else policy.quota_clusters,
        new_cluster=excluding is None,
    )
    if errors:
        raise InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors[:5]), errors=errors)


def _operation(cluster: Cluster, kind: str) -> Operation:
    return Operation(
        id=new_id("op"),
        tenant_id=cluster.tenant_id,
        cluster_id=cluster.id,
        kind=kind,
        status="Running",
        target_generation=cluster.generation,
    )


async def create_cluster(
    session: AsyncSession, principal: Principal, body: ClusterCreate, policy: ClusterPolicy
) -> tuple[Cluster, Operation]:
    principal.require(Role.MEMBER)
    await entitlements.require_active(session, principal.tenant_id, "create")
    await budgets.ensure_can_start(session, principal.tenant_id)
    cloud = await _cloud_for(session, principal, body.cloud, policy)
    if await ClusterRepository(session).get_live_by_name(principal.tenant_id, body.name) is not None:
        raise Conflict(f"a cluster named {body.name!r} already exists in this tenant")
    spec = {
        "ray_version": body.ray_version or (cloud.ray_versions[0] if cloud.ray_versions else ""),
        "image": body.image,
        "head": body.head.model_dump(),
        "worker_groups": [g.model_dump() for g in body.worker_groups],
        "idle_timeout_minutes": body.idle_timeout_minutes,
    }
    await _validate(session, principal, spec, cloud, policy, excluding=None)
    await entitlements.check_plan(session, principal.tenant_id, spec)
    now = utcnow()
    cluster = Cluster(
        id=new_id("cls"),
        tenant_id=principal.tenant_id,
        cloud_id=cloud.id,
        name=body.name,
        spec=spec,
        labels=body.labels,
        generation=1,
        desired_state="running",
        state=State.PENDING.value,
        state_reason="accepted",
        observed={},
        provider_state={},
        next_reconcile_at=now,
        last_activity_at=now,
    )
    await ClusterRepository(session).add(cluster)
    session.add(
        ClusterEvent(
            id=new_id("evt"),
            tenant_id=cluster.tenant_id,
            cluster_id=cluster.id,
            at=now,
            kind="created",
            to_state=State.PENDING.value,
            reason=f"created by {principal.actor_id}",
        )
    )
    op = await OperationRepository(session).add(_operation(cluster, "create"))
    return cluster, op


async def get_cluster(
    session: AsyncSession, principal: Principal, cluster_id: str, *, for_update: bool = False
) -> Cluster:
    cluster = await ClusterRepository(session).get(principal.tenant_id, cluster_id, for_update=for_update)
    if cluster is None:
        raise NotFound(f"cluster {cluster_id} not found")
    return cluster


async def list_clusters(
    session: AsyncSession,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    states: list[str] | None,
    cloud: str | None,
    labels: list[str] | None,
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
    )
    return page_of(rows, limit)


async def list_events(
    session: AsyncSession, principal: Principal, cluster_id: str, *, cursor: str | None, limit: int
) -> Page[ClusterEvent]:
    cluster = await get_cluster(session, principal, cluster_id)
    rows = await ClusterRepository(session).events(cluster.id, after=decode_cursor(cursor), limit=limit)
    return page_of(rows, limit)


async def get_operation(session: AsyncSession, principal: Principal, op_id: str) -> Operation:
    op = await OperationRepository(session).get(principal.tenant_id, op_id)
    if op is None:
        raise NotFound(f"operation {op_id} not found")
    return op


def _not_deleted(cluster: Cluster) -> None:
    if cluster.desired_state == "deleted":
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
    spec = dict(cluster.spec)
    if body.worker_groups is not None:
        spec["worker_groups"] = [g.model_dump() for g in body.worker_groups]
    if "idle_timeout_minutes" in body.model_fields_set:
        spec["idle_timeout_minutes"] = body.idle_timeout_minutes
    if cluster.cloud_id is None:
        raise Conflict("the cluster's cloud no longer exists")
    cloud = await CloudRepository(session).get(principal.tenant_id, cluster.cloud_id)
    assert cloud is not None
    await _validate(session, principal, spec, cloud, policy, excluding=cluster.id)
    await entitlements.check_plan(session, principal.tenant_id, spec, cluster=cluster)
    cluster.spec = spec
    if body.labels is not None:
        cluster.labels = body.labels
    cluster.generation += 1
    cluster.next_reconcile_at = utcnow()
    await session.flush()
    op = await OperationRepository(session).add(_operation(cluster, "update"))
    return cluster, op


async def _power(
    session: AsyncSession, principal: Principal, cluster_id: str, kind: str, *, if_match: str | None
) -> tuple[Cluster, Operation]:
    principal.require(Role.MEMBER)
    if kind in ("start", "retry"):
        # The tenant's row before the cluster's, the order the Marketplace's Suspend takes them in.
        await entitlements.require_active(session, principal.tenant_id, "start")
        await budgets.ensure_can_start(session, principal.tenant_id)
    cluster = await get_cluster(session, principal, cluster_id, for_update=True)
    check_if_match(if_match, cluster.etag)
    ops = OperationRepository(session)
    if kind == "delete":
        if cluster.state == State.DELETED:
            raise NotFound(f"cluster {cluster_id} not found")
        cluster.desired_state = "deleted"
        await ops.cancel_running(
            cluster.id, {"create", "update", "start", "stop", "retry"}, "the cluster is being deleted"
        )
    else:
        _not_deleted(cluster)
        if kind == "stop":
            cluster.desired_state = "stopped"
            await ops.cancel_running(cluster.id, {"start", "retry"}, "superseded by a stop")
        elif kind == "start":
            if cluster.desired_state != "running":
                await entitlements.check_plan(session, cluster.tenant_id, cluster.spec, cluster=cluster, starting=True)
            cluster.desired_state = "running"
            await ops.cancel_running(cluster.id, {"stop"}, "superseded by a start")
        elif kind == "retry":
            if cluster.state != State.FAILED:
                raise Conflict(f"only a FAILED cluster can be retried; this one is {cluster.state}")
            cluster.desired_state = "running"
            cluster.retry_requested = True
            cluster.attempts = 0
    cluster.generation += 1
    cluster.next_reconcile_at = utcnow()
    await session.flush()
    op = _operation(cluster, kind)
    already = (kind == "stop" and cluster.state == State.STOPPED) or (
        kind == "start" and cluster.state == State.RUNNING and cluster.observed_generation >= cluster.generation - 1
    )
    if already:
        op.status, op.completed_at = "Succeeded", utcnow()
    await ops.add(op)
    return cluster, op


async def stop_cluster(
    session: AsyncSession, p: Principal, cid: str, *, if_match: str | None
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, "stop", if_match=if_match)


async def start_cluster(
    session: AsyncSession, p: Principal, cid: str, *, if_match: str | None
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, "start", if_match=if_match)


async def retry_cluster(
    session: AsyncSession, p: Principal, cid: str, *, if_match: str | None
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, "retry", if_match=if_match)


async def delete_cluster(
    session: AsyncSession, p: Principal, cid: str, *, if_match: str | None
) -> tuple[Cluster, Operation]:
    return await _power(session, p, cid, "delete", if_match=if_match)
