"""The local provider's reverse proxy: Caddy, configured live through its admin API, giving
each service a stable endpoint (its own listener) in front of one or more Ray clusters
split by weight.

Two Caddy processes, not one
----------------------------
A Caddy config change replaces every server of that process: the old servers shut down
gracefully, and Go's ``http.Server.Shutdown`` closes keep-alive connections that are idle
at that instant. A client that had just sent its next request on one gets the connection
closed without an answer; with SO_REUSEPORT listeners (Caddy on Linux) connections still
in the old socket's accept queue are reset too. Measured with wrk through one Caddy:
about four failed requests per reload at 8 connections. Nothing can retry them: the client
is the only one who knows. So the proxy is two Caddies, each adopted and restarted on its
own, ``data_dir/edge`` and ``data_dir/split``:

- the edge holds one server per route (the listener) and sends everything, marked with
  the route id in a header, to the split over a Unix socket. Its config changes only when
  a route is added, removed or moved to another address;
- the split holds each route's upstreams and weights (``weighted_round_robin``). A weight
  change reloads the split only; the connections it drops are the edge's, and the edge
  retries: Go's transport resends idempotent requests on a connection closed idle, and
  Caddy's ``tryAgain`` retries any failed GET and any request whose dial failed. The Unix
  socket is carried over across the split's reloads (one socket, no accept queue lost).

Contract
--------
- ``ensure_running()`` leaves both running and holding exactly the desired routes: each is
  adopted from its directory (pid, creation time and admin port, checked against its admin
  API, which listens on 127.0.0.1 only) so a control-plane restart drops no connection,
  or started detached (it outlives its starter; output to ``caddy.log`` in its directory)
  and given the routes. Every route operation calls it first, so a Caddy that died is
  restarted with the routes it was last given.
- The desired routes are kept in memory and in ``data_dir/routes.json`` (written after
  Caddy accepted a change, atomically), so a new ``CaddyProxy`` on the same ``data_dir``
  knows them. Caddy's autosave and ``--resume`` are not used (``persist: false``): the
  control plane needs the routes while Caddy is down anyway, a second copy could diverge,
  a resumed config with a listener now taken would keep Caddy from starting at all (loaded
  after start, the same failure comes back as Caddy's error text with the admin API up),
  and Caddy writes nothing outside ``data_dir``.
- ``set_route``/``remove_route`` are idempotent and return once Caddy runs the new config:
  new requests follow it, a removed route's port is closed. Requests taken by the replaced
  config go on in the background (Caddy stops old servers without waiting for them, except
  when it exits: ``modules/caddyhttp/app.go``, ``Stop``) until they finish or
  ``Timing.grace_period`` (Caddy's ``grace_period``) closes their connections.
- Across a weight change, GETs (and any request whose connection was refused) do not
  fail. A non-idempotent request that meets the split's reload on the edge's connection
  can still fail with 502: Caddy does not resend it, as it cannot know it was not served.
  Adding or removing a route reloads the edge, which may close other routes' idle
  keep-alive connections as described above.
- An upstream whose weight became 0, or that left the route, gets no new request, but
  requests already sent to it finish. Stop it only after ``drain(address)`` returned True
  (the split's ``/reverse_proxy/upstreams`` reports ``num_requests`` 0 for it).
- A request whose upstream refuses the connection is retried on another upstream (the
  passive health check takes the refusing one out for ``Timing.fail_duration``) for up
  to ``Timing.try_duration``.

Races
-----
- Writers are serialised by an exclusive lock on ``data_dir/proxy.lock`` (across threads,
  objects and processes). Anything else that edits either config is undone by the next
  operation, which loads the desired config whole when a Caddy holds another.
- A route is added to the split before the edge, and removed from the edge first, so the
  edge never sends a route the split does not hold. A crash between Caddy's accepting a
  change and ``routes.json`` being written leaves Caddy ahead of the file; the next
  ``ensure_running`` loads the file's routes back, and the caller sets the change again.
- In-flight counts are Caddy's, by dial address: two routes with the same upstream address
  share one count.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rayplane.providers.local.proxy_config import (
    SPLIT_SERVER,
    ProxyError,
    Route,
    Timing,
    Upstream,
    edge_config,
    edge_server,
    route_tag,
    routes_of,
    server_key,
    split_config,
    split_route,
)
from rayplane.providers.local.proxy_process import POLL, CaddyProcess, write_atomic

__all__ = ["CaddyProxy", "ProxyError", "Route", "Timing", "Upstream"]

ROUTES_FILE = "routes.json"
LOCK_FILE = "proxy.lock"
SOCKET_FILE = "split.sock"


class CaddyProxy:
    """The control plane's proxy, kept in ``data_dir``. ``admin_port`` is the edge's admin
    port (the split's is the next one); None picks free loopback ports at each start."""

    def __init__(
        self,
        data_dir: Path,
        admin_port: int | None = None,
        *,
        timing: Timing | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.timing = timing or Timing()
        change_timeout = 30.0
        self.edge = CaddyProcess(
            self.data_dir / "edge", admin_port, start_timeout=start_timeout, change_timeout=change_timeout
        )
        self.split = CaddyProcess(
            self.data_dir / "split",
            admin_port + 1 if admin_port is not None else None,
            start_timeout=start_timeout,
            change_timeout=change_timeout,
        )
        self._socket = self.split.directory / SOCKET_FILE
        if len(str(self._socket)) > 100:  # sun_path holds 108 bytes
            raise ProxyError(
                f"the proxy's data dir path is too long for a Unix socket: {self._socket}", code="BadState"
            )
        self._lock = threading.Lock()
        self._desired = self._read_desired()

    def desired(self) -> dict[str, Route]:
        """The routes Caddy is meant to hold (what was last given), by route id."""
        with self._exclusive():
            return dict(self._desired)

    def ensure_running(self) -> None:
        """Adopt or start both Caddies and make them hold the desired routes."""
        with self._exclusive():
            self._ensure_running_locked()

    def set_route(self, route_id: str, listen: tuple[str, int], upstreams: Sequence[Upstream]) -> Route:
        """Make route ``route_id`` listen on ``listen`` and split new requests over
        ``upstreams`` by weight; a no-op when that is what it has. Raises ProxyError
        (``BadRoute``, ``PortTaken``, ``AdminApi``), after which the route keeps what it had."""
        route = Route(route_id, (listen[0], int(listen[1])), tuple(upstreams))
        with self._exclusive():
            for other in self._desired.values():
                if other.route_id != route_id and other.listen[1] == route.listen[1]:
                    raise ProxyError(f"port {route.listen[1]} is taken by route {other.route_id}", code="PortTaken")
            self._ensure_running_locked()
            old = self._desired.get(route_id)
            if old == route:
                return route
            try:
                # The split first: the edge sends a route to the split only once it holds it.
                if old is None:  # before the catch-all route, which stays last
                    self.split.admin("PUT", f"/config/apps/http/servers/{SPLIT_SERVER}/routes/0", self._split(route))
                elif old.upstreams != route.upstreams:
                    self.split.admin("PATCH", f"/id/{route_tag(route_id)}", self._split(route))
                if old is None or old.listen != route.listen:
                    # POST on a key of the servers map sets or replaces that one server.
                    self.edge.admin("POST", f"/config/apps/http/servers/{server_key(route_id)}", self._edge(route))
            except ProxyError as exc:
                if exc.code == "AdminUnreachable":
                    # Whether Caddy made the change is unknown: load the wanted configs whole.
                    self._load_whole({**self._desired, route_id: route}, edge_first=False)
                else:
                    # Back to what the desired routes say (the split may be ahead of the edge).
                    with contextlib.suppress(ProxyError):
                        self._load_whole(self._desired, edge_first=False)
                    raise
            self._desired[route_id] = route
            self._write_desired()
            return route

    def remove_route(self, route_id: str) -> bool:
        """Remove the route; its port is closed when this returns (its in-flight requests go
        on up to the grace period). False if there was no such route."""
        with self._exclusive():
            self._ensure_running_locked()
            if route_id not in self._desired:
                return False
            try:
                self.edge.admin("DELETE", f"/id/{route_tag(route_id)}")  # the edge first: see Races
                self.split.admin("DELETE", f"/id/{route_tag(route_id)}")
            except ProxyError as exc:
                if exc.code != "AdminUnreachable":
                    raise
                rest = {k: v for k, v in self._desired.items() if k != route_id}
                self._load_whole(rest, edge_first=True)
            del self._desired[route_id]
            self._write_desired()
            return True

    def routes(self) -> dict[str, Route]:
        """The routes the Caddies hold now, read back from their configs."""
        return routes_of(self.edge.admin("GET", "/config/"), self.split.admin("GET", "/config/"))

    def in_flight(self) -> dict[str, int]:
        """Requests in flight per upstream address, as the split counts them (addresses it
        no longer knows and that have none are absent)."""
        counts: dict[str, int] = {}
        for entry in self.split.admin("GET", "/reverse_proxy/upstreams", timeout=5.0) or []:
            address = str(entry["address"])
            counts[address] = counts.get(address, 0) + int(entry["num_requests"])
        return counts

    def drain(self, address: str, *, timeout: float = 30.0) -> bool:
        """Wait until ``address`` has no request in flight; False if it still had at the
        deadline. Call it after the change that gave the upstream weight 0 (or removed it)
        returned: before that, new requests may still be sent to it."""
        deadline = time.monotonic() + timeout
        while True:
            if self.in_flight().get(address, 0) == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def stop(self) -> None:
        """Stop both gracefully (the grace period, then KILL), the edge first. The desired
        routes are kept: ``ensure_running`` starts them again with them."""
        with self._exclusive():
            self.edge.stop(self.timing.grace_period)
            self.split.stop(self.timing.grace_period)

    def close(self) -> None:
        """Release the HTTP clients; the Caddies keep running."""
        self.edge.close()
        self.split.close()

    def __enter__(self) -> CaddyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_running_locked(self) -> None:
        self.split.ensure(lambda port: split_config(port, [], self._socket, self.timing))
        self.edge.ensure(lambda port: edge_config(port, [], self._socket, self.timing))
        # The edge first when it holds a route that is no longer wanted (see Races).
        held = routes_of(self.edge.admin("GET", "/config/"), self.split.admin("GET", "/config/"))
        self._load_whole(self._desired, edge_first=bool(held.keys() - self._desired.keys()))

    def _load_whole(self, routes: dict[str, Route], *, edge_first: bool) -> None:
        """Make both Caddies hold exactly ``routes`` (each loaded only if it holds other);
        the edge first when routes go away, else the split (see Races)."""
        wanted = list(routes.values())
        assert self.split.admin_port is not None
        assert self.edge.admin_port is not None
        split = split_config(self.split.admin_port, wanted, self._socket, self.timing)
        edge = edge_config(self.edge.admin_port, wanted, self._socket, self.timing)
        steps = [(self.edge, edge), (self.split, split)]
        for caddy, config in steps if edge_first else reversed(steps):
            caddy.load_if_changed(config)

    def _split(self, route: Route) -> object:
        return split_route(route, self.timing)

    def _edge(self, route: Route) -> object:
        return edge_server(route, self._socket, self.timing)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This object's lock, then the data dir's (other objects and processes); the
        desired routes are read again under it, as another writer may have changed them."""
        with self._lock, (self.data_dir / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._desired = self._read_desired()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_desired(self) -> dict[str, Route]:
        try:
            raw = json.loads((self.data_dir / ROUTES_FILE).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ProxyError(
                f"cannot read {ROUTES_FILE} in the proxy's data dir", code="BadState", detail=str(exc)
            ) from exc
        routes = (Route.from_dict(r) for r in raw.get("routes", []))
        return {r.route_id: r for r in routes}

    def _write_desired(self) -> None:
        routes = [self._desired[k].to_dict() for k in sorted(self._desired)]
        write_atomic(self.data_dir / ROUTES_FILE, {"routes": routes})
