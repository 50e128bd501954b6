"""State and helpers shared by the ARM handlers: rendering, paging, LRO answers, quota, locks.

One :class:`ArmService` per emulator process. All handlers are ``async`` and do their reads
and writes without awaiting in between, so on the single event loop each request's changes
are atomic with respect to the others (the document store has one writer).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from emulators.azure.arm import resources, skus, validation
from emulators.azure.arm.admin import AdminState
from emulators.azure.arm.cloud import Directory
from emulators.azure.arm.errors import ArmError, bad_request_content, operation_not_allowed
from emulators.azure.arm.operations import TRANSIENT_STATE, Operations
from emulators.azure.arm.roles import RoleAssignments
from emulators.azure.arm.state import ArmStore, ClusterDoc, PoolDoc
from emulators.azure.arm.versions import LATEST, shape_cluster, shape_pool

if TYPE_CHECKING:
    from emulators.azure.app import EmulatorContext


@dataclass
class Call:
    """One authenticated ARM request: path parameters, api-version, caller's claims, raw body."""

    request: Request
    params: dict[str, str]
    api_version: str
    claims: dict[str, Any]
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; 400 ``InvalidRequestContent`` otherwise."""
        try:
            value = json.loads(self.body or b"null")
        except ValueError as exc:
            raise bad_request_content(str(exc)) from None
        if not isinstance(value, dict):
            raise bad_request_content("the request body must be a JSON object")
        return value


class ArmService:
    """Everything the ARM handlers share."""

    def __init__(self, ctx: EmulatorContext) -> None:
        self.ctx = ctx
        self.origin = ctx.settings.origin.rstrip("/")
        self.docs = ArmStore(ctx.store)
        self.admin = AdminState(ctx.store)
        self.fleet = ctx.fleet
        self.ops = Operations(self.docs, ctx.fleet, self.admin, ctx.cluster_deleted)
        self.directory = Directory(ctx.store)
        self.roles = RoleAssignments(ctx.store)

    # -- rendering -----------------------------------------------------------------------
    def live_count(self, cluster: str, pool: str) -> int | None:
        """Nodes the fleet holds for the pool now, or None before the pool reached the fleet."""
        found = self.fleet.pool(cluster, pool)
        return None if found is None else len(found.nodes)

    def render_pool(self, pool: PoolDoc, api_version: str = LATEST) -> dict[str, Any]:
        """The pool's JSON as ``api_version`` shows it (see :mod:`emulators.azure.arm.versions`)."""
        return shape_pool(resources.render_pool(pool.body, self.live_count(pool.cluster, pool.name)), api_version)

    def render_cluster(self, cluster: ClusterDoc, api_version: str = LATEST) -> dict[str, Any]:
        """The cluster's JSON, pools included, as ``api_version`` shows it."""
        pools = [
            resources.render_pool(p.body, self.live_count(p.cluster, p.name)) for p in self.docs.pools(cluster.key)
        ]
        return shape_cluster(resources.render_cluster(cluster.body, pools), api_version)

    # -- answers -------------------------------------------------------------------------
    def page(self, call: Call, items: list[tuple[str, dict[str, Any]]]) -> JSONResponse:
        """One page of ``(key, item)`` pairs (sorted by key) after ``$skipToken``, with ``nextLink``
        when more remain. The token is the last key served, so deletions never skip items."""
        token = call.request.query_params.get("$skipToken") or call.request.query_params.get("$skiptoken")
        if token:
            try:
                after = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                raise ArmError(400, "InvalidSkipToken", f"The skip token '{token}' is not valid.") from None
            items = [(key, item) for key, item in items if key > after]
        size = self.admin.config.page_size
        body: dict[str, Any] = {"value": [item for _, item in items[:size]]}
        if len(items) > size:
            next_token = base64.urlsafe_b64encode(items[size - 1][0].encode()).decode().rstrip("=")
            body["nextLink"] = (
                f"{self.origin}{call.request.url.path}?api-version={call.api_version}&$skipToken={next_token}"
            )
        return JSONResponse(body)

    def lro_headers(self, op: dict[str, Any], api_version: str, *, location: bool = False) -> dict[str, str]:
        """``Azure-AsyncOperation`` (and for DELETE ``Location``) plus ``Retry-After``."""
        base = (
            f"{self.origin}/subscriptions/{op['subscription']}/providers/Microsoft.ContainerService/"
            f"locations/{op['location']}"
        )
        headers = {
            "Azure-AsyncOperation": f"{base}/operations/{op['name']}?api-version={api_version}",
            "Retry-After": str(self.admin.config.retry_after),
        }
        if location:
            headers["Location"] = f"{base}/operationresults/{op['name']}?api-version={api_version}"
        return headers

    @staticmethod
    def resource_response(body: dict[str, Any], etag: str | None, status: int = 200, **headers: str) -> JSONResponse:
        if etag:
            headers["ETag"] = f'"{etag}"'
        return JSONResponse(body, status_code=status, headers=headers)

    @staticmethod
    def accepted(headers: dict[str, str]) -> Response:
        return Response(status_code=202, headers=headers)

    # -- rules ---------------------------------------------------------------------------
    def _op_state(self, op_id: str | None) -> str | None:
        """The transient state of an operation still in progress, else None."""
        if not op_id:
            return None
        op = self.docs.operation(op_id)
        if op is None or op["status"] != "InProgress":
            return None
        return TRANSIENT_STATE[op["action"]]

    def check_cluster_idle(self, cluster: ClusterDoc) -> None:
        """409 while an operation runs on the cluster itself."""
        state = self._op_state(cluster.operation)
        if state:
            raise operation_not_allowed(f"Another operation ({state})")

    def check_pools_idle(self, cluster: ClusterDoc, only: str | None = None) -> None:
        """409 while an operation runs on any pool of the cluster (or on pool ``only``)."""
        for pool in self.docs.pools(cluster.key):
            if only is not None and pool.name.lower() != only.lower():
                continue
            state = self._op_state(pool.operation)
            if state:
                raise operation_not_allowed(f"Another agentpool operation ({pool.name} - {state})")

    def in_progress(self, op_id: str | None) -> dict[str, Any] | None:
        op = self.docs.operation(op_id) if op_id else None
        return op if op is not None and op["status"] == "InProgress" else None

    def check_quota(self, subscription: str, location: str, demand: dict[str, int], exclude: set[str]) -> None:
        """400 ``QuotaExceeded`` if adding ``demand`` (vCPUs per family) to what the subscription's
        other pools in ``location`` hold exceeds a family's quota. A pool holds its live node
        count when the fleet has it, else its requested ``count`` (it is being created)."""
        region = location.lower().replace(" ", "")
        usage: dict[str, int] = {}
        regions: dict[str, str] = {}
        for pool in self.docs.pools_in_subscription(subscription):
            if pool.key in exclude:
                continue
            if pool.cluster not in regions:
                owner = self.docs.cluster_by_key(pool.cluster)
                regions[pool.cluster] = "" if owner is None else owner.location.lower().replace(" ", "")
            size = skus.get(str(pool.properties.get("vmSize", "")))
            if regions[pool.cluster] != region or size is None:
                continue
            live = self.live_count(pool.cluster, pool.name)
            nodes = live if live is not None else int(pool.properties.get("count") or 0)
            if live is None and pool.properties.get("provisioningState") == "Failed":
                nodes = 0
            family = skus.family_key(size.family)
            usage[family] = usage.get(family, 0) + nodes * size.vcpus
        for family, required in demand.items():
            limit = self.admin.config.quota_for(subscription, family)
            validation.quota(
                family=family,
                location=region,
                limit=limit,
                usage=usage.get(skus.family_key(family), 0),
                required=required,
            )

    def checked_size(self, vm_size: Any, pool: str, location: str) -> skus.VmSku:
        return validation.vm_size(str(vm_size), pool, location, self.admin.config.unavailable_sizes)


def not_found_pool(pool: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"The agent pool '{pool}' was not found.")
