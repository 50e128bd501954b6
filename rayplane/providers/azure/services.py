"""A Rayplane service on Azure: one KubeRay ``RayService`` (v1.7.0) on the cloud's AKS cluster,
with the same contract as the local runner (``providers.local.service``).

Composition: the ``AzureProvider`` prepares the AKS side exactly as for a RayCluster
(``AzureProvider.prepare``: the AKS cluster, the KubeRay operator, the node pools; its
state is kept under ``provider``), then this runner applies the namespace, the Ray token and
GCS Redis Secrets and the RayService of ``rayservice.service_objects`` with server-side apply.
KubeRay makes the RayClusters; the runner never writes one.

Contract of ``ensure(service_id, want, serve, rollout, state)``
---------------------------------------------------------------
- **One bounded step**: at most one apply (a few API calls) and a few reads; no waiting.
  The caller calls again on every pass until the phase is RUNNING.
- **Versions and clusters**: KubeRay names its clusters itself (``<name>-<random>``). A name
  is attributed, when first seen in a status that KubeRay computed for the latest spec
  (``observedGeneration``), to the version whose spec was applied last (``applied``).
- **In place** (``want.version`` equal to the active one): the RayService is applied with
  the new ``serveConfigV2``; KubeRay submits it to Serve on the active cluster. DEPLOYING
  until every application is RUNNING there, as Serve itself confirms (``confirm``: KubeRay's
  status may show the old config's applications RUNNING for a pass, see ``reads``).
- **New version** (greater, and not ``failed``): the RayService is applied with the new
  ``rayClusterConfig``; KubeRay starts a pending cluster beside the active one and switches
  the serve Service to it once all its applications are RUNNING (``NewCluster``), or moves
  traffic through the Gateway in steps (``NewClusterWithIncrementalUpgrade``), then deletes
  the old cluster. ROLLING_OUT while the pending cluster exists; ``traffic_percent`` is the
  pending cluster's HTTPRoute weight where KubeRay reports one, else 0.
- **Automatic rollback**: a pending version whose applications are not all RUNNING
  ``health_timeout_seconds`` after its cluster's head was first seen ready (traffic never
  having moved to it) is dropped by applying the active version's RayService spec again
  (kept in ``versions``). What KubeRay v1.7.0 then does (``rayservice_controller.go``):
  with ``NewCluster``, ``shouldPrepareNewCluster`` compares the goal with the *pending*
  cluster, finds it different and names a new pending cluster with the active spec; the
  failed one is dangling and deleted after ``rayClusterDeletionDelaySeconds``. The active
  cluster serves throughout, and KubeRay switches to its identical replacement when that one
  is RUNNING. With the incremental upgrade, ``reconcileRollbackState`` sets
  ``RollbackInProgress``, traffic goes back, and the pending cluster is dropped. A replacement
  cluster counts as the active version's own (observed with it; the phase stays RUNNING
  while the service is Ready). ROLLING_BACK until KubeRay no longer has the dropped
  version's cluster as pending; then RUNNING with ``failure`` (Serve's message), the version
  remembered in ``failed`` and not tried again until the number grows. ``rollback`` does the
  same on request.
- Not rolled back automatically, as on the local provider: a version unhealthy after traffic
  moved to it (incremental), and one whose head never gets ready (pods that cannot be
  scheduled, say; ``observe`` says why): ROLLING_OUT until it recovers or ``rollback``.
- A version superseded mid-rollout (the number grew again) is dropped the same way, not
  remembered as failed.

Races: one caller per service at a time (the reconciler's lease). KubeRay works on its own
schedule: every judgement waits for a status of the latest generation, and an apply that a
crash left unrecorded is repeated by the next call (server-side apply of the same object is a
no-op). ``rollback``, ``stop``, ``teardown`` and ``observe`` get no target: the state keeps
the cloud config (without ``_`` keys), the names and each live version's applied manifest.

State layout::

    {"cloud": {...}, "namespace": "rp-clu-...", "name": "shop", "strategy": "blue_green",
     "provider": {<AzureProvider state: LROs, fallback>}, "active": 1, "pending": 2,
     "applied": 2, "digest": "<sha256>" | null, "clusters": {"shop-abcde": 1},
     "ready_at": {"2": <epoch s>}, "rolling_back": {"version", "reason", "remember"} | null,
     "failed": [3], "failure": "..." | null, "stopped": false, "confirm": false,
     "versions": {"1": {"manifest": {<RayService>}}}}
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from rayplane.providers.azure import manifests, monitors, observability, reads
from rayplane.providers.azure import rayservice as rsv
from rayplane.providers.azure.kube import Kube
from rayplane.providers.azure.rayservice import ServiceStatus
from rayplane.providers.base import Observation, ProviderError, ProviderEvent, RetriableError
from rayplane.providers.services import (
    AppStatus,
    RolloutPolicy,
    ServeConfigSource,
    ServicePhase,
    ServiceProgress,
    ServiceStep,
    VersionTarget,
)

if TYPE_CHECKING:
    from rayplane.providers.azure.provider import AzureProvider

EVENT_KIND = "service"


def _event(code: str, reason: str) -> ProviderEvent:
    return ProviderEvent(EVENT_KIND, reason, code)


def _initial(state: dict[str, Any]) -> dict[str, Any]:
    st = copy.deepcopy(state)
    for key, default in (
        ("provider", {}),
        ("active", None),
        ("pending", None),
        ("applied", None),
        ("digest", None),
        ("clusters", {}),
        ("ready_at", {}),
        ("rolling_back", None),
        ("failed", []),
        ("failure", None),
        ("stopped", False),
        ("confirm", False),
        ("versions", {}),
    ):
        st.setdefault(key, default)
    return st


class AzureServiceRunner:
    """Services on AKS: ``AzureServiceRunner(provider)``; see the module doc."""

    def __init__(self, provider: AzureProvider) -> None:
        self.provider = provider

    # -- the calls ---------------------------------------------------------------------

    def ensure(
        self,
        service_id: str,
        want: VersionTarget,
        serve: ServeConfigSource,
        rollout: RolloutPolicy,
        state: dict[str, Any],
    ) -> ServiceStep:
        """One step towards ``want`` (see the module doc); a ProviderError carries the state."""
        st = _initial(state)
        events: list[ProviderEvent] = []
        try:
            return self._ensure(want, serve, rollout, st, events)
        except ProviderError as exc:
            # (``prepare`` leaves its events in its state, which must stay JSON-able.)
            events += self.provider.take_events(st["provider"])
            exc.provider_state, exc.events = st, (*events, *exc.events)
            raise

    def _ensure(
        self,
        want: VersionTarget,
        serve: ServeConfigSource,
        rollout: RolloutPolicy,
        st: dict[str, Any],
        events: list[ProviderEvent],
    ) -> ServiceStep:
        target = want.cluster
        st["cloud"] = {k: v for k, v in target.cloud_config.items() if not k.startswith("_")}
        st["strategy"] = str(rollout.strategy)
        st["namespace"], st["name"] = manifests.resource_name(target)
        prepared = self.provider.prepare(target, st["provider"])
        events += self.provider.take_events(st["provider"])
        # KubeRay builds a service's clusters from the spec: a group moved off Spot is in the
        # next spec, there are no pods of ours to recycle.
        st["provider"].pop("recycle", None)
        if prepared is None:  # the AKS cluster is being created
            return self._step(st, events, ServicePhase.PROVISIONING, None)
        kube, effective = prepared
        found = self._read(kube, st)
        if st["rolling_back"] is not None:
            return self._roll_back(kube, st, events, found)
        active, pending, v = st["active"], st["pending"], want.version
        # In place on the active version unless the number grew to one not failed before.
        work = v if active is None or (v > active and v not in st["failed"]) else active
        if pending is not None and pending != work:
            # Superseded (the number grew again): drop it, not as a failure.
            st["rolling_back"] = {"version": pending, "reason": f"version {pending} superseded", "remember": False}
            return self._roll_back(kube, st, events, found)
        if active is not None and work != active and pending is None:
            st.update(pending=work, failure=None)
            events.append(_event("RolloutStarted", f"version {work} starting beside version {active}"))
        ft = rsv.service_target(target)
        handle = self.provider.handle(target.cloud_config)
        shipped = observability.ship_service(self.provider.settings, handle, ft, st["namespace"], st["provider"])
        if shipped is None:  # the logs' storage account is being created
            return self._step(st, events, ServicePhase.PROVISIONING, None)
        if work == v:
            replicas = {g.name: g.count for g in effective.groups}
            manifest = shipped[0](rsv.ray_service(effective, serve, rollout, replicas=replicas))
            previous = (st["versions"].get(str(work)) or {}).get("manifest")
            if previous is not None and not monitors.labelled(previous):
                # Applied before a service's pods carried the cluster-id label: adding it now
                # would change the RayService's cluster config, which KubeRay answers with a new
                # cluster (a rollout, twice the nodes while it lasts) for a label. The version
                # keeps its pods as they are; its PodMonitor matches from the next version on,
                # and Rayplane's own scrape (by namespace) is unaffected.
                manifest = monitors.without_cluster_label(manifest)
        else:  # the wanted number failed: the active version keeps its own spec
            manifest = st["versions"][str(active)]["manifest"]
        objects = [
            manifests.namespace(ft),
            manifests.auth_secret(ft),
            *self.provider.gcs_secret(kube, ft),
            *shipped[1],
            manifest,
        ]
        # The digest covers the Secrets too: they are written before the RayService naming them.
        digest = hashlib.sha256(json.dumps(objects, sort_keys=True).encode()).hexdigest()
        if found is None or st["digest"] != digest or st["applied"] != work:
            for obj in objects:
                kube.apply(obj)
            st["versions"][str(work)] = {"manifest": manifest}
            # In place: KubeRay's next status may still show the old config's applications
            # RUNNING, so Serve itself confirms the new one (``reads`` says why).
            st.update(applied=work, digest=digest, stopped=False, confirm=work == st["active"])
            events.append(_event("ServiceApplied", f"RayService applied for version {work}"))
            found = self._read(kube, st)  # KubeRay has not seen it yet: judged on the next call
        return self._judge(kube, st, events, found, rollout.health_timeout_seconds, target.ray_token)

    def rollback(
        self, service_id: str, state: dict[str, Any], *, token: str = "", reason: str = "rolled back on request"
    ) -> ServiceStep:
        """Drop the pending version now (the RayService back to the active version's spec)
        and remember it as failed; a no-op step without a pending version. ``token`` is not
        needed here: KubeRay reports Serve's statuses."""
        st = _initial(state)
        if st["rolling_back"] is None and st["pending"] is not None:
            st["rolling_back"] = {"version": st["pending"], "reason": reason, "remember": True}
        if st["rolling_back"] is None or not st.get("cloud"):
            phase = ServicePhase.RUNNING if st["active"] is not None else ServicePhase.PROVISIONING
            return self._step(st, [], phase, None)
        kube = self.provider.kube_for(st["cloud"])
        return self._roll_back(kube, st, [], self._read(kube, st))

    def stop(self, service_id: str, state: dict[str, Any], *, token: str = "") -> ServiceStep:
        """Delete the RayService (KubeRay deletes its RayClusters, so every node goes) and keep
        the rest: ``ensure`` applies it again, KubeRay starts a cluster for the version worked
        on and deploys its Serve config. A rollout stopped half-way resumes on the pending
        version: call ``rollback`` first to keep the active one. Pools scale down by the AKS
        autoscaler and are collected with the cloud's other unused pools."""
        st = _initial(state)
        if st.get("cloud"):
            kube = self.provider.kube_for(st["cloud"])
            kube.delete("ray.io/v1", "RayService", st["name"], st["namespace"])
            st["stopped"] = True
        # A rollback under way stays: ``ensure`` finishes it on the re-created RayService.
        st.update(clusters={}, ready_at={}, digest=None)
        return self._step(st, [_event("ServiceStopped", "RayService deleted")], ServicePhase.PROVISIONING, None)

    def teardown(self, service_id: str, state: dict[str, Any]) -> ServiceStep:
        """Delete the RayService, then (once KubeRay has deleted its RayClusters, whose
        finalizer removes the GCS keys from Redis with a Job in the namespace) the namespace.
        RetriableError while the clusters go; idempotent; the returned state is empty."""
        st = _initial(state)
        if st.get("cloud") and st.get("namespace"):
            kube = self.provider.kube_for(st["cloud"])
            kube.delete("ray.io/v1", "RayService", st["name"], st["namespace"])
            if kube.list_items(f"/apis/ray.io/v1/namespaces/{st['namespace']}/rayclusters", []):
                raise RetriableError("waiting for KubeRay to delete the RayClusters", code="GcsCleanupPending")
            kube.delete("v1", "Namespace", st["namespace"])
            handle = self.provider.handle(st["cloud"])
            observability.remove(self.provider.settings, handle, st["namespace"], st.get("provider") or {})
        return ServiceStep({}, ServiceProgress(ServicePhase.PROVISIONING, None, None, 0, (), None))

    def observe(self, service_id: str, want: VersionTarget, state: dict[str, Any]) -> dict[int, Observation]:
        """Per version, the pods of its RayClusters as ``AzureProvider.observe`` reads a
        RayCluster's (a replacement KubeRay makes of the active version counts with it); no
        side effects (a cluster not attributed yet is read as the applied version's)."""
        st = _initial(state)
        if not st.get("cloud") or st["stopped"]:
            return {}
        kube = self.provider.kube_for(st["cloud"])
        found = self._read(kube, st)
        if found is None:
            return {}
        status = found[1]
        dashboard = kube.proxy_url(st["namespace"], f"{st['name']}-head-svc", "dashboard")
        out: dict[int, Observation] = {}
        for side, cluster in (("active", status.active.cluster), ("pending", status.pending.cluster)):
            version = st["clusters"].get(cluster, st["applied"]) if cluster else None
            if cluster is None or version is None:
                continue
            seen = self.provider.observe_raycluster(
                kube, st["namespace"], cluster, dashboard if side == "active" else None
            )
            out[version] = reads.merge(out[version], seen) if version in out else seen
        return out

    # -- the steps ---------------------------------------------------------------------

    def _judge(
        self,
        kube: Kube,
        st: dict[str, Any],
        events: list[ProviderEvent],
        found: tuple[dict[str, Any], ServiceStatus] | None,
        health_timeout: int,
        token: str,
    ) -> ServiceStep:
        """The phase from a status of the latest spec (the state's guess until KubeRay has one)."""
        if found is None or not found[1].current:
            return self._step(st, events, self._guess(st), found)
        obj, status = found
        clusters = st["clusters"]
        act_v = clusters.get(status.active.cluster)
        pend_v = clusters.get(status.pending.cluster)
        if st["active"] is None and act_v is not None:
            st["active"] = act_v
            events.append(_event("ServiceRunning", f"version {act_v} serves"))
        if st["pending"] is not None and act_v == st["pending"] and pend_v is None:
            old, new = st["active"], st["pending"]
            st["versions"] = {str(new): st["versions"][str(new)]}
            st.update(active=new, pending=None)
            st["ready_at"].pop(str(new), None)
            events.append(_event("RolloutCompleted", f"version {new} serves all traffic; version {old} removed"))
        if status.active.cluster is None:  # nothing serves yet (first deploy, or after stop)
            names = reads.app_names(st["versions"][str(st["applied"])]["manifest"])
            up = reads.head_ready(obj, "pendingServiceStatus")
            failure = reads.failure_text(status.pending, names) if up else None
            return self._step(st, events, ServicePhase.DEPLOYING if up else ServicePhase.PROVISIONING, found, failure)
        if st["pending"] is not None:
            pv = st["pending"]
            if pend_v != pv:  # KubeRay has not started the new version's cluster yet
                return self._step(st, events, ServicePhase.ROLLING_OUT, found)
            now = time.time()
            if reads.head_ready(obj, "pendingServiceStatus"):
                st["ready_at"].setdefault(str(pv), now)
            names = reads.app_names(st["versions"][str(pv)]["manifest"])
            running = status.pending.all_running(names)
            up_at = st["ready_at"].get(str(pv))
            moved = bool(status.pending.traffic_percent)
            if not running and not moved and up_at is not None and now - up_at >= health_timeout:
                reason = f"version {pv} not healthy within {health_timeout} s of its cluster being up: " + (
                    reads.failure_text(status.pending, names) or "its applications are not all RUNNING"
                )
                st["rolling_back"] = {"version": pv, "reason": reason, "remember": True}
                return self._roll_back(kube, st, events, found)
            return self._step(st, events, ServicePhase.ROLLING_OUT, found)
        manifest = st["versions"][str(st["active"])]["manifest"]
        names = reads.app_names(manifest)
        # A pending cluster of the active version is KubeRay replacing its cluster by an
        # identical one (after a rollback): Serve is read on the replacement only, while the
        # active one serves; Ready says it does.
        running = status.ready if pend_v is not None else status.active.all_running(names)
        if running and pend_v is None and st["confirm"]:
            url = kube.proxy_url(st["namespace"], f"{st['name']}-head-svc", "dashboard")
            headers, verify = self.provider.jobs_auth(st["cloud"])
            running = reads.serve_runs(url, headers, verify, token, manifest["spec"]["serveConfigV2"])
            st["confirm"] = not running
        failure = None if running else reads.failure_text(status.active, names)
        return self._step(st, events, ServicePhase.RUNNING if running else ServicePhase.DEPLOYING, found, failure)

    def _roll_back(
        self,
        kube: Kube,
        st: dict[str, Any],
        events: list[ProviderEvent],
        found: tuple[dict[str, Any], ServiceStatus] | None,
    ) -> ServiceStep:
        """The RayService back to the active version's spec; ROLLING_BACK until KubeRay has
        taken it and no longer has the dropped version's cluster as pending."""
        rb = st["rolling_back"]
        dropped, active = int(rb["version"]), st["active"]
        if st["applied"] != active or found is None:  # (None: stopped, or deleted behind our back)
            kube.apply(st["versions"][str(active)]["manifest"])
            # The Secrets were not written with it: the next ensure writes all again (no-op).
            st.update(applied=active, digest=None)
            found = self._read(kube, st)
        if found is None or not found[1].current or st["clusters"].get(found[1].pending.cluster) == dropped:
            return self._step(st, events, ServicePhase.ROLLING_BACK, found)
        st["versions"].pop(str(dropped), None)
        st["ready_at"].pop(str(dropped), None)
        st.update(pending=None, rolling_back=None)
        if rb["remember"]:
            st["failed"] = sorted({*st["failed"], dropped})
            st["failure"] = rb["reason"]
            events.append(_event("RolledBack", rb["reason"]))
        else:
            events.append(_event("VersionDropped", rb["reason"]))
        return self._step(st, events, ServicePhase.RUNNING, found)

    # -- helpers -----------------------------------------------------------------------

    def _read(self, kube: Kube, st: dict[str, Any]) -> tuple[dict[str, Any], ServiceStatus] | None:
        """The RayService and its status; attributes cluster names KubeRay reports for the
        latest spec to the applied version, and forgets names it no longer reports."""
        found = rsv.read(kube, st["namespace"], st["name"], incremental=st.get("strategy") == "incremental")
        if found is None or not found[1].current:
            return found
        status = found[1]
        kept: dict[str, int] = {}
        for cluster in (status.active.cluster, status.pending.cluster):
            version = st["clusters"].get(cluster, st["applied"]) if cluster else None
            if cluster and version is not None:
                kept[cluster] = version
        st["clusters"] = kept
        return found

    @staticmethod
    def _guess(st: dict[str, Any]) -> ServicePhase:
        if st["rolling_back"] is not None:
            return ServicePhase.ROLLING_BACK
        if st["pending"] is not None:
            return ServicePhase.ROLLING_OUT
        return ServicePhase.PROVISIONING if st["active"] is None or st["stopped"] else ServicePhase.DEPLOYING

    def _step(
        self,
        st: dict[str, Any],
        events: list[ProviderEvent],
        phase: ServicePhase,
        found: tuple[dict[str, Any], ServiceStatus] | None,
        failure: str | None = None,
    ) -> ServiceStep:
        """The step to return, with each side's applications as KubeRay reports them."""
        apps: list[AppStatus] = []
        traffic, url = 0, None
        if found is not None:
            status = found[1]
            for side in (status.active, status.pending):
                version = st["clusters"].get(side.cluster) if side.cluster else None
                if version is not None:
                    apps += [AppStatus(version, a.name, str(a.status), a.message) for a in side.applications]
            if st["pending"] is not None and st["clusters"].get(status.pending.cluster) == st["pending"]:
                traffic = status.pending.traffic_percent or 0
            url = status.endpoint if status.active.cluster else None
        progress = ServiceProgress(
            phase=phase,
            active_version=st["active"],
            pending_version=st["pending"],
            traffic_percent=traffic,
            applications=tuple(apps),
            endpoint_url=url,
            failure=failure if failure is not None else st["failure"],
        )
        return ServiceStep(st, progress, tuple(events))
