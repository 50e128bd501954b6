"""How records look in tables and detail views: clusters, events and jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from cli.client import Cluster, ClusterEvent, Job
from cli.output import Column, age, clock, duration, parse_time, styled_state


def group_cell(cluster: Cluster, group: dict[str, Any]) -> str:
    """``cpu 1/1 (1-2)``: a group's ready/wanted nodes and its bounds."""
    observed = ((cluster.get("observed") or {}).get("groups") or {}).get(group["name"]) or {}
    bounds = f"{group.get('min_nodes', 0)}-{group.get('max_nodes', 1)}" + (" spot" if group.get("spot") else "")
    if "wanted" not in observed:
        return f"{group['name']} ({bounds})"
    return f"{group['name']} {observed.get('ready', 0)}/{observed['wanted']} ({bounds})"


def workers_cell(cluster: Cluster) -> str:
    return ", ".join(group_cell(cluster, g) for g in cluster["spec"].get("worker_groups") or []) or "-"


CLUSTER_COLUMNS = [
    Column("NAME", lambda c: c["name"]),
    Column("STATE", lambda c: c["state"], style_of=styled_state),
    Column("HEAD", lambda c: (c["spec"].get("head") or {}).get("vm_size")),
    Column("WORKERS (ready/wanted)", workers_cell, max_width=60),
    Column("AGE", lambda c: age(c["created_at"])),
    Column("ID", lambda c: c["id"]),
]


def cluster_fields(c: Cluster, cloud: str | None = None) -> Sequence[tuple[str, object]]:
    """Rows of the detail view; ``cloud`` names the cloud (default: its id)."""
    spec = c["spec"]
    state = c["state"] + (f" ({c['state_reason']})" if c.get("state_reason") else "")
    groups = [f"{group_cell(c, g)}  {g['vm_size']}" for g in spec.get("worker_groups") or []]
    rows: list[tuple[str, object]] = [
        ("Name", c["name"]),
        ("ID", c["id"]),
        ("State", state if c["state"] != "FAILED" else f"{state} [{c.get('state_code') or '-'}]"),
        ("Desired", c["desired_state"]),
        ("Cloud", cloud or c.get("cloud_id")),
        ("Ray", spec.get("ray_version")),
        ("Head", head_cell(spec.get("head") or {})),
        ("Workers", "\n".join(groups) or "-"),
        ("Labels", c.get("labels")),
        ("Idle timeout", f"{spec['idle_timeout_minutes']} min" if spec.get("idle_timeout_minutes") else None),
        ("Dashboard", c.get("dashboard_url")),
        ("Generation", f"{c['observed_generation']}/{c['generation']} applied"),
        ("Created", f"{c['created_at']} ({age(c['created_at'])} ago)"),
    ]
    if c["state"] == "DELETED":  # nothing is left to apply; "1/2 applied" would read as work pending
        rows = [row for row in rows if row[0] != "Generation"]
    return rows


def head_cell(head: dict[str, object]) -> object:
    """The head's size, and "fault tolerant" when its GCS is kept in Redis."""
    size = head.get("vm_size")
    return f"{size}  fault tolerant (GCS in Redis)" if head.get("gcs_fault_tolerance") else size


def transition(event: ClusterEvent) -> str:
    """``PENDING → PROVISIONING`` for a change of state, else the state, else empty."""
    to, before = event.get("to_state"), event.get("from_state")
    if to and before and before != to:
        return f"{before} → {to}"
    return str(to or "")


def event_text(event: ClusterEvent) -> Text:
    """``12:03:04  state_changed   PENDING → PROVISIONING  reason [code]``."""
    text = Text()
    text.append(clock(event["at"]), style="dim")
    text.append(f"  {event['kind']:<15} ")
    state = transition(event)
    if state:
        to = str(event.get("to_state"))
        text.append(state[: -len(to)])
        text.append(to, style=styled_state(to) or "")
    if event.get("reason"):
        text.append(f"  {one_line(str(event['reason']))}")
    if event.get("code"):
        text.append(f" [{event['code']}]", style="red")
    return text


def one_line(text: str, limit: int = 160) -> str:
    """Whitespace (newlines included) collapsed, and cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


EVENT_COLUMNS = [
    Column("TIME", lambda e: clock(e["at"])),
    Column("EVENT", lambda e: e["kind"]),
    Column("STATE", transition),
    Column("DETAIL", lambda e: one_line(e.get("reason") or "") + (f" [{e['code']}]" if e.get("code") else "")),
]


def job_duration(job: Job) -> str:
    start, end = parse_time(job.get("started_at")), parse_time(job.get("ended_at"))
    if start is None:
        return "-"
    if end is None:
        return age(job["started_at"])
    return duration((end - start).total_seconds())


JOB_COLUMNS = [
    Column("ID", lambda j: j["id"]),
    Column("STATUS", lambda j: j["status"], style_of=styled_state),
    Column("ENTRYPOINT", lambda j: j["entrypoint"], max_width=50),
    Column("AGE", lambda j: age(j.get("submitted_at"))),
    Column("DURATION", job_duration),
]


def job_fields(j: Job) -> Sequence[tuple[str, object]]:
    env = j.get("runtime_env") or {}
    return [
        ("ID", j["id"]),
        ("Status", j["status"]),
        ("Message", j.get("message")),
        ("Exit code", j.get("driver_exit_code")),
        ("Entrypoint", j["entrypoint"]),
        ("Working dir", env.get("working_dir")),
        ("Pip", env.get("pip")),
        ("Env", env.get("env_vars")),
        ("Cluster", j["cluster_id"]),
        ("Submission id", j["submission_id"]),
        ("Submitted", j.get("submitted_at")),
        ("Duration", job_duration(j)),
    ]
