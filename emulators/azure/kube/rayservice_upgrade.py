"""``NewClusterWithIncrementalUpgrade`` of the simulated RayService controller (KubeRay v1.7.0,
``rayservice_controller.go``: ``reconcileGateway``, ``reconcileHTTPRoute``,
``calculateTrafficRoutedPercent``, ``checkIfNeedTargetCapacityUpdate``,
``reconcileServeTargetCapacity``, ``applyServeTargetCapacity``, ``reconcilePerClusterServeService``).

* every RayCluster of the RayService gets its own serve Service ``<cluster>-serve-svc``
  (owned by the RayCluster);
* a Gateway ``<service>-gateway`` (``gatewayClassName`` from ``clusterUpgradeOptions``, one
  HTTP listener ``http`` on port 80) and an HTTPRoute ``<service>-httproute`` (path prefix
  ``/``) whose backendRefs are the active and pending clusters' serve Services with weights;
  both owned by the RayService. The Gateway API CRDs must be installed in the cluster
  (``gateways``/``httproutes.gateway.networking.k8s.io``), as with the real operator; without
  them the pass fails with a Warning ``FailedToCreateGateway``. The emulator plays the
  Gateway implementation too: a Gateway is at once ``Accepted`` and ``Programmed`` (with an
  address), an HTTPRoute ``Accepted`` and ``ResolvedRefs`` for its parent;
* the upgrade alternates between raising the pending cluster's Serve ``target_capacity`` by
  ``maxSurgePercent``, moving ``stepSizePercent`` of the HTTPRoute weight to it every
  ``intervalSeconds`` up to that capacity, and lowering the active cluster's capacity;
  ``status.{active,pending}ServiceStatus.targetCapacity``/``trafficRoutedPercent``/
  ``lastTrafficMigratedTime`` record it. The pending side is promoted when the active
  capacity is 0 and the pending traffic 100.

Rollback (``reconcileRollbackState``, ``shouldCompleteIncrementalRollback``): a goal spec
that is the active cluster's again, or a third one, mid-upgrade sets ``RollbackInProgress``
(``DesiredClusterSpecChanged``); traffic and ``target_capacity`` then move back to the
active cluster by the same steps, no new cluster is prepared, and once the active side is
back at 100/100 (and the pending one at 0/0, or its head not ready) the pending side is
dropped (its cluster goes after the deletion delay). A goal spec equal to the pending
cluster's again cancels the rollback.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from emulators.azure.kube import errors as err
from emulators.azure.kube import rayservice_objects as ro
from emulators.azure.kube import resources as res
from emulators.azure.kube.objects import now_iso
from emulators.azure.kube.serveclient import SERVE_ERRORS

if TYPE_CHECKING:
    from emulators.azure.kube.rayservice import RayServiceController

Obj = dict[str, Any]
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_CONTROLLER = "gateway.networking.k8s.io/emulated"


def _parse(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def _accepted(kind: str, generation: int) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "reason": kind,
        "message": "",
        "observedGeneration": generation,
        "lastTransitionTime": now_iso(),
    }


class IncrementalUpgrade:
    def __init__(self, controller: RayServiceController) -> None:
        self.c = controller

    # -- routing objects ------------------------------------------------------------------------
    def _type(self, cluster: str, rs: Obj, plural: str) -> res.ResourceType:
        try:
            return self.c.api.resolve(cluster, GATEWAY_GROUP, "v1", plural)
        except err.KubeError as exc:
            ns = rs["metadata"].get("namespace", "default")
            kind = "Gateway" if plural == "gateways" else "HTTPRoute"
            reason = "FailedToCreateGateway" if plural == "gateways" else "FailedToCreateHTTPRoute"
            message = (
                f"Failed to create {kind} for RayService {ns}/{rs['metadata']['name']}-"
                f'{kind.lower()}: no matches for kind "{kind}" in version "{GATEWAY_GROUP}/v1"'
            )
            self.c.event(cluster, rs, reason, message, "Create", warning=True)
            raise ro.Stop(message) from exc

    def reconcile_routing(
        self, cluster: str, rs: Obj, active: Obj | None, pending: Obj | None, pending_ready: bool
    ) -> Obj | None:
        for rc in (active, pending):
            if rc is not None:
                svc = ro.build_serve_service(rs, rc, per_cluster=True)
                m = svc["metadata"]
                if self.c.objects.get(cluster, res.SERVICES.key, m["namespace"], m["name"]) is None:
                    self.c.load_balancer(cluster, self.c.api.insert(cluster, res.SERVICES, svc))
        self._gateway(cluster, rs)
        return self._route(cluster, rs, pending_ready)

    def _gateway(self, cluster: str, rs: Obj) -> Obj:
        gtype = self._type(cluster, rs, "gateways")
        ns, name = rs["metadata"].get("namespace", "default"), f"{rs['metadata']['name']}-gateway"
        spec = {
            "gatewayClassName": ro.upgrade_options(rs).get("gatewayClassName", ""),
            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
        }
        old = self.c.objects.get(cluster, gtype.key, ns, name)
        if old is None:
            obj = {
                "metadata": {"name": name, "namespace": ns, "ownerReferences": [ro.owner_reference(rs)]},
                "spec": spec,
            }
            gw = self.c.api.insert(cluster, gtype, obj)
            gw = copy.deepcopy(gw)
            gw["status"] = {
                "addresses": [{"type": "IPAddress", "value": "10.224.100.10"}],
                "conditions": [_accepted("Accepted", 1), _accepted("Programmed", 1)],
            }
            self.c.event(cluster, rs, "CreatedGateway", f"Created Gateway for RayService {ns}/{name}", "Create")
            return self.c.api.write(cluster, gtype.key, gw)
        if (old.get("spec") or {}) != spec:
            updated = copy.deepcopy(old)
            updated["spec"] = spec
            self.c.api.write(cluster, gtype.key, updated)
            self.c.event(cluster, rs, "UpdatedGateway", f"Updated the Gateway {ns}/{name}", "Update")
        return old

    def _weights(self, rs: Obj, pending_ready: bool) -> tuple[int, int]:
        """``calculateTrafficRoutedPercent``."""
        status = rs["status"]
        active, pending = status.get("activeServiceStatus") or {}, status.get("pendingServiceStatus") or {}
        active_weight = int(active.get("trafficRoutedPercent", 100))
        pending_weight = int(pending.get("trafficRoutedPercent", 0))
        options = ro.upgrade_options(rs)
        pending_capacity = int(pending.get("targetCapacity", 0))
        active_capacity = int(active.get("targetCapacity", 100))
        rolling_back = ro.condition_true(status, "RollbackInProgress")
        if (pending_weight == pending_capacity and not rolling_back) or (
            rolling_back and active_weight == active_capacity
        ):
            return active_weight, pending_weight
        last = _parse((active if rolling_back else pending).get("lastTrafficMigratedTime"))
        due = last is None or time.time() - last >= float(options.get("intervalSeconds") or 1)
        step = int(options.get("stepSizePercent") or 0)
        if due and rolling_back:
            active_weight = min(100, active_weight + step, active_capacity)
            pending_weight = 100 - active_weight
        elif due and pending_ready:
            pending_weight = min(100, pending_weight + step, pending_capacity)
            active_weight = 100 - pending_weight
        return active_weight, pending_weight

    def _route(self, cluster: str, rs: Obj, pending_ready: bool) -> Obj | None:
        rtype = self._type(cluster, rs, "httproutes")
        ns, rs_name = rs["metadata"].get("namespace", "default"), rs["metadata"]["name"]
        status = rs["status"]
        active = self.c.get_rc(cluster, ns, (status.get("activeServiceStatus") or {}).get("rayClusterName", ""))
        if active is None:
            return None
        pending = self.c.get_rc(cluster, ns, (status.get("pendingServiceStatus") or {}).get("rayClusterName", ""))
        active_weight, pending_weight = self._weights(rs, pending_ready)
        refs = [
            {
                "group": "",
                "kind": "Service",
                "name": f"{active['metadata']['name']}-serve-svc",
                "namespace": ns,
                "port": ro.serve_port(active),
                "weight": active_weight,
            }
        ]
        if pending is not None:
            refs.append(
                {
                    "group": "",
                    "kind": "Service",
                    "name": f"{pending['metadata']['name']}-serve-svc",
                    "namespace": ns,
                    "port": ro.serve_port(pending),
                    "weight": pending_weight,
                }
            )
        gateway = f"{rs_name}-gateway"
        spec = {
            "parentRefs": [{"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway, "namespace": ns}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": refs,
                }
            ],
        }
        name = f"{rs_name}-httproute"
        old = self.c.objects.get(cluster, rtype.key, ns, name)
        if old is None:
            obj = {
                "metadata": {"name": name, "namespace": ns, "ownerReferences": [ro.owner_reference(rs)]},
                "spec": spec,
            }
            route = copy.deepcopy(self.c.api.insert(cluster, rtype, obj))
            parent = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway, "namespace": ns}
            route["status"] = {
                "parents": [
                    {
                        "parentRef": parent,
                        "controllerName": GATEWAY_CONTROLLER,
                        "conditions": [_accepted("Accepted", 1), _accepted("ResolvedRefs", 1)],
                    }
                ]
            }
            self.c.event(cluster, rs, "CreatedHTTPRoute", f"Created HTTPRoute for RayService {ns}/{name}", "Create")
            return self.c.api.write(cluster, rtype.key, route)
        if (old.get("spec") or {}) != spec:
            updated = copy.deepcopy(old)
            updated["spec"] = spec
            updated["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
            self.c.event(cluster, rs, "UpdatedHTTPRoute", f"Updated the HTTPRoute {ns}/{name}", "Update")
            return self.c.api.write(cluster, rtype.key, updated)
        return old

    # -- status -----------------------------------------------------------------------------------
    def traffic_status(self, rs: Obj, route: Obj | None, pending: Obj | None) -> None:
        """``GetWeightsFromHTTPRoute`` into ``trafficRoutedPercent``/``lastTrafficMigratedTime``."""
        status = rs["status"]
        active_s, pending_s = (
            status.setdefault("activeServiceStatus", {}),
            status.setdefault("pendingServiceStatus", {}),
        )
        active_weight = pending_weight = -1
        refs = (((route or {}).get("spec") or {}).get("rules") or [{}])[0].get("backendRefs") or []
        for ref in refs:
            if active_s.get("rayClusterName") and active_s["rayClusterName"] in ref.get("name", ""):
                active_weight = int(ref.get("weight", 0))
            if pending_s.get("rayClusterName") and pending_s["rayClusterName"] in ref.get("name", ""):
                pending_weight = int(ref.get("weight", 0))
        now = now_iso()
        if active_weight >= 0:
            if active_weight != active_s.get("trafficRoutedPercent", -1):
                active_s["lastTrafficMigratedTime"] = now
            active_s["trafficRoutedPercent"] = active_weight
        if pending_weight >= 0 and pending is not None:
            if pending_weight != pending_s.get("trafficRoutedPercent", -1):
                pending_s["lastTrafficMigratedTime"] = now
            pending_s["trafficRoutedPercent"] = pending_weight

    def complete(self, rs: Obj, pending: Obj | None) -> bool:
        """``IsIncrementalUpgradeComplete``."""
        status = rs["status"]
        return (
            pending is not None
            and (status.get("activeServiceStatus") or {}).get("targetCapacity", -1) == 0
            and (status.get("pendingServiceStatus") or {}).get("trafficRoutedPercent", -1) == 100
        )

    # -- target capacity --------------------------------------------------------------------------
    def _needs_update(self, cluster: str, rs: Obj) -> bool:
        """``checkIfNeedTargetCapacityUpdate``."""
        status = rs["status"]
        active, pending = status.get("activeServiceStatus") or {}, status.get("pendingServiceStatus") or {}
        if not active.get("rayClusterName") or not pending.get("rayClusterName"):
            return False
        ns, name = rs["metadata"].get("namespace", "default"), rs["metadata"]["name"]
        try:
            gtype = self.c.api.resolve(cluster, GATEWAY_GROUP, "v1", "gateways")
            rtype = self.c.api.resolve(cluster, GATEWAY_GROUP, "v1", "httproutes")
        except err.KubeError:
            return False
        gateway = self.c.objects.get(cluster, gtype.key, ns, f"{name}-gateway")
        route = self.c.objects.get(cluster, rtype.key, ns, f"{name}-httproute")
        conditions = ((gateway or {}).get("status") or {}).get("conditions") or []
        if not {"Accepted", "Programmed"} <= {c["type"] for c in conditions if c.get("status") == "True"}:
            return False
        parents = ((route or {}).get("status") or {}).get("parents") or []
        if not any(
            {"Accepted", "ResolvedRefs"} <= {c["type"] for c in p.get("conditions") or [] if c.get("status") == "True"}
            for p in parents
        ):
            return False
        if "targetCapacity" not in active or "trafficRoutedPercent" not in active:
            return True
        if "targetCapacity" not in pending or "trafficRoutedPercent" not in pending:
            return True
        if ro.condition_true(status, "RollbackInProgress"):
            return not (active["targetCapacity"] == 100 and pending["targetCapacity"] == 0)
        return not (active["targetCapacity"] == 0 and pending["targetCapacity"] == 100)

    def target_capacity(self, cluster: str, rs: Obj, rc: Obj, head: Obj) -> None:
        """``reconcileServeTargetCapacity`` for ``rc`` (the upgrade is in progress)."""
        if not self._needs_update(cluster, rs):
            return
        status = rs["status"]
        active, pending = status.setdefault("activeServiceStatus", {}), status.setdefault("pendingServiceStatus", {})
        active.setdefault("targetCapacity", 100)
        pending.setdefault("targetCapacity", 0)
        active_cap, pending_cap = int(active["targetCapacity"]), int(pending["targetCapacity"])
        surge = int(ro.upgrade_options(rs).get("maxSurgePercent", 100))
        name = rc["metadata"]["name"]
        is_active, is_pending = name == active.get("rayClusterName"), name == pending.get("rayClusterName")
        goal: int | None = None
        if ro.condition_true(status, "RollbackInProgress"):
            if active_cap != int(active.get("trafficRoutedPercent", 0)):
                return  # traffic is still moving back to the active cluster
            if is_pending and active_cap + pending_cap > 100:
                goal = max(0, pending_cap - surge)
            elif is_active and active_cap + pending_cap <= 100:
                goal = min(100, active_cap + surge)
        elif pending_cap != int(pending.get("trafficRoutedPercent", 0)):
            return  # traffic is still moving to the pending cluster
        elif is_active and active_cap + pending_cap > 100:
            goal = max(0, active_cap - surge)
        elif is_pending and active_cap + pending_cap <= 100:
            goal = min(100, pending_cap + surge)
        if goal is None:
            return
        text = self.c.cached(cluster, rs, name) or str((rs.get("spec") or {}).get("serveConfigV2") or "")
        ns = rc["metadata"].get("namespace", "default")
        try:
            self.c.submit(cluster, rs, rc, head, goal, cache=False, text=text)
        except SERVE_ERRORS as exc:
            self.c.event(
                cluster,
                rs,
                "FailedToUpdateTargetCapacity",
                f"Failed to update target_capacity of serve applications to the RayCluster {ns}/{name}: {exc}",
                "Update",
                warning=True,
            )
            raise ro.Stop(str(exc)) from exc
        (active if is_active else pending)["targetCapacity"] = goal
        self.c.event(
            cluster,
            rs,
            "UpdatedServeTargetCapacity",
            f"Updated target_capacity of serve applications to to the RayCluster {ns}/{name}",
            "Update",
        )

    # -- rollback ---------------------------------------------------------------------------------
    def rollback_state(self, rs: Obj, active: Obj, pending: Obj) -> None:
        """``reconcileRollbackState`` (an upgrade is in progress)."""
        status = rs["status"]
        target = ro.spec_hash((rs.get("spec") or {}).get("rayClusterConfig") or {})
        original = (active["metadata"].get("annotations") or {}).get(ro.HASH_KEY)
        upgraded = (pending["metadata"].get("annotations") or {}).get(ro.HASH_KEY)
        rolling_back = ro.condition_true(status, "RollbackInProgress")
        if target == original:
            if not rolling_back:
                message = "Goal state reverted to original cluster, rolling back."
                ro.set_condition(status, "RollbackInProgress", "True", "DesiredClusterSpecChanged", message)
        elif target == upgraded:
            if rolling_back:
                status["conditions"] = [c for c in status["conditions"] if c["type"] != "RollbackInProgress"]
        elif not rolling_back:
            message = "Goal state changed mid-upgrade, rolling back to original cluster."
            ro.set_condition(status, "RollbackInProgress", "True", "DesiredClusterSpecChanged", message)

    def finish_rollback(self, rs: Obj, pending: Obj | None) -> bool:
        """``shouldCompleteIncrementalRollback`` and its effect; whether the pending side went."""
        status = rs["status"]
        active_s, pending_s = status.get("activeServiceStatus") or {}, status.get("pendingServiceStatus") or {}
        healthy = pending is not None and ro.condition_true(pending.get("status") or {}, "HeadPodReady")
        done = (
            active_s.get("targetCapacity", -1) == 100
            and active_s.get("trafficRoutedPercent", -1) == 100
            and (
                not healthy
                or (pending_s.get("targetCapacity", -1) == 0 and pending_s.get("trafficRoutedPercent", -1) == 0)
            )
        )
        if not done:
            return False
        status["pendingServiceStatus"] = {}
        status["conditions"] = [c for c in status["conditions"] if c["type"] != "RollbackInProgress"]
        message = "Rollback complete, active Ray cluster exists and no pending Ray cluster"
        ro.set_condition(status, "UpgradeInProgress", "False", "NoPendingCluster", message)
        return True
