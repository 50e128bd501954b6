"""``rayplane jobs``: submit Ray jobs (with a working directory), follow logs, stop them."""

from __future__ import annotations

import io
import os
import queue
import shlex
import sys
import threading
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import httpx
import typer

from cli.client import JOB_TERMINAL, ApiUnreachable, Job, RayplaneClient
from cli.context import (
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    CliError,
    OutputOption,
    client,
    fail,
    fmt,
    handle_errors,
    resolve_cluster,
)
from cli.output import notice, render_list, render_one, styled_state
from cli.specs import SpecError, parse_labels
from cli.views import JOB_COLUMNS, job_fields

app = typer.Typer(
    name="jobs",
    help="Submit Ray jobs to a cluster, follow their logs, stop them.\n\n"
    'Example: [bold]rayplane jobs submit --cluster demo --follow -- python -c "print(1)"[/bold]',
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
    rich_markup_mode="rich",
)

ClusterOption = Annotated[
    str,
    typer.Option("--cluster", "-c", help="Cluster name or id (env RAYPLANE_CLUSTER).", envvar="RAYPLANE_CLUSTER"),
]
JobArg = Annotated[str, typer.Argument(help="Job id (job_…) or submission id.", show_default=False)]
#: Never packed into a working directory: VCS data, caches, virtualenvs, Rayplane's own state.
SKIP_DIRS = frozenset({".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".rayplane"})
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_directory(root: Path) -> bytes:
    """A zip of ``root`` without :data:`SKIP_DIRS` or ``*.pyc``; byte-identical for identical
    content (sorted entries, fixed timestamps), so re-uploads reuse the same package."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if filename.endswith(".pyc") or not path.is_file():
                    continue
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), ZIP_EPOCH)
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


def entrypoint_text(args: Sequence[str]) -> str:
    """One argument is a shell command as is; several are quoted for the shell and joined."""
    return args[0] if len(args) == 1 else " ".join(_quote(a) for a in args)


def _quote(arg: str) -> str:
    """Like ``shlex.quote``, but ``"print('hi')"`` rather than ``'print('"'"'hi'"'"')'``."""
    quoted = shlex.quote(arg)
    if quoted != arg and "'" in arg and not any(ch in arg for ch in '"$`\\!'):
        return f'"{arg}"'
    return quoted


def resolve_job(api: RayplaneClient, cluster_id: str, ref: str) -> Job:
    if ref.startswith("job_"):
        return api.get_job(cluster_id, ref)
    for job in api.iter_jobs(cluster_id):
        if job["submission_id"] == ref:
            return job
    fail(f"no job {ref!r} on this cluster (see `rayplane jobs list`)", EXIT_NOT_FOUND)


def settle(api: RayplaneClient, job: Job, within: float) -> Job:
    """Poll until the job's status is terminal, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while job["status"] not in JOB_TERMINAL and time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        job = api.get_job(job["cluster_id"], job["id"])
    return job


def _pump(api: RayplaneClient, job: Job, sink: queue.Queue[tuple[str, str]]) -> None:
    """Read the job's log stream into ``sink``: ``("text", chunk)``… then ``("end", "clean"|"dropped")``."""
    end = "clean"
    try:
        for chunk in api.follow_job_logs(job["cluster_id"], job["id"]):
            sink.put(("text", chunk))
    except (httpx.TransportError, ApiUnreachable):
        end = "dropped"
    except Exception as exc:  # noqa: BLE001 - handed to the main thread, which reports it
        sink.put(("error", f"{type(exc).__name__}: {exc}"))
        return
    sink.put(("end", end))


def follow(api: RayplaneClient, job: Job, timeout: float | None = None, cluster: str | None = None) -> Job:
    """Stream the job's log to stdout until it ends; the job, in its terminal status.

    If the stream drops while the job runs, it is reopened and the text already written
    is skipped. The worker records the final status shortly after Ray reports it, hence
    the polling once the stream has ended. The stream is read by a thread, so that with
    ``timeout`` the wait ends at the deadline (:class:`CliError`, exit 5) even while the job
    prints nothing.
    """
    deadline = time.monotonic() + timeout if timeout else None
    hint = f"rayplane jobs logs --cluster {cluster or job['cluster_id']} {job['id']} --follow"

    def check_deadline() -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError(
                f"timed out after {timeout:g}s following job {job['id']} (it is {job['status']}; the job goes on,"
                f" follow it with: {hint})",
                EXIT_TIMEOUT,
            )

    written = 0
    while True:
        received, end = 0, ""
        sink: queue.Queue[tuple[str, str]] = queue.Queue()
        threading.Thread(target=_pump, args=(api, job, sink), daemon=True).start()
        while not end:
            try:
                kind, value = sink.get(timeout=min(1.0, _left(deadline) or 1.0))
            except queue.Empty:
                check_deadline()
                continue
            if kind == "error":
                raise CliError(f"reading the log of {job['id']} failed: {value}")
            if kind == "end":
                end = value
                break
            fresh = value[max(0, written - received) :]
            received += len(value)
            if fresh:
                sys.stdout.write(fresh)
                sys.stdout.flush()
                written += len(fresh)
            check_deadline()
        left = _left(deadline)
        job = settle(api, job, min(60.0 if end == "clean" else 2.0, left if left is not None else 60.0))
        if job["status"] in JOB_TERMINAL:
            return job
        check_deadline()
        if end != "clean":
            time.sleep(min(1.0, _left(deadline) or 1.0))


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (at least a few milliseconds), or None without one."""
    return None if deadline is None else max(0.01, deadline - time.monotonic())


def follow_or_detach(api: RayplaneClient, job: Job, cluster: str, timeout: float | None = None) -> Job:
    """:func:`follow`, where Ctrl-C stops following but leaves the job running."""
    try:
        return follow(api, job, timeout, cluster)
    except KeyboardInterrupt:
        hint = f"rayplane jobs stop --cluster {cluster} {job['id']}"
        raise CliError(
            f"stopped following {job['id']}; the job keeps running (to stop it: {hint})", EXIT_INTERRUPTED
        ) from None


def report(job: Job) -> int:
    """Print the job's outcome on stderr; its exit code (0 only for SUCCEEDED)."""
    status = job["status"]
    line = f"job {job['id']} {status}"
    if job.get("driver_exit_code") not in (None, 0):
        line += f" (exit code {job['driver_exit_code']})"
    if status != "SUCCEEDED" and job.get("message"):
        # Ray appends the last lines of the log to the message; they were printed already.
        line += ": " + str(job["message"]).split("\n")[0].split(", last available logs")[0]
    notice(line, styled_state(status) or "")
    return EXIT_OK if status == "SUCCEEDED" else EXIT_FAILURE


@app.command(context_settings={"allow_interspersed_args": False}, epilog=EXIT_CODES_HELP)
@handle_errors
def submit(
    cluster: ClusterOption,
    entrypoint: Annotated[
        list[str], typer.Argument(help="The command to run (after --).", metavar="COMMAND...", show_default=False)
    ],
    working_dir: Annotated[
        Path | None,
        typer.Option(help="Directory to upload and run in (skips .git, __pycache__, .venv).", show_default=False),
    ] = None,
    pip: Annotated[
        list[str] | None, typer.Option(help="pip requirement to install (repeatable).", metavar="PKG")
    ] = None,
    env: Annotated[list[str] | None, typer.Option(help="Environment variable (repeatable).", metavar="K=V")] = None,
    num_cpus: Annotated[float | None, typer.Option(help="CPUs reserved for the entrypoint.", min=0)] = None,
    num_gpus: Annotated[float | None, typer.Option(help="GPUs reserved for the entrypoint.", min=0)] = None,
    submission_id: Annotated[str | None, typer.Option(help="Your own id for the job (unique per cluster).")] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream the logs; exit with the job's result.")
    ] = False,
    timeout: Annotated[float | None, typer.Option(help="With --follow: give up after this many seconds.")] = None,
    output: OutputOption = None,
) -> None:
    """Submit a job: upload the working directory (if any), then run the command on the cluster.

    With --follow the log streams to stdout and the exit code is the job's result:
    0 SUCCEEDED, 1 FAILED or STOPPED. Ctrl-C stops following, not the job.

    Examples:
      [bold]rayplane jobs submit --cluster demo --working-dir . --pip torch --follow -- python train.py -e 3[/bold]
      [bold]rayplane jobs submit -c demo --env MODE=fast -- "python -c 'print(42)'"[/bold]
    """
    try:
        env_vars = parse_labels(env)
    except SpecError as exc:
        fail(str(exc).replace("label", "--env"), EXIT_USAGE)
    if working_dir is not None and not working_dir.is_dir():
        fail(f"--working-dir {working_dir}: not a directory", EXIT_USAGE)
    with client() as api:
        c = resolve_cluster(api, cluster)
        runtime_env: dict[str, object] = {"env_vars": env_vars} if env_vars else {}
        if pip:
            runtime_env["pip"] = list(pip)
        if working_dir is not None:
            data = zip_directory(working_dir)
            package = api.upload_package(c["id"], data)
            notice(f"Uploaded {working_dir} ({package['size_bytes'] / 1024:.1f} KiB) as {package['uri']}", "dim")
            runtime_env["working_dir"] = package["uri"]
        body: dict[str, object] = {"entrypoint": entrypoint_text(entrypoint), "runtime_env": runtime_env}
        for key, value in (("entrypoint_num_cpus", num_cpus), ("entrypoint_num_gpus", num_gpus)):
            if value is not None:
                body[key] = value
        if submission_id:
            body["submission_id"] = submission_id
        job = api.submit_job(c["id"], body)
        notice(f"Submitted {job['id']} to {c['name']}")
        if not follow_:
            render_one(job, job_fields, fmt(output))
            if fmt(output) == "table":
                notice(f"Follow it with: rayplane jobs logs --cluster {c['name']} {job['id']} --follow", "dim")
            return
        job = follow_or_detach(api, job, c["name"], timeout)
    raise typer.Exit(report(job))


@app.command("list", epilog=EXIT_CODES_HELP)
@handle_errors
def list_(cluster: ClusterOption, output: OutputOption = None) -> None:
    """List a cluster's jobs, oldest first.

    Example: [bold]rayplane jobs list --cluster demo[/bold]
    """
    with client() as api:
        c = resolve_cluster(api, cluster)
        items = list(api.iter_jobs(c["id"]))
    render_list(items, JOB_COLUMNS, fmt(output), empty=f"No jobs on {c['name']}.")


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def get(cluster: ClusterOption, job: JobArg, output: OutputOption = None) -> None:
    """Show one job: status, exit code, entrypoint, runtime environment.

    Example: [bold]rayplane jobs get --cluster demo job_01jd…[/bold]
    """
    with client() as api:
        render_one(resolve_job(api, resolve_cluster(api, cluster)["id"], job), job_fields, fmt(output))


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def logs(
    cluster: ClusterOption,
    job: JobArg,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Stream until the job ends.")] = False,
) -> None:
    """Print a job's log (kept after the job and its cluster are gone).

    Example: [bold]rayplane jobs logs --cluster demo job_01jd… --follow[/bold]
    """
    with client() as api:
        j = resolve_job(api, resolve_cluster(api, cluster)["id"], job)
        if follow_:
            report(follow_or_detach(api, j, cluster))
            return
        text = api.job_logs(j["cluster_id"], j["id"])
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")


@app.command(epilog=EXIT_CODES_HELP)
@handle_errors
def stop(
    cluster: ClusterOption,
    job: JobArg,
    wait_: Annotated[bool, typer.Option("--wait", "-w", help="Wait until the job has ended.")] = False,
    output: OutputOption = None,
) -> None:
    """Stop a running job.

    Example: [bold]rayplane jobs stop --cluster demo job_01jd… --wait[/bold]
    """
    with client() as api:
        j = resolve_job(api, resolve_cluster(api, cluster)["id"], job)
        j = api.stop_job(j["cluster_id"], j["id"])
        notice(f"Stop requested for {j['id']}")
        if wait_:
            j = settle(api, j, 120)
    render_one(j, job_fields, fmt(output))
