"""Endpoints of an emulated API server that are not stored resources: OpenAPI, health checks,
and the self-review APIs behind ``kubectl auth can-i`` and ``kubectl auth whoami``.

:func:`handle` answers a request whose path it owns and returns None for every other path
(the routes then dispatch it as discovery or a resource):

* ``/openapi/v3``, ``/openapi/v3/<gv>`` and ``/openapi/v2`` (:mod:`emulators.azure.kube.openapi`).
  ``/openapi/v2`` is JSON or, for a client that asks for it first (client-go's
  ``OpenAPISchema`` asks only for it), gnostic protobuf (:mod:`emulators.azure.kube.openapi_pb`);
  406 NotAcceptable for anything else.
* ``/api`` and ``/apis`` in the aggregated discovery form when the client asks for it first
  (:mod:`emulators.azure.kube.aggregated`).
* ``/healthz``, ``/livez``, ``/readyz`` and ``/<endpoint>/<check>``: ``ok``; with ``?verbose``
  every check listed as ``[+]<check> ok`` then ``<endpoint> check passed``
  (https://kubernetes.io/docs/reference/using-api/health-checks/).
* ``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews``: allowed for every request,
  as for AKS's local cluster credentials, which are cluster administrators
  (https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access).
* ``POST /apis/authentication.k8s.io/v1/selfsubjectreviews``: the user the credential
  authenticates as: AKS's local accounts are ``masterclient`` in ``system:masters``
  (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#self-subject-review).

Bodies may be JSON or protobuf (kubectl's typed clients send protobuf).

:func:`create_root_router` also serves the health endpoints at the emulator's root
(``/healthz``...), for the cluster the bearer token belongs to: ``kubectl get --raw /readyz``
replaces the kubeconfig server's path (``/kubernetes/<sub>/<rg>/<name>``) with its own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from emulators.azure.kube import aggregated, eventsv1, metrics, openapi, openapi_pb, protobuf
from emulators.azure.kube import errors as err
from emulators.azure.kube import resources as res
from emulators.azure.kube.objects import now_iso

TOKEN_KIND = "kube.token"  # the store kind of cluster tokens (as in routes)

if TYPE_CHECKING:
    from emulators.azure.kube.service import KubeService

Obj = dict[str, Any]
HEALTH_CHECKS = (
    "ping",
    "log",
    "etcd",
    "poststarthook/start-apiextensions-controllers",
    "poststarthook/crd-informer-synced",
    "poststarthook/rbac/bootstrap-roles",
)
_REVIEWS = (
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
    ("authentication.k8s.io", "v1", "selfsubjectreviews"),
)
_USER = {"username": "masterclient", "groups": ["system:masters", "system:authenticated"]}


async def handle(svc: KubeService, request: Request, key: str, parts: list[str]) -> Response | None:
    """The answer for a path this module owns, else None."""
    if parts and parts[0] == "openapi":
        return _openapi(svc, request, key, parts[1:])
    if (
        parts in (["api"], ["apis"])
        and request.method == "GET"
        and aggregated.wants_v2(request.headers.get("accept", ""))
    ):
        types = [*res.BUILTINS, *metrics.TYPES, *eventsv1.TYPES, *svc.api.custom_types(key)]
        body = aggregated.document(types, core=parts == ["api"])
        return JSONResponse(body, media_type=aggregated.MEDIA_TYPE, headers={"Vary": "Accept"})
    if parts and parts[0] in ("healthz", "livez", "readyz"):
        return _health(request, parts)
    review = tuple(parts[1:4]) if len(parts) >= 4 and parts[0] == "apis" else ()
    if review in _REVIEWS:
        if request.method != "POST" or len(parts) > 4:
            raise err.method_not_allowed(f"{request.method} is not supported on {parts[3]}: create only")
        if review == _REVIEWS[0]:
            return JSONResponse(_access_review(await _review_body(request, "SelfSubjectAccessReview")), 201)
        return JSONResponse(_self_review(await _review_body(request, "SelfSubjectReview")), 201)
    return None


# -- OpenAPI ------------------------------------------------------------------------------------
def _v2_format(request: Request) -> str | None:
    """``json`` or ``protobuf``, whichever the Accept header lists first; None if neither."""
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return "json"
    for part in accept.split(","):
        kind = part.split(";")[0].strip().lower()
        if kind in ("application/json", "*/*", "application/*"):
            return "json"
        if kind == openapi_pb.MEDIA_TYPE:
            return "protobuf"
    return None


def _openapi(svc: KubeService, request: Request, key: str, rest: list[str]) -> Response:
    if request.method != "GET":
        raise err.method_not_allowed(f"{request.method} is not supported on OpenAPI documents")
    types = [*res.BUILTINS, *svc.api.custom_types(key)]
    crds = {c["metadata"]["name"]: c for c in svc.objects.iter_type(key, res.CRDS.key)}
    if rest == ["v2"]:
        form = _v2_format(request)
        if form is None:
            raise err.KubeError(
                406,
                "NotAcceptable",
                f"only application/json and {openapi_pb.MEDIA_TYPE} are served for /openapi/v2",
                {},
            )
        document = openapi.v2_document(types, crds)
        if form == "protobuf":
            return Response(openapi_pb.encode_document(document), media_type=openapi_pb.RESPONSE_TYPE)
        return JSONResponse(document)
    if rest == ["v3"]:
        return JSONResponse(openapi.v3_index(types, crds))
    if len(rest) >= 3 and rest[0] == "v3":
        gv_document = openapi.v3_document(types, crds, "/".join(rest[1:]))
        if gv_document is not None:
            return JSONResponse(gv_document, headers={"Cache-Control": "public, immutable"})
    raise err.resource_not_found()


def create_root_router(svc: KubeService) -> APIRouter:
    """``/healthz``, ``/livez``, ``/readyz`` (and ``/<endpoint>/<check>``) at the root; 401
    without a bearer token of an emulated cluster."""
    router = APIRouter(tags=["kubernetes"])

    async def health(request: Request, endpoint: str, check: str = "") -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        doc = svc.store.get(TOKEN_KIND, token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if doc is None:
            return err.unauthorized().response()
        return _health(request, [endpoint, *[p for p in check.split("/") if p]])

    for endpoint in ("healthz", "livez", "readyz"):
        router.add_api_route(f"/{endpoint}", _bind(health, endpoint), methods=["GET"])
        router.add_api_route(f"/{endpoint}/{{check:path}}", _bind(health, endpoint), methods=["GET"])
    return router


def _bind(health: Any, endpoint: str) -> Any:
    async def route(request: Request, check: str = "") -> Response:
        response: Response = await health(request, endpoint, check)
        return response

    return route


# -- health -------------------------------------------------------------------------------------
def _health(request: Request, parts: list[str]) -> Response:
    endpoint, check = parts[0], "/".join(parts[1:])
    if check:
        if check not in HEALTH_CHECKS:
            return PlainTextResponse(f"{endpoint}/{check} not found\n", 404)
        return PlainTextResponse("ok")
    if "verbose" not in request.query_params:
        return PlainTextResponse("ok")
    lines = [f"[+]{c} ok" for c in HEALTH_CHECKS]
    return PlainTextResponse("\n".join([*lines, f"{endpoint} check passed", ""]))


# -- self reviews -------------------------------------------------------------------------------
async def _review_body(request: Request, kind: str) -> Obj:
    raw = await request.body()
    if protobuf.is_protobuf(request.headers.get("content-type")):
        body: Any = protobuf.decode_body(raw)
    else:
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise err.bad_request(f"the request body could not be decoded: {exc}") from None
    if not isinstance(body, dict):
        raise err.bad_request(f"the body of the request was not a JSON object describing a {kind}")
    if body.get("kind") not in (None, kind):
        raise err.bad_request(f"the kind in the data ({body.get('kind')}) does not match the expected kind ({kind})")
    return body


def _access_review(body: Obj) -> Obj:
    spec = body.get("spec") or {}
    if not isinstance(spec, dict) or bool(spec.get("resourceAttributes")) == bool(spec.get("nonResourceAttributes")):
        raise err.invalid(
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "",
            [err.field_invalid("spec", "", "exactly one of nonResourceAttributes or resourceAttributes must be set")],
        )
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": True, "reason": "the cluster credential of an AKS local account is cluster-admin"},
    }


def _self_review(body: Obj) -> Obj:
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": now_iso()},
        "status": {"userInfo": dict(_USER)},
    }
