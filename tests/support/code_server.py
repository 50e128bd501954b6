"""A directory served as a zip over HTTP: a service's code at a URI that nodes fetch themselves.

On Azure a service's ``runtime_env.working_dir`` must be a remote URI (the API refuses a
local path, which an AKS node could not read); the emulated Serve downloads ``http(s)://``
archives as a node does, so tests publish their applications here.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def zipped(directory: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(directory).as_posix())
    return buf.getvalue()


@contextmanager
def serving(directory: Path, name: str = "code.zip") -> Iterator[str]:
    """Yield ``http://127.0.0.1:<port>/<name>``, answering with ``directory`` zipped (404
    for any other path) until the block ends."""
    body = zipped(directory)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != f"/{name}":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
