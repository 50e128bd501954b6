"""Service use cases on the API side (``/v1/services``): a service is a cluster of kind
``service`` (``docs/architecture.md``, "Services"), so it shares the cluster use cases for
reads, stop, start and delete (``service.py`` with ``kind``/``of``), and adds here what only a
service has: its create (a Serve config and a rollout policy, head fault tolerance always
on), its update (in place, or a new version: ``ServiceSpec.changed``) and ``:rollback``.

As for clusters, nothing here touches the cloud: intent is recorded, an operation opened, the
row made due; the reconciler (``service_pass``) does the work. Validation returns every
field error of the request at once, in one 422.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clouds.models import Cloud
from rayplane.clouds.repository import CloudRepository
from rayplane.clusters import intent
from rayplane.clusters.models import Cluster, Operation
from rayplane.clusters.repository import ClusterRepository, OperationRepository
from rayplane.clusters.serve import (
    RolloutSpec,
    ServeSpec,
    ServiceSpec,
    code_errors,
    rollout_errors,
    serve_errors,
)
from rayplane.clusters.service import (
    ClusterPolicy,
    authorize_create,
    cloud_for,
    get_cluster,
    validate_request,
)
from rayplane.clusters.service_schemas import ServiceCreate, ServicePatch
from rayplane.clusters.spec import ClusterSpec
from rayplane.clusters.states import record_created
from rayplane.clusters.validation import GCS_FT_FIELD
from rayplane.clusters.values import ClusterKind, DesiredState, EventKind, OperationKind, State
from rayplane.common.errors import Conflict, FieldError, InvalidInput, invalid
from rayplane.common.etags import check_if_match
from rayplane.common.principal import Principal, Role
from rayplane.db.base import utcnow
from rayplane.db.ids import new_id

SERVICE = ClusterKind.SERVICE
# States in which a rollout can be under way (a rollback has something to drop).
ROLLABLE = frozenset({State.ROLLING_OUT, State.RUNNING, State.DEGRADED, State.DEPLOYING, State.ROLLING_BACK})


async def _checked(
    session: AsyncSession,
    principal: Principal,
    spec: ClusterSpec,
    serve: ServeSpec,
    rollout: RolloutSpec,
    cloud: Cloud,
    policy: ClusterPolicy,
    *,
    service: Cluster | None,
) -> None:
    """Every error at once: the Serve config's and rollout's rules, then the cluster's (the
    head's fault tolerance is the service's, so its error is the cloud's to fix)."""
    errors: list[FieldError] = []
    if cloud.provider not in policy.services_on:
        errors.append(FieldError("body.cloud", f"cloud {cloud.name!r} ({cloud.provider}) cannot run services yet"))
    errors += serve_errors(serve, spec) + rollout_errors(rollout)
    errors += code_errors(serve, uploads_local=cloud.provider in policy.local_code_on)
    try:
        await validate_request(session, principal, spec, cloud, policy, cluster=service)
    except InvalidInput as exc:
        errors += [FieldError("body.cloud", e.message) if e.field == GCS_FT_FIELD else e for e in exc.errors]
    if errors:
        raise invalid(errors)


