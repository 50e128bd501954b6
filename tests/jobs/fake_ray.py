"""A stand-in for Ray's Jobs REST API (an external system), served over real HTTP from a thread.

It answers the routes Rayplane calls, as Ray's dashboard does: ``POST /api/jobs/``,
``GET /api/jobs/{id}``, ``GET /api/jobs/{id}/logs``, ``POST /api/jobs/{id}/stop`` and
``PUT /api/packages/gcs/{name}``; an unknown job is a 404, a duplicate submission id a 400.
Every request is recorded, and ``fail_with`` makes every answer that status;
``refuse_submit`` makes a submission answer 400 with that text, as Ray's job head answers a
refused submission (``traceback.format_exc()`` as ``text/plain``).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeRay:
    url: str = ""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    packages: dict[str, bytes] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    fail_with: int | None = None
    refuse_submit: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def job(self, submission_id: str, status: str = "RUNNING", logs: str = "", **fields: Any) -> None:
        """Put a job in the fake cluster as Ray would report it."""
        with self.lock:
            self.jobs[submission_id] = {"submission_id": submission_id, "status": status, **fields}
            self.logs[submission_id] = logs

    def seen(self, method: str, prefix: str = "/api/") -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    # -- what the handler calls ----------------------------------------------------------
    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if self.fail_with is not None:
            return self.fail_with, {"error": "injected"}
        parts = path.strip("/").split("/")  # api, jobs, <id>, [logs|stop]
        with self.lock:
            if method == "POST" and parts == ["api", "jobs"] and self.refuse_submit is not None:
                return 400, self.refuse_submit
            if method == "POST" and parts == ["api", "jobs"]:
                doc = json.loads(body)
                sid = doc["submission_id"]
                if sid in self.jobs:
                    return 400, {"error": f"Job with submission_id {sid} already exists."}
                self.jobs[sid] = {"submission_id": sid, "status": "PENDING", "request": doc}
                self.logs[sid] = ""
                return 200, {"submission_id": sid}
            if method == "PUT" and parts[:3] == ["api", "packages", "gcs"] and len(parts) == 4:
                self.packages[parts[3]] = body
                return 200, {}
            if parts[:2] != ["api", "jobs"] or len(parts) < 3 or parts[2] not in self.jobs:
                return 404, {"error": "not found"}
            sid, rest = parts[2], parts[3:]
            if method == "GET" and rest == []:
                return 200, self.jobs[sid]
            if method == "GET" and rest == ["logs"]:
                return 200, {"logs": self.logs[sid]}
            if method == "POST" and rest == ["stop"]:
                running = self.jobs[sid]["status"] in ("PENDING", "RUNNING")
                if running:
                    self.jobs[sid]["status"] = "STOPPED"
                return 200, {"stopped": running}
        return 404, {"error": "no such route"}


def _handler(ray: FakeRay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with ray.lock:
                ray.requests.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            status, doc = ray.answer(self.command, self.path, body)
            text = isinstance(doc, str)
            data = doc.encode() if text else json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815 - http.server's naming

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_ray(tls: tuple[Path, Path] | None = None) -> Iterator[FakeRay]:
    """A running :class:`FakeRay` on a free port of 127.0.0.1; ``tls`` is (cert, key) for HTTPS."""
    ray = FakeRay()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ray))
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    ray.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ray
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
