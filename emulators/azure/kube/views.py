"""What ``kubectl`` reads beyond plain JSON: Table and metadata renderings, watches, and the
answers for the pod subresources the emulator does not run (exec, attach, port-forward).

:mod:`emulators.azure.kube.routes` parses the path and hands the read here:

The contracts are those of https://kubernetes.io/docs/reference/using-api/api-concepts/
(receiving resources as Tables, efficient detection of changes):

* :func:`list_view` / :func:`get_view` -- the object or list, or its Table/PartialObjectMetadata
  rendering when the ``Accept`` header asks (:mod:`emulators.azure.kube.tables`);
* :func:`watch_view` -- ``?watch=1``/``watch=true`` on a collection (or, the deprecated form,
  on one object): a chunked ``application/json`` stream of newline-delimited
  ``{"type", "object"}`` events (:mod:`emulators.azure.kube.watch`), objects rendered as the
  ``Accept`` header asks (a one-row Table per event for ``kubectl get -w``);
* :func:`node_write` -- ``PATCH``/``PUT`` of a node (cordon, taint, label);
* :func:`unsupported_stream` -- ``exec``, ``attach`` and ``portforward``
  (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/) answer 400
  with a Status saying the emulator runs no containers, before any protocol upgrade.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from emulators.azure.kube import errors as err
from emulators.azure.kube import nodeedits, tables
from emulators.azure.kube import resources as res
from emulators.azure.kube.api import ListOptions, Target
from emulators.azure.kube.selectors import parse_field_selector, parse_label_selector
from emulators.azure.kube.watch import DEFAULT_TIMEOUT_SECONDS, WatchSpec, object_events, polled_events

if TYPE_CHECKING:
    from emulators.azure.kube.service import KubeService

Obj = dict[str, Any]
STREAMS = ("exec", "attach", "portforward")


def _crd(svc: KubeService, t: Target) -> Obj | None:
    return svc.api.crd_for(t.cluster, t.rtype) if t.rtype.crd else None


def list_view(request: Request, svc: KubeService, t: Target, opts: ListOptions) -> Response:
    """``GET`` of a collection, rendered as the ``Accept`` header asks."""
    listed = svc.api.list_objects(t, opts)
    rendering = tables.negotiate(request.headers.get("accept"))
    if rendering is None:
        return JSONResponse(listed)
    include = request.query_params.get("includeObject")
    return JSONResponse(tables.render_list(t.rtype, _crd(svc, t), t.version, listed, rendering, include))


def get_view(request: Request, svc: KubeService, t: Target) -> Response:
    """``GET`` of one object (or its ``/status``), rendered as the ``Accept`` header asks."""
    obj = svc.api.get(t)
    rendering = tables.negotiate(request.headers.get("accept"))
    if rendering is None:
        return JSONResponse(obj)
    include = request.query_params.get("includeObject")
    return JSONResponse(tables.render_one(t.rtype, _crd(svc, t), t.version, obj, rendering, include))


def _timeout(value: str | None) -> float:
    if value in (None, ""):
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(str(value))
    except ValueError:
        raise err.bad_request(f"invalid timeoutSeconds: {value!r}") from None
    return seconds if seconds > 0 else DEFAULT_TIMEOUT_SECONDS


def watch_view(
    request: Request,
    svc: KubeService,
    t: Target,
    opts: ListOptions,
    *,
    convert: Callable[[Obj], Obj] | None = None,
    api_version: str | None = None,
) -> Response:
    """``?watch=1``: the chunked event stream (see the module docstring). ``convert`` serves
    the stored objects in another shape (field selectors apply to that shape), ``api_version``
    names it in bookmarks."""
    shape = convert or (lambda obj: obj)
    q = request.query_params
    try:
        labels = parse_label_selector(opts.label_selector)
        fields = parse_field_selector(opts.field_selector)
    except ValueError as exc:
        raise err.bad_request(str(exc)) from None
    namespace = t.namespace if t.rtype.namespaced else ""
    name = t.name

    def match(obj: Obj) -> bool:
        m = obj.get("metadata") or {}
        if namespace and m.get("namespace", "") != namespace:
            return False
        if name and m.get("name") != name:
            return False
        return bool(labels(m.get("labels") or {}) and fields(shape(obj)))

    if t.rtype.crd is not None and _crd(svc, t) is None:
        raise err.resource_not_found()
    spec = WatchSpec(
        cluster=t.cluster,
        rkey=t.rtype.key,
        kind=t.rtype.kind,
        api_version=api_version or t.rtype.api_version(t.version),
        match=match,
        resource_version=q.get("resourceVersion"),
        timeout=_timeout(q.get("timeoutSeconds")),
        bookmarks=q.get("allowWatchBookmarks", "").lower() in ("true", "1"),
        initial_end_bookmark=q.get("sendInitialEvents", "").lower() in ("true", "1"),
    )
    listing = Target(t.cluster, t.rtype, t.version, t.namespace)
    if spec.initial_end_bookmark:
        spec.resource_version = "0"  # sendInitialEvents: the state first, whatever the version says

    def current() -> list[Obj]:
        return [o for o in svc.api.list_objects(listing, ListOptions())["items"] if match(o)]

    if t.rtype is res.NODES:
        events = polled_events(svc.feed, spec, current, _node_signature)
    else:
        events = object_events(svc.feed, spec, current)
    rendering = tables.negotiate(request.headers.get("accept"))
    encode = _encoder(svc, t, rendering, request.query_params.get("includeObject"), convert)
    return StreamingResponse(_lines(events, encode), media_type="application/json")


def _node_signature(node: Obj) -> Any:
    """What a node watcher cares about: everything but heartbeat times."""
    status = node.get("status") or {}
    conditions = [(c.get("type"), c.get("status")) for c in status.get("conditions") or []]
    m = node.get("metadata") or {}
    return json.dumps([m.get("labels"), m.get("annotations"), node.get("spec"), conditions], sort_keys=True)


def _encoder(
    svc: KubeService,
    t: Target,
    rendering: tables.Rendering | None,
    include: str | None,
    convert: Callable[[Obj], Obj] | None = None,
) -> Callable[[str, Obj], Obj]:
    if rendering is None:
        shape = convert or (lambda obj: svc.api.render(t, obj))
        return lambda kind, obj: shape(obj) if kind not in ("ERROR", "BOOKMARK") else obj
    crd = _crd(svc, t)

    def encode(kind: str, obj: Obj) -> Obj:
        if kind in ("ERROR", "BOOKMARK"):
            return obj
        return tables.render_one(t.rtype, crd, t.version, svc.api.render(t, obj), rendering, include)

    return encode


async def _lines(events: AsyncIterator[tuple[str, Obj]], encode: Callable[[str, Obj], Obj]) -> AsyncIterator[bytes]:
    async for kind, obj in events:
        yield json.dumps({"type": kind, "object": encode(kind, obj)}, separators=(",", ":")).encode() + b"\n"


async def node_write(request: Request, svc: KubeService, t: Target, body: Any) -> Response:
    """PATCH/PUT of a node: cordon, taints, labels (:mod:`emulators.azure.kube.nodeedits`)."""
    node = next((n for n in svc.fleet.nodes(t.cluster) if n.name == t.name), None)
    if node is None:
        raise err.not_found("nodes", "", t.name)
    content_type = request.headers.get("content-type", "") if request.method == "PATCH" else None
    before = bool((nodeedits.override_of(svc.objects, t.cluster, t.name) or {}).get("unschedulable"))
    written = nodeedits.write(svc.objects, t.cluster, node, content_type, body, svc.config.missing_images)
    after = bool((written.get("spec") or {}).get("unschedulable"))
    if before != after:
        svc.events.node_schedulable(t.cluster, written, schedulable=not after)
    return JSONResponse(written)


def unsupported_stream(sub: str) -> err.KubeError:
    """exec/attach/portforward: the emulator runs no containers to connect to."""
    verb = {"portforward": "port-forward"}.get(sub, sub)
    return err.bad_request(
        f"{verb} is not supported by the Rayplane emulator: its pods are simulated and run no containers"
    )