async def create_service(
    session: AsyncSession, principal: Principal, body: ServiceCreate, policy: ClusterPolicy
) -> tuple[Cluster, Operation]:
    authorize_create(principal)
    await policy.guard.may_run(session, principal.tenant_id, "create")
    cloud = await cloud_for(session, principal, body.cloud, policy)
    if await ClusterRepository(session).get_live_by_name(principal.tenant_id, body.name) is not None:
        raise Conflict(f"a cluster or service named {body.name!r} already exists in this tenant")
    spec = ClusterSpec.build(
        ray_version=body.ray_version or (cloud.ray_versions[0] if cloud.ray_versions else ""),
        image=body.image,
        head_vm_size=body.head.vm_size,
        worker_groups=[g.model_dump() for g in body.worker_groups],
        idle_timeout_minutes=None,  # a service serves: it never stops for want of jobs
        gcs_fault_tolerance=True,  # every service's head survives a crash (Redis-backed GCS)
    )
    serve = ServeSpec.from_json(body.serve.model_dump(mode="json"))
    rollout = RolloutSpec.from_json(body.rollout.model_dump(mode="json"))
    await _checked(session, principal, spec, serve, rollout, cloud, policy, service=None)
    now = utcnow()
    row = Cluster(
        id=new_id("svc"),
        tenant_id=principal.tenant_id,
        cloud_id=cloud.id,
        name=body.name,
        kind=SERVICE,
        spec=spec,
        service=ServiceSpec(serve=serve, rollout=rollout),
        labels=body.labels,
        generation=1,
        desired_state=DesiredState.RUNNING,
        state_reason="accepted",
        observed={},
        provider_state={},
        next_reconcile_at=now,
        last_activity_at=now,
    )
    await ClusterRepository(session).add(row)
    record_created(session, row, f"created by {principal.actor_id}")
    op = await OperationRepository(session).add(intent.new_operation(row, OperationKind.CREATE))
    return row, op


async def update_service(
    session: AsyncSession,
    principal: Principal,
    service_id: str,
    body: ServicePatch,
    policy: ClusterPolicy,
    *,
    if_match: str | None,
) -> tuple[Cluster, Operation]:
    """In place when only the Serve config, the rollout policy, labels or a group's node range
    change; a new version (and a rollout) when the nodes change (``needs_new_cluster``)."""
    principal.require(Role.MEMBER)
    row = await get_cluster(session, principal, service_id, for_update=True, kind=SERVICE)
    check_if_match(if_match, row.etag)
    if row.desired_state == DesiredState.DELETED:
        raise Conflict(f"service {row.name!r} is being deleted")
    current = row.service
    assert current is not None
    old = row.spec
    spec = ClusterSpec.build(
        ray_version=body.ray_version or old.ray_version,
        image=body.image if "image" in body.model_fields_set else old.image,
        head_vm_size=body.head.vm_size if body.head is not None else old.head.vm_size,
        worker_groups=[g.model_dump() for g in body.worker_groups]
        if body.worker_groups is not None
        else old.to_json()["worker_groups"],
        idle_timeout_minutes=None,
        gcs_fault_tolerance=True,
    )
    serve = ServeSpec.from_json(body.serve.model_dump(mode="json")) if body.serve is not None else current.serve
    rollout = RolloutSpec.from_json(body.rollout.model_dump(mode="json")) if body.rollout else current.rollout
    if row.cloud_id is None:
        raise Conflict("the service's cloud no longer exists")
    cloud = await CloudRepository(session).get(principal.tenant_id, row.cloud_id)
    assert cloud is not None
    await _checked(session, principal, spec, serve, rollout, cloud, policy, service=row)
    row.service = current.changed(old, spec, serve, rollout)
    row.spec = spec
    if body.labels is not None:
        row.labels = body.labels
    op = await intent.write_async(session, intent.request(row, OperationKind.UPDATE))
    return row, op


async def rollback_service(
    session: AsyncSession, principal: Principal, service_id: str, *, if_match: str | None
) -> tuple[Cluster, Operation]:
    """Drop the version being rolled out (traffic back on the serving one); 409 when no
    rollout is under way. The update that asked for it ends Failed, saying so."""
    principal.require(Role.MEMBER)
    row = await get_cluster(session, principal, service_id, for_update=True, kind=SERVICE)
    check_if_match(if_match, row.etag)
    if row.desired_state != DesiredState.RUNNING:
        raise Conflict(f"service {row.name!r} is {row.desired_state}; a rollback needs it running")
    if row.service is None or row.service.previous is None or row.state not in ROLLABLE:
        raise Conflict(f"service {row.name!r} has no rollout under way to roll back (it is {row.state})")
    why = (EventKind.ROLLBACK_REQUESTED, f"rollback requested by {principal.actor_id}")
    row.rollback_reason = f"rolled back on request by {principal.actor_id}"
    return row, await intent.write_async(session, intent.request(row, OperationKind.ROLLBACK, event=why))
