"""Kubernetes API of each emulated AKS cluster, and the simulated KubeRay controller.

Routes:

* ``/kubernetes/{subscription}/{resourceGroup}/{cluster}/...`` -- the API server of that
  managed cluster (the ``server`` of the kubeconfig ARM returns): discovery, the built-in
  kinds Rayplane applies, custom resources of installed CRDs (validated against their
  schema), nodes from the fleet, the service proxy to the Ray dashboards (simulated, or real
  with ``ray_backend: "real"``) (:mod:`emulators.azure.kube.routes`);
* ``/_emulator/kube/...`` -- test control (:mod:`emulators.azure.kube.admin`).

What ``kubectl`` reads beyond plain JSON: ``views`` + ``tables`` + ``printers`` (Table
output), ``watch`` (change feed, watch streams), ``events`` + ``eventsv1`` (what the
simulated components report), ``logs`` (pod logs), ``metrics`` (``kubectl top``),
``nodeedits`` (cordon, taints and labels of nodes).

Modules: ``objects`` (store), ``api`` (verbs), ``kinds`` (built-in defaulting), ``validation``
(schemas), ``patch``, ``selectors``, ``resources`` (types, discovery), ``nodes``,
``scheduler``, ``workloads`` (pods, deployments), ``raypods`` + ``kuberay`` (operator),
``rayservice`` + ``rayservice_objects`` + ``rayservice_upgrade`` (its RayService controller),
``jobs`` + ``dashboard`` + ``serve`` + ``serveclient`` (simulated Ray and Serve), ``raynodes``
+ ``rayargs`` (real Ray nodes behind the pods, ``ray_backend: "real"``), ``proxy``,
``controller`` (loop), ``config``, ``service`` (wiring), ``testing`` (client helpers for
tests). What kubectl needs on the wire: ``protobuf`` + ``protofields`` (protobuf request
bodies), ``openapi`` + ``openapi_pb`` (OpenAPI v3/v2), ``strategic`` (strategic merge patch),
``fieldvalidation`` (``fieldValidation=Strict``), ``aggregated`` (aggregated discovery),
``endpoints`` (OpenAPI, health, self reviews).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from emulators.azure.kube.admin import create_admin_router as _admin_router
from emulators.azure.kube.endpoints import create_root_router as _root_router
from emulators.azure.kube.routes import create_router as _router
from emulators.azure.kube.service import KubeService

if TYPE_CHECKING:
    from emulators.azure.app import EmulatorContext

# One service per context: the Azure-facing and the admin router must share it.
_services: dict[int, tuple[EmulatorContext, KubeService]] = {}


def service_for(ctx: EmulatorContext) -> KubeService:
    """The :class:`KubeService` of ``ctx`` (made on first use)."""
    found = _services.get(id(ctx))
    if found is None or found[0] is not ctx:
        found = (ctx, KubeService(ctx))
        _services[id(ctx)] = found
    return found[1]


def create_router(ctx: EmulatorContext) -> APIRouter:
    """The Azure-facing routes of this surface."""
    svc = service_for(ctx)
    router = _router(svc)
    router.include_router(_root_router(svc))
    return router


def create_admin_router(ctx: EmulatorContext) -> APIRouter:
    """Test-control routes under ``/_emulator/...``."""
    return _admin_router(service_for(ctx))
