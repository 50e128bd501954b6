"""``spec.suspend`` of a RayService (KubeRay v1.7.0 ``handleSuspend`` and
``deleteRayServiceOwnedResources`` in ``rayservice_controller.go``).

(no suspend) --``suspend: true``--> ``Suspending`` --owned objects deleted--> ``Suspended``
--``suspend: false``--> (no suspend). The first pass that sees ``suspend: true`` only records
``Suspending=True`` (``SuspendRequested``) and empties the active and pending statuses; the
next ones delete the RayClusters and Services of the RayService (by the
``ray.io/originated-from-cr-name``/``-crd`` labels) and, with the incremental upgrade, its
Gateway and HTTPRoute, then set ``Suspended=True`` (``SuspendComplete``). Once
``Suspending`` is recorded the deletion runs to the end even if ``suspend`` goes back to
false. Resuming sets ``Suspended=False`` (``RayServiceResumed``) and ``Ready``/
``UpgradeInProgress`` back to ``Initializing``; the pass then goes on as for a new RayService.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.azure.kube import errors as err
from emulators.azure.kube import rayservice_objects as ro
from emulators.azure.kube import resources as res
from emulators.azure.kube.kuberay import RAYCLUSTERS

if TYPE_CHECKING:
    from emulators.azure.kube.rayservice import RayServiceController

Obj = dict[str, Any]
_RESUMED = "RayService is initializing after resuming from suspend."


def _drop(status: Obj, kind: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != kind]


def operative(status: Obj) -> bool:
    """``suspendIsOperative``: the suspend state machine owns this pass."""
    return ro.condition_true(status, "Suspending") or ro.condition_true(status, "Suspended")


def handle_suspend(c: RayServiceController, cluster: str, rs: Obj) -> bool:
    """``handleSuspend``; whether the rest of the pass is to be skipped."""
    status = rs["status"]
    wanted = bool((rs.get("spec") or {}).get("suspend"))
    generation = int(rs["metadata"].get("generation") or 0)
    if ro.condition_true(status, "Suspended"):
        if not wanted:
            status["observedGeneration"] = generation
            ro.set_condition(
                status, "Suspended", "False", "RayServiceResumed", "Spec.Suspend is false; RayService has resumed."
            )
            _drop(status, "Ready")
            ro.set_condition(status, "Ready", "False", "Initializing", _RESUMED)
            _drop(status, "UpgradeInProgress")
            ro.set_condition(status, "UpgradeInProgress", "False", "Initializing", _RESUMED)
        return operative(status)
    if not ro.condition_true(status, "Suspending"):
        if not wanted:
            return False
        status["observedGeneration"] = generation
        message = "Spec.Suspend is true; will delete all Kubernetes resources owned by this RayService."
        ro.set_condition(status, "Suspending", "True", "SuspendRequested", message)
        ro.set_condition(status, "Ready", "False", "SuspendInProgress", "RayService is suspending.")
        ro.set_condition(status, "UpgradeInProgress", "False", "SuspendInProgress", "No upgrade in progress.")
        ro.set_condition(status, "RollbackInProgress", "False", "SuspendInProgress", "No rollback in progress.")
        status["activeServiceStatus"], status["pendingServiceStatus"] = {}, {}
        status.pop("numServeEndpoints", None)
        status.pop("serviceStatus", None)
        return True
    if not _delete_owned(c, cluster, rs):
        message = "Waiting for all Kubernetes resources owned by this RayService to be deleted."
        ro.set_condition(status, "Suspending", "True", "SuspendInProgress", message)
        return True
    done = "All owned resources have been deleted."
    ro.set_condition(status, "Suspending", "False", "SuspendComplete", done)
    ro.set_condition(status, "Suspended", "True", "SuspendComplete", done)
    ro.set_condition(status, "Ready", "False", "SuspendComplete", "RayService is suspended.")
    ro.set_condition(status, "UpgradeInProgress", "False", "SuspendComplete", "No upgrade in progress.")
    ro.set_condition(status, "RollbackInProgress", "False", "SuspendComplete", "No rollback in progress.")
    return True


def _delete_owned(c: RayServiceController, cluster: str, rs: Obj) -> bool:
    """``deleteRayServiceOwnedResources``: whether nothing was left to delete."""
    ns, name = rs["metadata"].get("namespace", "default"), rs["metadata"]["name"]
    all_deleted = True
    for rkey, kind in ((RAYCLUSTERS, "RayCluster"), (res.SERVICES.key, "Service")):
        for obj in list(c.objects.iter_type(cluster, rkey)):
            labels = obj["metadata"].get("labels") or {}
            if obj["metadata"].get("namespace") != ns or labels.get(ro.ORIGIN_NAME) != name:
                continue
            if labels.get(ro.ORIGIN_CRD) != "RayService":
                continue
            all_deleted = False
            c.objects.delete(cluster, rkey, ns, obj["metadata"]["name"])
            message = f"Deleted the {kind} {ns}/{obj['metadata']['name']} during suspend"
            c.event(cluster, rs, f"Deleted{kind}", message, "Delete")
    if ro.incremental(rs):
        for plural, kind, suffix in (("gateways", "Gateway", "gateway"), ("httproutes", "HTTPRoute", "httproute")):
            try:
                rtype = c.api.resolve(cluster, "gateway.networking.k8s.io", "v1", plural)
            except err.KubeError:
                continue
            if c.objects.get(cluster, rtype.key, ns, f"{name}-{suffix}") is None:
                continue
            all_deleted = False
            c.objects.delete(cluster, rtype.key, ns, f"{name}-{suffix}")
            c.event(cluster, rs, f"Deleted{kind}", f"Deleted the {kind} {ns}/{name}-{suffix} during suspend", "Delete")
    return all_deleted
