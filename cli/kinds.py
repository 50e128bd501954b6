"""The kinds of resource the lifecycle commands share code for: clusters and services.

Both are addressed by name or id, have a state, a timeline of events and 202 answers with an
operation to follow, and are stopped, started and deleted the same way; a :class:`Kind` is
what differs (the words, the id prefix, the client methods), so that resolving a name,
watching an operation and the stop/start/delete commands are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cli.client import Accepted, Cluster, ClusterEvent, Page, RayplaneClient, Resource, Service, Versioned

R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class Kind(Generic[R]):
    """How the shared commands reach one kind of resource."""

    noun: str  #: "cluster"
    group: str  #: "clusters": the command group, in hints such as ``rayplane clusters get NAME``
    id_prefix: str  #: "cls_"
    get: Callable[[RayplaneClient, str], Versioned[R]]
    iterate: Callable[[RayplaneClient, list[str] | None], Iterator[R]]
    events: Callable[[RayplaneClient, str, str | None], Page[ClusterEvent]]
    #: stop, start, retry, rollback or delete: the 202 answer.
    act: Callable[[RayplaneClient, str, str], Accepted[R]]
    #: How to follow a request to ``goal`` after Ctrl-C (name, goal): the words after "Follow it with: ".
    follow_hint: Callable[[str, str], str]
    #: What a failed operation's message gains from the resource (a service's Serve error), if anything.
    failure: Callable[[R], str | None] = lambda _r: None

    def is_id(self, ref: str) -> bool:
        return ref.startswith(self.id_prefix)


def _cluster_act(api: RayplaneClient, cluster_id: str, action: str) -> Accepted[Cluster]:
    if action == "delete":
        return api.delete_cluster(cluster_id)
    if action in ("stop", "start", "retry"):
        return api.cluster_action(cluster_id, action)  # type: ignore[arg-type]
    raise ValueError(f"clusters have no action {action!r}")


def _service_act(api: RayplaneClient, service_id: str, action: str) -> Accepted[Service]:
    if action == "delete":
        return api.delete_service(service_id)
    if action in ("stop", "start", "retry", "rollback"):
        return api.service_action(service_id, action)  # type: ignore[arg-type]
    raise ValueError(f"services have no action {action!r}")


def _service_failure(s: Service) -> str | None:
    return s.get("failure")


CLUSTERS: Kind[Cluster] = Kind(
    noun="cluster",
    group="clusters",
    id_prefix="cls_",
    get=lambda api, ref: api.get_cluster(ref),
    iterate=lambda api, states: api.iter_clusters(states=states),
    events=lambda api, ref, cursor: api.list_events(ref, cursor=cursor),
    act=_cluster_act,
    follow_hint=lambda name, goal: (
        f"rayplane clusters wait {name} --state {goal} (or look: rayplane clusters get {name})"
    ),
)

SERVICES: Kind[Service] = Kind(
    noun="service",
    group="services",
    id_prefix="svc_",
    get=lambda api, ref: api.get_service(ref),
    iterate=lambda api, states: api.iter_services(states=states),
    events=lambda api, ref, cursor: api.list_service_events(ref, cursor=cursor),
    act=_service_act,
    follow_hint=lambda name, _goal: (
        f"rayplane services events {name} --follow (or look: rayplane services status {name})"
    ),
    failure=_service_failure,
)

AnyKind = Kind[Any]
