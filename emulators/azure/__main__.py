"""``python -m emulators.azure --port PORT --data-dir DIR [--host 127.0.0.1] [--http]``.

Serves the emulator on one origin. HTTPS by default, with the certificate from
:func:`emulators.azure.tls.ensure_tls` (clients trust ``DIR/ca.pem``); ``--http`` serves plain
HTTP. ``--port 0`` picks a free port. Once the server accepts connections it writes the origin
(e.g. ``https://127.0.0.1:41234``, no newline) to ``DIR/origin`` and prints one line,
``emulator listening on ORIGIN``, to stdout. SIGTERM or SIGINT stop it gracefully.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn

from emulators.azure.app import EmulatorSettings, create_app
from emulators.azure.keys import atomic_write
from emulators.azure.tls import DEFAULT_HOSTS, ensure_tls


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m emulators.azure", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--data-dir", type=Path, required=True, help="where state persists")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind and to name in the origin")
    parser.add_argument("--http", action="store_true", help="serve plain HTTP instead of HTTPS")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return parser.parse_args(argv)


def format_origin(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port``, with brackets around an IPv6 literal."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (uvicorn listens on it), so the real port is known up front."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that calls ``on_ready`` once it is accepting connections."""

    def __init__(
        self, config: uvicorn.Config, on_ready: Callable[[], None], on_stop: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._on_stop = on_stop

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Long-lived responses (watches) end first, so they do not hold the graceful timeout.
        self._on_stop()
        # A graceful close of a TLS connection waits for the client's close_notify, which an
        # idle pooled client (requests, azure-core) never sends: uvicorn would then sit out its
        # whole graceful timeout. Drop idle connections at once; busy ones still finish.
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
        await super().shutdown(sockets=sockets)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until signalled; returns the process exit code."""
    args = parse_args(argv)
    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = bind_socket(args.host, args.port)
    port = sock.getsockname()[1]
    origin = format_origin("http" if args.http else "https", args.host, port)
    tls = None if args.http else ensure_tls(data_dir, list(dict.fromkeys([args.host, *DEFAULT_HOSTS])))
    app = create_app(EmulatorSettings(data_dir=data_dir, origin=origin))
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.log_level in ("info", "debug"),
        timeout_graceful_shutdown=5,
        server_header=False,
        ssl_certfile=tls.cert_path if tls else None,
        ssl_keyfile=tls.key_path if tls else None,
    )

    def announce() -> None:
        atomic_write(data_dir / "origin", origin.encode())
        print(f"emulator listening on {origin}", flush=True)

    def stopping() -> None:
        for hook in app.state.context.stopping:
            hook()

    AnnouncingServer(config, announce, stopping).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
