"""The simulated KubeRay RayService controller (v1.7.0 ``rayservice_controller.go``).

Run by :class:`emulators.azure.kube.kuberay.KubeRayOperator` after its RayClusters, in the
namespaces the operator watches. Each pass over a RayService follows ``Reconcile``:

1. a RayService whose ``spec.managedBy`` names another controller is left alone; the
   finalizer ``ray.io/rayservice-finalizer`` is added (then the pass ends);
2. RayClusters of the RayService that are neither active nor pending are deleted once
   ``spec.rayClusterDeletionDelaySeconds`` (else the ``rayservice_deletion_delay_seconds``
   knob, KubeRay's 60 s) has passed since they were first seen dangling;
3. ``ValidateRayServiceMetadata`` and ``ValidateRayServiceSpec``: an invalid RayService gets
   ``Ready=False``/``ValidationFailed`` and a Warning ``InvalidRayServiceMetadata``/``Spec``
   event; then ``spec.suspend`` (:mod:`~emulators.azure.kube.rayservice_suspend`); a
   RayService past its ``ray.io/initializing-timeout`` gets no further than this;
4. the pending cluster named in ``status.pendingServiceStatus.rayClusterName`` is created
   when missing; the active (outside an upgrade) and pending clusters are updated in place
   when only worker groups were appended;
5. the head pods' ``ray.io/serve`` label follows the Serve proxy's health (a RayCluster
   without a head pod ends the pass, as ``updateHeadPodServeLabel`` errors);
6. ``reconcileServe`` on the pending cluster, or on the active one when there is no pending
   cluster and none is to be prepared: once ``HeadPodReady``, the Serve applications are read
   through the dashboard and ``serveConfigV2`` is (re)submitted when it differs from the one
   cached for that cluster, or no application exists (a head that lost its GCS);
7. with ``NewClusterWithIncrementalUpgrade``: :mod:`~emulators.azure.kube.rayservice_upgrade`;
8. ``<name>-head-svc`` and ``<name>-serve-svc`` point at the pending cluster once all its
   applications are ``RUNNING`` (the switch), else at the ready active one;
9. ``calculateStatus``: cluster statuses and application statuses per side, promotion of
   the pending side when the services point at it, a new pending cluster name when
   ``rayClusterConfig`` changed (``NewCluster``; nothing with ``None``), ``numServeEndpoints``
   (Ready pods the serve service selects), conditions ``Ready`` and ``UpgradeInProgress``,
   ``serviceStatus`` (``Running`` when Ready), ``observedGeneration``, ``lastUpdateTime``
   (only when something else changed). A RayService still initializing past its
   ``ray.io/initializing-timeout`` loses its clusters (``Ready=False``/``InitializingTimeout``,
   a Warning event), for good.

A LoadBalancer Service it creates gets ``status.loadBalancer.ingress[0].ip`` at once, as
Azure's cloud provider would give it a public IP.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
from typing import Any

import yaml

from emulators.azure.kube import raypods
from emulators.azure.kube import rayservice_objects as ro
from emulators.azure.kube import resources as res
from emulators.azure.kube.api import KubeAPI
from emulators.azure.kube.config import KubeConfig
from emulators.azure.kube.events import EventRecorder
from emulators.azure.kube.kuberay import RAYCLUSTERS, is_ready, node_type
from emulators.azure.kube.objects import now_iso
from emulators.azure.kube.rayservice_objects import Stop
from emulators.azure.kube.rayservice_suspend import handle_suspend
from emulators.azure.kube.rayservice_upgrade import IncrementalUpgrade
from emulators.azure.kube.serveclient import SERVE_ERRORS, ServeBackend

Obj = dict[str, Any]
RAYSERVICES = "ray.io/rayservices"
COMPONENT = "rayservice-controller"


class RayServiceController:
    def __init__(self, api: KubeAPI, config: KubeConfig, serve: ServeBackend) -> None:
        self.api = api
        self.objects = api.objects
        self.config = config
        self.serve = serve
        self.events: EventRecorder | None = None
        self.dangling: dict[tuple[str, str], float] = {}  # (cluster, rc uid) -> delete at
        self.cache: dict[tuple[str, str], dict[str, str]] = {}  # (cluster, rs uid) -> {rc name: config}
        self.upgrade = IncrementalUpgrade(self)

    def event(self, cluster: str, rs: Obj, reason: str, message: str, action: str, *, warning: bool = False) -> None:
        if self.events is not None:
            kind = "Warning" if warning else "Normal"
            self.events.record(cluster, rs, kind, reason, message, component=COMPONENT, action=action)

    def reconcile(self, cluster: str, namespaces: frozenset[str] | None, cluster_ip: bool) -> float | None:
        """One pass over the RayServices; when the next pass is due (None: none exists)."""
        services = [
            rs
            for rs in self.objects.iter_type(cluster, RAYSERVICES)
            if namespaces is None or rs["metadata"].get("namespace") in namespaces
        ]
        for rs in list(services):
            with contextlib.suppress(Stop):
                self._reconcile(cluster, rs, cluster_ip)
        # Forget the Serve configs of RayServices and the deletion times of clusters now gone.
        for key in [k for k in self.cache if k[0] == cluster and self.objects.by_uid(cluster, k[1]) is None]:
            self.cache.pop(key)
        for key in [k for k in self.dangling if k[0] == cluster and self.objects.by_uid(cluster, k[1]) is None]:
            self.dangling.pop(key)
        if not services:
            return None
        return time.time() + self.config.rayservice_requeue_seconds

    def get_rc(self, cluster: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get(cluster, RAYCLUSTERS, namespace, name) if name else None

    # -- the pass -----------------------------------------------------------------------------
    def _reconcile(self, cluster: str, rs: Obj, cluster_ip: bool) -> None:
        m = rs["metadata"]
        ns = m.get("namespace", "default")
        if (rs.get("spec") or {}).get("managedBy", ro.KUBERAY_CONTROLLER) != ro.KUBERAY_CONTROLLER:
            return  # managed by another controller (MultiKueue...)
        if ro.FINALIZER not in (m.get("finalizers") or []):
            updated = copy.deepcopy(rs)
            updated["metadata"]["finalizers"] = [*(m.get("finalizers") or []), ro.FINALIZER]
            self.api.write(cluster, RAYSERVICES, updated)
            return
        rs = copy.deepcopy(rs)
        original = copy.deepcopy(rs.get("status") or {})
        status = rs.setdefault("status", {})
        self._clean_up(cluster, rs)
        problem, reason = ro.validate_metadata(rs), "InvalidRayServiceMetadata"
        if not problem:
            problem, reason = ro.validate(rs), "InvalidRayServiceSpec"
        if problem:
            self.event(cluster, rs, reason, f"{ns}/{m['name']}: {problem}", "Validate", warning=True)
            ro.set_condition(status, "Ready", "False", "ValidationFailed", problem)
            self._write(cluster, rs, original)
            return
        if handle_suspend(self, cluster, rs):
            self._write(cluster, rs, original)
            return
        if ro.timed_out(status):
            return  # a terminal failure: only the clean-up above runs
        active = self.get_rc(cluster, ns, (status.get("activeServiceStatus") or {}).get("rayClusterName", ""))
        pending = self.get_rc(cluster, ns, (status.get("pendingServiceStatus") or {}).get("rayClusterName", ""))
        pending_name = (status.get("pendingServiceStatus") or {}).get("rayClusterName", "")
        if pending_name and pending is None:
            self._create_cluster(cluster, rs, pending_name)
            return  # (KubeRay returns the new cluster; nothing of it is ready yet)
        if active is not None and not ro.condition_true(status, "UpgradeInProgress"):
            self._maybe_update(cluster, rs, active, "active")
        if pending is not None:
            self._maybe_update(cluster, rs, pending, "pending")
        if ro.incremental(rs) and ro.condition_true(status, "UpgradeInProgress") and active is not None and pending:
            self.upgrade.rollback_state(rs, active, pending)
        if ro.incremental(rs) and ro.condition_true(status, "UpgradeInProgress") and active is None:
            self.event(
                cluster,
                rs,
                "RollbackImpossible",
                "Active cluster not found, rollback cannot be initiated",
                "Reconcile",
                warning=True,
            )
        exclude = bool((rs.get("spec") or {}).get("excludeHeadPodFromServeSvc"))
        self._head_label(cluster, rs, active, exclude)
        self._head_label(cluster, rs, pending, exclude)

        active_ready = pending_ready = False
        active_apps: dict[str, Obj] | None = None
        pending_apps: dict[str, Obj] | None = None
        if pending is not None:
            pending_ready, pending_apps = self._reconcile_serve(cluster, rs, pending)
        if active is not None and (
            (pending is None and not ro.should_prepare(rs, active, None, False))
            or (pending is not None and ro.incremental(rs))
        ):
            active_ready, active_apps = self._reconcile_serve(cluster, rs, active)

        route: Obj | None = None
        if ro.incremental(rs):
            route = self.upgrade.reconcile_routing(cluster, rs, active, pending, pending_ready)

        head_svc = serve_svc = None
        if pending_ready or active_ready:
            target = active
            in_progress = ro.incremental(rs) and ro.condition_true(status, "UpgradeInProgress")
            if pending_ready and not in_progress:
                target = pending
            assert target is not None
            head_svc = self._service(cluster, rs, ro.build_head_service(rs, target, cluster_ip=cluster_ip))
            serve_svc = self._service(cluster, rs, ro.build_serve_service(rs, target))
        self._status(cluster, rs, head_svc, serve_svc, active, pending, active_apps, pending_apps, route)
        self._write(cluster, rs, original)

    def _write(self, cluster: str, rs: Obj, original: Obj) -> None:
        status = rs["status"]
        if {k: v for k, v in status.items() if k != "lastUpdateTime"} == {
            k: v for k, v in original.items() if k != "lastUpdateTime"
        }:
            return
        status["lastUpdateTime"] = now_iso()
        current = self.objects.get(cluster, RAYSERVICES, rs["metadata"].get("namespace", ""), rs["metadata"]["name"])
        if current is None:
            return
        updated = copy.copy(current)
        updated["status"] = status
        self.api.write(cluster, RAYSERVICES, updated)

    # -- clusters -------------------------------------------------------------------------
    def _clean_up(self, cluster: str, rs: Obj) -> None:
        """``cleanUpRayClusterInstance``: dangling clusters go after the deletion delay."""
        ns, name = rs["metadata"].get("namespace", "default"), rs["metadata"]["name"]
        status = rs.get("status") or {}
        keep = {
            (status.get("activeServiceStatus") or {}).get("rayClusterName"),
            (status.get("pendingServiceStatus") or {}).get("rayClusterName"),
        }
        delay = (rs.get("spec") or {}).get("rayClusterDeletionDelaySeconds")
        delay = self.config.rayservice_deletion_delay_seconds if delay is None else float(delay)
        now = time.time()
        for rc in list(self.objects.iter_type(cluster, RAYCLUSTERS)):
            labels = rc["metadata"].get("labels") or {}
            if rc["metadata"].get("namespace") != ns or labels.get(ro.ORIGIN_NAME) != name:
                continue
            if labels.get(ro.ORIGIN_CRD) != "RayService" or rc["metadata"]["name"] in keep:
                continue
            key = (cluster, rc["metadata"]["uid"])
            when = self.dangling.get(key)
            if when is None:
                self.dangling[key] = now + max(0.0, delay)
            elif now >= when:
                self.objects.delete(cluster, RAYCLUSTERS, ns, rc["metadata"]["name"])
                self.dangling.pop(key, None)
                self.event(
                    cluster, rs, "DeletedRayCluster", f"Deleted the RayCluster {ns}/{rc['metadata']['name']}", "Delete"
                )

    def _create_cluster(self, cluster: str, rs: Obj, name: str) -> Obj:
        rc = self.api.insert(cluster, self._rc_type(cluster), ro.build_raycluster(rs, name))
        ns = rs["metadata"].get("namespace", "default")
        self.event(cluster, rs, "CreatedRayCluster", f"Created the RayCluster {ns}/{name}", "Create")
        return rc

    def _rc_type(self, cluster: str) -> res.ResourceType:
        return self.api.resolve(cluster, "ray.io", "v1", "rayclusters")

    def _maybe_update(self, cluster: str, rs: Obj, rc: Obj, side: str) -> None:
        """``shouldUpdateCluster`` + ``modifyRayCluster``."""
        stale_version = side == "active" and (rc["metadata"].get("annotations") or {}).get(ro.VERSION_KEY) != (
            ro.KUBERAY_VERSION
        )
        if not stale_version and (ro.hash_equal(rs, rc, partial=False) or not ro.hash_equal(rs, rc, partial=True)):
            return
        goal = ro.build_raycluster(rs, rc["metadata"]["name"])
        updated = copy.deepcopy(rc)
        suspend = (rc.get("spec") or {}).get("suspend")
        updated["spec"] = goal["spec"]
        if suspend is not None:
            updated["spec"]["suspend"] = suspend
        updated["metadata"]["labels"] = goal["metadata"]["labels"]
        updated["metadata"]["annotations"] = goal["metadata"]["annotations"]
        updated["metadata"]["generation"] = int(rc["metadata"].get("generation") or 1) + 1
        self.api.write(cluster, RAYCLUSTERS, updated)
        ns = rc["metadata"].get("namespace", "default")
        self.event(
            cluster, rs, "UpdatedRayCluster", f"Updated the {side} RayCluster {ns}/{rc['metadata']['name']}", "Update"
        )

    def head_pod(self, cluster: str, rc: Obj) -> Obj | None:
        heads = [
            p for p in self.objects.dependents(cluster, rc["metadata"]["uid"], res.PODS.key) if node_type(p) == "head"
        ]
        return heads[0] if heads else None

    def _head_label(self, cluster: str, rs: Obj, rc: Obj | None, exclude: bool) -> None:
        """``updateHeadPodServeLabel``."""
        if rc is None:
            return
        head = self.head_pod(cluster, rc)
        if head is None:
            raise Stop(f"found 0 head. cluster name {rc['metadata']['name']}")
        wanted = "false" if exclude else str(self.serve.proxy_healthy(cluster, rc, head)).lower()
        if (head["metadata"].get("labels") or {}).get(ro.SERVE_LABEL) == wanted:
            return
        updated = copy.deepcopy(head)
        updated["metadata"].setdefault("labels", {})[ro.SERVE_LABEL] = wanted
        self.api.write(cluster, res.PODS.key, updated)
        m = head["metadata"]
        self.event(
            cluster,
            rs,
            "UpdatedHeadPodServeLabel",
            f'Updated the serve label to "{wanted}" for the Head Pod {m.get("namespace")}/{m["name"]}',
            "Update",
        )

    # -- Serve --------------------------------------------------------------------------------
    def cached(self, cluster: str, rs: Obj, rc_name: str) -> str:
        return self.cache.get((cluster, rs["metadata"]["uid"]), {}).get(rc_name, "")

    def submit(
        self, cluster: str, rs: Obj, rc: Obj, head: Obj, target_capacity: int | None, *, cache: bool, text: str = ""
    ) -> None:
        text = text or str((rs.get("spec") or {}).get("serveConfigV2") or "")
        try:
            config = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise RuntimeError(f"invalid serveConfigV2: {exc}") from exc
        if target_capacity is not None:
            config["target_capacity"] = target_capacity
        self.serve.put(cluster, rc, head, json.loads(json.dumps(config)))
        if cache and text:
            store = self.cache.setdefault((cluster, rs["metadata"]["uid"]), {})
            status = rs.get("status") or {}
            names = {
                (status.get(s) or {}).get("rayClusterName") for s in ("activeServiceStatus", "pendingServiceStatus")
            }
            for stale in [k for k in store if k not in names]:
                store.pop(stale)
            store[rc["metadata"]["name"]] = text

    def _reconcile_serve(self, cluster: str, rs: Obj, rc: Obj) -> tuple[bool, dict[str, Obj] | None]:
        """``reconcileServe``: (ready, application statuses)."""
        if not ro.condition_true(rc.get("status") or {}, "HeadPodReady"):
            return False, None
        head = self.head_pod(cluster, rc)
        if head is None or not is_ready(head):
            return False, None
        status = rs["status"]
        name = rc["metadata"]["name"]
        is_active = name == (status.get("activeServiceStatus") or {}).get("rayClusterName")
        in_progress = ro.incremental(rs) and ro.condition_true(status, "UpgradeInProgress")
        rolling_back = ro.incremental(rs) and ro.condition_true(status, "RollbackInProgress")
        skip = (is_active and in_progress and not rolling_back) or (not is_active and rolling_back)
        ns = rc["metadata"].get("namespace", "default")
        try:
            raw = self.serve.get(cluster, rc, head)
        except SERVE_ERRORS as exc:  # the dashboard is not answering yet: KubeRay requeues
            raise Stop(f"failed to get Serve application statuses from the dashboard. err: {exc}") from exc
        apps: dict[str, Obj] = {}
        ready = bool(raw)
        for app_name, app in raw.items():
            ready = ready and app.get("status") == "RUNNING"
            deployments = {
                d: {k: v for k, v in (("status", s.get("status", "")), ("message", s.get("message", ""))) if v}
                for d, s in (app.get("deployments") or {}).items()
            }
            entry = {k: v for k, v in (("status", app.get("status", "")), ("message", app.get("message", ""))) if v}
            if deployments:
                entry["serveDeploymentStatuses"] = deployments
            apps[app_name or "default"] = entry
        cached = self.cached(cluster, rs, name)
        wanted = str((rs.get("spec") or {}).get("serveConfigV2") or "")
        should = not cached or not apps or cached != wanted
        if should and not skip:
            capacity = None
            if ro.incremental(rs):
                side = "activeServiceStatus" if is_active else "pendingServiceStatus"
                capacity = (status.get(side) or {}).get("targetCapacity")
            try:
                self.submit(cluster, rs, rc, head, capacity, cache=True)
            except SERVE_ERRORS as exc:
                self.event(
                    cluster,
                    rs,
                    "FailedToUpdateServeApplications",
                    f"Failed to update serve applications to the RayCluster {ns}/{name}: {exc}",
                    "Update",
                    warning=True,
                )
                raise Stop(str(exc)) from exc
            self.event(
                cluster,
                rs,
                "UpdatedServeApplications",
                f"Updated serve applications to the RayCluster {ns}/{name}",
                "Update",
            )
        if in_progress:
            self.upgrade.target_capacity(cluster, rs, rc, head)
        return ready, apps

    # -- Services -----------------------------------------------------------------------------
    def _service(self, cluster: str, rs: Obj, svc: Obj) -> Obj:
        """``reconcileServices``: created, or re-pointed when the RayCluster switches."""
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        old = self.objects.get(cluster, res.SERVICES.key, ns, name)
        if old is None:
            created = self.api.insert(cluster, res.SERVICES, svc)
            self.event(cluster, rs, "CreatedService", f"Created the service {ns}/{name}", "Create")
            return self.load_balancer(cluster, created)
        wanted = (svc["spec"].get("selector") or {}).get(raypods.CLUSTER_LABEL)
        if ((old.get("spec") or {}).get("selector") or {}).get(raypods.CLUSTER_LABEL) == wanted:
            return old
        updated = copy.deepcopy(old)
        spec = copy.deepcopy(svc["spec"])
        for keep in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if keep in old.get("spec", {}):
                spec[keep] = old["spec"][keep]
        updated["spec"] = spec
        written = self.api.write(cluster, res.SERVICES.key, updated)
        self.event(cluster, rs, "UpdatedService", f"Updated the service {ns}/{name}", "Update")
        return written

    def load_balancer(self, cluster: str, svc: Obj) -> Obj:
        if (svc.get("spec") or {}).get("type") != "LoadBalancer":
            return svc
        digest = hashlib.sha256(svc["metadata"]["uid"].encode()).digest()
        updated = copy.deepcopy(svc)
        updated["status"] = {
            "loadBalancer": {"ingress": [{"ip": f"20.{digest[0]}.{digest[1]}.{1 + digest[2] % 254}", "ipMode": "VIP"}]}
        }
        return self.api.write(cluster, res.SERVICES.key, updated)

    # -- status -------------------------------------------------------------------------------
    def _status(
        self,
        cluster: str,
        rs: Obj,
        head_svc: Obj | None,
        serve_svc: Obj | None,
        active: Obj | None,
        pending: Obj | None,
        active_apps: dict[str, Obj] | None,
        pending_apps: dict[str, Obj] | None,
        route: Obj | None,
    ) -> None:
        """``calculateStatus``."""
        status = rs["status"]
        status["observedGeneration"] = int(rs["metadata"].get("generation") or 0)
        sides = {"activeServiceStatus": (active, active_apps), "pendingServiceStatus": (pending, pending_apps)}
        for side, (rc, apps) in sides.items():
            entry = status.setdefault(side, {})
            rc_status = copy.deepcopy((rc or {}).get("status") or {})
            if rc_status:
                entry["rayClusterStatus"] = rc_status
            else:
                entry.pop("rayClusterStatus", None)
            if apps:
                entry["applicationStatuses"] = apps
            else:
                entry.pop("applicationStatuses", None)
        serving_pending = False
        if head_svc is not None and serve_svc is not None:
            if ro.incremental(rs):
                self.upgrade.traffic_status(rs, route, pending)
            serving_pending = self._promote(rs, serve_svc, pending)
        if ro.condition_true(status, "RollbackInProgress") and self.upgrade.finish_rollback(rs, pending):
            pending = None
        if ro.should_prepare(rs, active, pending, serving_pending):
            name = ro.cluster_name(rs["metadata"]["name"])
            status["pendingServiceStatus"] = {"rayClusterName": name}
            if ro.incremental(rs):
                if not (status.get("activeServiceStatus") or {}).get("rayClusterName"):
                    if (status.get("activeServiceStatus") or {}).get("targetCapacity") is None:
                        status["pendingServiceStatus"]["targetCapacity"] = 100
                else:
                    status["pendingServiceStatus"]["targetCapacity"] = 0
        ns = rs["metadata"].get("namespace", "default")
        serve_name = f"{rs['metadata']['name']}-serve-svc"
        if ro.incremental(rs) and active is not None:
            serve_name = f"{active['metadata']['name']}-serve-svc"
        endpoints = ro.ready_endpoints(self.objects, cluster, ns, serve_name)
        if ro.incremental(rs) and pending is not None:
            endpoints += ro.ready_endpoints(self.objects, cluster, ns, f"{pending['metadata']['name']}-serve-svc")
        if endpoints:
            status["numServeEndpoints"] = endpoints
        else:
            status.pop("numServeEndpoints", None)
        text = str((rs["metadata"].get("annotations") or {}).get(ro.TIMEOUT_ANNOTATION) or "")
        fired = ro.conditions(status, ro.parse_timeout(text) if text else None)
        if fired:
            self.event(
                cluster,
                rs,
                "RayServiceInitializingTimeout",
                fired,
                "Reconcile",
                warning=True,
            )
        status["serviceStatus"] = "Running" if ro.condition_true(status, "Ready") else ""
        if not status["serviceStatus"]:
            status.pop("serviceStatus")
        for side in ("activeServiceStatus", "pendingServiceStatus"):
            if not status.get(side):
                status[side] = {}

    def _promote(self, rs: Obj, serve_svc: Obj, pending: Obj | None) -> bool:
        """``reconcilePromotionAndServingStatus``: whether the services point at the pending side."""
        status = rs["status"]
        points_to = ((serve_svc.get("spec") or {}).get("selector") or {}).get(raypods.CLUSTER_LABEL)
        pending_name = (status.get("pendingServiceStatus") or {}).get("rayClusterName", "")
        active_name = (status.get("activeServiceStatus") or {}).get("rayClusterName", "")
        promote = False
        if ro.incremental(rs):
            if ro.condition_true(status, "UpgradeInProgress"):
                promote = not ro.condition_true(status, "RollbackInProgress") and self.upgrade.complete(rs, pending)
            elif not active_name and pending_name:
                promote = True
        elif active_name != points_to:
            promote = True
        if promote:
            status["activeServiceStatus"] = status.get("pendingServiceStatus") or {}
            status["pendingServiceStatus"] = {}
        return points_to == pending_name and bool(pending_name)
