"""``rayplane doctor``: what stands between this shell and a working Rayplane, and what to do.

It checks, over HTTP and by reading local files and the environment only:

* where the URL and credential come from, and that the URL's port is the configured one
  (``RAYPLANE_API_PORT``, ``.rayplane/dev.env``);
* that the API answers (``/healthz``) and is ready (``/readyz``: the database and the broker);
  when it does not and its URL is on this machine, whether another program holds the port
  (then ``make run`` cannot start there) and a free port to use instead;
* that the credential works (``GET /v1/tenant``);
* a Ray token file in the home directory (``~/.ray/auth_token``) or ``RAY_*`` variables, which
  a Ray started by Rayplane from this shell would pick up;
* in demo mode, that the emulated Azure cloud ``azure-demo`` is READY;
* clusters in a busy state (PROVISIONING, STARTING, UPDATING, STOPPING, DELETING) for longer
  than ``--stuck-minutes``.

Each problem comes with what to do. Exit 0 when all is well, 1 otherwise.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.text import Text

from cli.client import ApiError, ApiUnreachable, Cluster, RayplaneClient
from cli.config import find_dev_env, read_env_file
from cli.context import EXIT_CODES_HELP, EXIT_FAILURE, EXIT_OK, OutputOption, client, fmt, handle_errors, target
from cli.output import duration, emit, out, parse_time

app = typer.Typer()
BUSY = ("PENDING", "PROVISIONING", "STARTING", "UPDATING", "STOPPING", "DELETING")
DEMO_CLOUD = "azure-demo"


@dataclass
class Check:
    """One finding: ``ok`` or not, what was seen, and what to do about it."""

    check: str
    ok: bool
    detail: str
    fix: str | None = None


@dataclass
class Doctor:
    """Runs the checks in order; a check that needs the API is skipped when it does not answer."""

    stuck_minutes: float
    home: Path
    env: dict[str, str]
    found: list[Check]

    def add(self, check: str, ok: bool, detail: str, fix: str | None = None) -> None:
        self.found.append(Check(check, ok, detail, None if ok else fix))

    # ---- local ----------------------------------------------------------------------
    def configuration(self) -> None:
        t = target()
        if t.has_credential:
            self.add("credential", True, f"from {t.credential_source}")
        else:
            self.add(
                "credential",
                False,
                f"none for {t.api_url}",
                "run `rayplane login`, set RAYPLANE_API_KEY, or run in the checkout where `make run` wrote"
                " .rayplane/dev.env",
            )
        port = urlsplit(t.api_url).port or (443 if t.api_url.startswith("https") else 80)
        wanted = self.env.get("RAYPLANE_API_PORT")
        dev_env = find_dev_env(Path.cwd())
        dev_url = read_env_file(dev_env).get("RAYPLANE_API_URL") if dev_env else None
        local = urlsplit(t.api_url).hostname in ("127.0.0.1", "localhost", "::1")
        if wanted and local and str(port) != wanted:
            self.add(
                "port",
                False,
                f"RAYPLANE_API_PORT is {wanted} but the API URL {t.api_url} (from {t.url_source}) uses port {port}",
                f"use --api-url http://127.0.0.1:{wanted}, or unset RAYPLANE_API_PORT if the API runs on {port}",
            )
        elif dev_url and local and dev_url.rstrip("/") != t.api_url:
            self.add(
                "port",
                False,
                f"{dev_env} says the dev API is at {dev_url}, but the CLI talks to {t.api_url} (from {t.url_source})",
                f"unset what sets {t.url_source}, or pass --api-url {dev_url}",
            )
        else:
            self.add("port", True, f"{t.api_url} (from {t.url_source})")

    def ray_environment(self) -> None:
        token = self.home / ".ray" / "auth_token"
        if token.exists():
            self.add(
                "ray token file",
                False,
                f"{token} exists: a Ray started from this account reads it and expects that token",
                f"if Rayplane did not write it (a `ray.init()` outside a cluster can), remove it: rm {token}",
            )
        else:
            self.add("ray token file", True, f"no {token}")
        names = sorted(k for k in self.env if k.startswith("RAY_"))
        if names:
            self.add(
                "ray environment",
                False,
                f"{', '.join(names)} set in this environment: local Ray clusters and jobs started from it inherit them",
                f"unset them unless you mean to change Ray's behaviour: unset {' '.join(names)}",
            )
        else:
            self.add("ray environment", True, "no RAY_* variables")

    # ---- over HTTP ------------------------------------------------------------------
    def api(self, api: RayplaneClient) -> bool:
        """/healthz and /readyz; False when the API does not answer at all."""
        try:
            alive = api.probe("/healthz")
        except ApiUnreachable as exc:
            self.add(
                "api",
                False,
                str(exc),
                "start the control plane (`make run`, or `rayplane dev`), or point at it with --api-url"
                " or RAYPLANE_API_URL",
            )
            self.port_holder(api.base_url)
            return False
        if alive.status_code != 200:
            self.add("api", False, f"/healthz answered {alive.status_code}", "check that the URL is Rayplane's API")
            self.port_holder(api.base_url)
            return False
        self.add("api", True, f"answers at {api.base_url}")
        ready = api.probe("/readyz")
        body = ready.json() if ready.headers.get("content-type", "").endswith("json") else {}
        if ready.status_code == 200:
            checks = body.get("checks") or {}
            self.add("database and broker", True, ", ".join(f"{k} {v}" for k, v in checks.items()) or "ready")
        else:
            self.add(
                "database and broker",
                False,
                str(body.get("detail") or f"/readyz answered {ready.status_code}"),
                "Postgres or Redis is down: see the output of `rayplane dev` (or check RAYPLANE_DATABASE_URL"
                " and RAYPLANE_REDIS_URL of the API)",
            )
        return True

    def port_holder(self, url: str) -> None:
        """Whether something that is not Rayplane's API holds a local API URL's port."""
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not _listening(parts.hostname, port):
            self.add("free port", True, f"nothing listens on port {port}: `make run` can start there")
            return
        self.add(
            "free port",
            False,
            f"another program listens on port {port} and does not answer as Rayplane's API",
            f"find it with `ss -ltnp 'sport = :{port}'` and stop it, or start Rayplane on a free port:"
            f" RAYPLANE_API_PORT={_free_port()} make run",
        )

    def credential_works(self, api: RayplaneClient) -> bool:
        try:
            tenant = api.get_tenant()
        except ApiError as exc:
            fix = "run `rayplane login` with a valid key" if exc.status == 401 else "see the error above"
            self.add("sign-in", False, f"GET /v1/tenant: {exc}", fix)
            return False
        self.add("sign-in", True, f"tenant {tenant['name']}")
        return True

    def demo_cloud(self, api: RayplaneClient) -> None:
        demo = self.env.get("RAYPLANE_DEMO_AZURE", "").lower() in ("1", "true", "yes")
        cloud = next((c for c in api.list_clouds() if c["name"] == DEMO_CLOUD), None)
        if cloud is None:
            if demo:
                self.add(
                    "azure emulator",
                    False,
                    f"RAYPLANE_DEMO_AZURE is set here, but there is no {DEMO_CLOUD} cloud",
                    "restart the control plane with it: RAYPLANE_DEMO_AZURE=1 make run",
                )
            return
        if cloud["status"] == "READY":
            self.add("azure emulator", True, f"cloud {DEMO_CLOUD} is READY")
            return
        reason = f": {cloud['status_reason']}" if cloud.get("status_reason") else ""
        self.add(
            "azure emulator",
            False,
            f"cloud {DEMO_CLOUD} is {cloud['status']}{reason}",
            "the emulator runs inside `rayplane dev`: restart it with RAYPLANE_DEMO_AZURE=1 make run,"
            f" then `rayplane clouds validate {DEMO_CLOUD} --wait`",
        )

    def stuck_clusters(self, api: RayplaneClient) -> None:
        now = datetime.now(UTC)
        stuck = []
        for c in api.iter_clusters(states=list(BUSY)):
            since = self._in_state_since(api, c)
            if since is not None and (now - since).total_seconds() > self.stuck_minutes * 60:
                stuck.append(f"{c['name']} {c['state']} for {duration((now - since).total_seconds())}")
        if stuck:
            self.add(
                "clusters",
                False,
                f"busy longer than {self.stuck_minutes:g} min: {'; '.join(stuck)}",
                "see why with `rayplane clusters events NAME`; a cluster that never settles can be deleted"
                " (`rayplane clusters delete NAME --yes`) or, once FAILED, retried",
            )
        else:
            self.add("clusters", True, f"none busy for longer than {self.stuck_minutes:g} min")

    @staticmethod
    def _in_state_since(api: RayplaneClient, c: Cluster) -> datetime | None:
        """When the cluster entered its state: its last event into it, else its last update."""
        cursor, entered = None, None
        while True:
            page = api.list_events(c["id"], cursor=cursor)
            for event in page["items"]:
                if event.get("to_state") == c["state"]:
                    entered = event["at"]
            cursor = page["next_cursor"]
            if not cursor:
                return parse_time(entered or c["updated_at"])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(found: list[Check]) -> None:
    for item in found:
        line = Text()
        line.append("ok  " if item.ok else "FAIL", style="green" if item.ok else "bold red")
        line.append(f"  {item.check:<20} {item.detail}")
        out().print(line, soft_wrap=True)
        if item.fix:
            out().print(Text(f"      → {item.fix}", style="yellow"), soft_wrap=True)


@app.command(rich_help_panel="Help", epilog=EXIT_CODES_HELP)
@handle_errors
def doctor(
    stuck_minutes: Annotated[
        float, typer.Option(help="A cluster busy for longer than this many minutes is reported.", min=0)
    ] = 15,
    output: OutputOption = None,
) -> None:
    """Check that Rayplane works from here, and say what to do about each problem.

    Checks the API (/healthz), its database and broker (/readyz), your credential, the
    port (and, when the API does not answer, whether another program holds it), Ray
    settings that leak in from this shell (~/.ray/auth_token, RAY_* variables),
    the Azure emulator in demo mode, and clusters stuck in a busy state. Exit 0 when all is
    well, 1 otherwise.

    Example: [bold]rayplane doctor[/bold]
    """
    doc = Doctor(stuck_minutes, Path.home(), dict(os.environ), [])
    doc.configuration()
    doc.ray_environment()
    has_credential = target().has_credential
    with RayplaneClient(target().api_url, timeout=10) as bare:
        answers = doc.api(bare)
    if answers and has_credential:
        with client(timeout=10) as api:
            if doc.credential_works(api):
                doc.demo_cloud(api)
                doc.stuck_clusters(api)
    form = fmt(output)
    if form == "table":
        render(doc.found)
    else:
        emit([asdict(c) for c in doc.found], form)
    raise typer.Exit(EXIT_OK if all(c.ok for c in doc.found) else EXIT_FAILURE)
