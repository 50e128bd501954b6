"""``events.k8s.io/v1``: the same Events as core/v1, in the newer API's shape (read-only).

The API server stores one kind of Event and serves it in both groups
(https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/ for
``events.k8s.io/v1``): ``regarding`` is core's ``involvedObject``, ``note`` its ``message``,
``reportingController`` its ``reportingComponent``, ``deprecatedSource``,
``deprecatedFirstTimestamp``, ``deprecatedLastTimestamp`` and ``deprecatedCount`` its
``source``, ``firstTimestamp``, ``lastTimestamp`` and ``count``. Here the group serves ``GET``
(list with selectors -- field selectors over the new shape, e.g. ``regarding.name`` --, one
event, ``?watch=1``); the emulator's components write through core/v1, so writes are 405.
Tables print the core printer's columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from emulators.azure.kube import errors as err
from emulators.azure.kube import resources as res
from emulators.azure.kube import tables, views
from emulators.azure.kube.api import ListOptions, Target
from emulators.azure.kube.selectors import parse_field_selector

if TYPE_CHECKING:
    from emulators.azure.kube.service import KubeService

Obj = dict[str, Any]
GROUP = "events.k8s.io"
API_VERSION = f"{GROUP}/v1"
EVENTS_V1 = res.ResourceType(
    GROUP, ("v1",), "events", "event", "Event", True, short_names=("ev",), verbs=("get", "list", "watch"),
    status_subresource=False,
)  # fmt: skip
TYPES = (EVENTS_V1,)
_RENAMED = {
    "involvedObject": "regarding",
    "message": "note",
    "reportingComponent": "reportingController",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
}
_KEPT = ("metadata", "eventTime", "reportingInstance", "action", "reason", "related", "type", "series")


def to_v1(event: Obj) -> Obj:
    """A stored core/v1 Event in the ``events.k8s.io/v1`` shape."""
    out: Obj = {"kind": "Event", "apiVersion": API_VERSION}
    for key in _KEPT:
        if key in event:
            out[key] = event[key]
    for old, new in _RENAMED.items():
        if event.get(old) not in (None, "", {}):
            out[new] = event[old]
    out.setdefault("eventTime", None)
    return out


def serve(request: Request, svc: KubeService, cluster: str, version: str, rest: list[str]) -> Response:
    """``/apis/events.k8s.io/v1/...`` below the group version."""
    if version != "v1":
        raise err.resource_not_found()
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if rest[0] != "events" or len(rest) > 2:
        raise err.resource_not_found()
    if request.method != "GET":
        raise err.method_not_allowed(
            f"{request.method} is not supported on {GROUP}: the emulator writes core/v1 Events"
        )
    q = request.query_params
    name = rest[1] if len(rest) == 2 else ""
    t = Target(cluster, res.EVENTS, "v1", namespace, name)
    opts = ListOptions(q.get("labelSelector"), None, 0, None)
    if (q.get("watch") or "").lower() in ("true", "1"):
        opts = ListOptions(q.get("labelSelector"), q.get("fieldSelector"))
        return views.watch_view(request, svc, t, opts, convert=to_v1, api_version=API_VERSION)
    rendering = tables.negotiate(request.headers.get("accept"))
    if name:
        event = svc.api.get(t)
        if rendering is not None:
            return JSONResponse(tables.render_one(res.EVENTS, None, "v1", event, rendering, q.get("includeObject")))
        return JSONResponse(to_v1(event))
    try:
        fields = parse_field_selector(q.get("fieldSelector"))
    except ValueError as exc:
        raise err.bad_request(str(exc)) from None
    listed = svc.api.list_objects(t, opts)
    listed["items"] = [e for e in listed["items"] if fields(to_v1(e))]
    if rendering is not None:
        return JSONResponse(tables.render_list(res.EVENTS, None, "v1", listed, rendering, q.get("includeObject")))
    return JSONResponse(
        {
            "kind": "EventList",
            "apiVersion": API_VERSION,
            "metadata": listed["metadata"],
            "items": [to_v1(e) for e in listed["items"]],
        }
    )
