"""How records look in tables and detail views: clusters, services, events and jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from cli.client import Cluster, ClusterEvent, Job, Service
from cli.output import Column, age, clock, duration, parse_time, styled_state


def group_cell(cluster: Cluster, group: dict[str, Any]) -> str:
    """``cpu 1/1 (1-2)``: a group's ready/wanted nodes and its bounds."""
    observed = ((cluster.get("observed") or {}).get("groups") or {}).get(group["name"]) or {}
    bounds = group_bounds(group)
    if "wanted" not in observed:
        return f"{group['name']} ({bounds})"
    return f"{group['name']} {observed.get('ready', 0)}/{observed['wanted']} ({bounds})"


def group_bounds(group: dict[str, Any]) -> str:
    """``0-4 spot``: a group's node range."""
    return f"{group.get('min_nodes', 0)}-{group.get('max_nodes', 1)}" + (" spot" if group.get("spot") else "")


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
        text.append(f" [{event['code']}]", style=code_style(str(event["code"])))
    return text


#: A service's progress is told by events whose code names a step, not an error: these are
#: not shown in red. Those of a version given up on, or not healthy yet, are shown in yellow.
PROGRESS_CODES = frozenset(
    {"RolloutStarted", "ServeDeployed", "ServiceRunning", "TrafficMoved", "RolloutCompleted", "ServiceDeployed"}
)
SETBACK_CODES = frozenset({"RolledBack", "VersionDropped", "RollbackRequested", "ServeUnhealthy"})


def code_style(code: str) -> str:
    """Red for an error code (a cloud's, or a failed rollback's), calmer for a service's steps."""
    if code in PROGRESS_CODES:
        return "cyan"
    if code in SETBACK_CODES:
        return "yellow"
    return "red"


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


# ---- services ----------------------------------------------------------------------------
def versions_cell(s: Service) -> str:
    """``1``, or ``1 → 2`` while version 2 rolls out (``-`` before the first is up)."""
    active, pending = s.get("active_version"), s.get("pending_version")
    if pending is not None and active is not None:
        return f"{active} → {pending}"
    if pending is not None:
        return f"→ {pending}"
    return str(active) if active is not None else "-"


def given_up(s: Service) -> int | None:
    """The version wanted but rolled back (the active one is older and none is pending), if any."""
    wanted, active = s.get("version"), s.get("active_version")
    if wanted is None or active is None or s.get("pending_version") is not None:
        return None
    return wanted if wanted > active else None


def traffic_split(s: Service) -> list[tuple[int, int]]:
    """``[(version, percent)]`` of new requests, the active version first; empty when none serves."""
    active, pending = s.get("active_version"), s.get("pending_version")
    share = int(s.get("traffic_percent") or 0) if pending is not None else 0
    split: list[tuple[int, int]] = []
    if active is not None:
        split.append((active, 100 - share))
    if pending is not None and (share or active is None):
        split.append((pending, share))
    return split


def traffic_text(s: Service) -> str:
    """``version 1: 80 %, version 2: 20 %``; ``none yet`` before a version serves."""
    split = traffic_split(s)
    return ", ".join(f"version {v}: {p} %" for v, p in split) if split else "none yet"


def rollout_policy_text(rollout: dict[str, Any] | None) -> str | None:
    """``incremental: 20 % every 30s, healthy within 10m, surge 100 %`` (``blue_green``: all at once)."""
    if not rollout:
        return None
    strategy = str(rollout.get("strategy") or "blue_green")
    parts = []
    if strategy == "incremental":
        parts.append(
            f"{rollout.get('step_percent', '?')} % every {duration(float(rollout.get('interval_seconds', 0)))}"
        )
    else:
        parts.append("all traffic at once")
    if rollout.get("health_timeout_seconds") is not None:
        parts.append(f"healthy within {duration(float(rollout['health_timeout_seconds']))}")
    if rollout.get("max_surge_percent") is not None:
        parts.append(f"surge {rollout['max_surge_percent']} %")
    return f"{strategy}: " + ", ".join(parts)


def nodes_text(s: Service) -> str | None:
    """``version 1: head up, cpu 1/2`` per running version (ready/wanted nodes per group)."""
    lines = []
    nodes = s.get("nodes") or {}
    for version in sorted(nodes, key=lambda v: int(v) if str(v).isdigit() else 0):
        seen = nodes[version] or {}
        head = "head up" if (seen.get("head") or {}).get("alive") else "head down"
        groups = [f"{name} {g.get('ready', 0)}/{g.get('wanted', 0)}" for name, g in (seen.get("groups") or {}).items()]
        lines.append(f"version {version}: " + ", ".join([head, *groups]))
    return "\n".join(lines) or None


def application_lines(s: Service) -> str:
    """One line per Serve application of the spec: name, route and import path."""
    apps = (s.get("serve") or {}).get("applications") or []
    lines = [f"{a.get('name')}  {a.get('route_prefix') or '-'}  {a.get('import_path')}" for a in apps]
    return "\n".join(lines) or "-"


def _state(r: Service) -> str:
    state = r["state"] + (f" ({r['state_reason']})" if r.get("state_reason") else "")
    return state if r["state"] != "FAILED" else f"{state} [{r.get('state_code') or '-'}]"


SERVICE_COLUMNS = [
    Column("NAME", lambda s: s["name"]),
    Column("STATE", lambda s: s["state"], style_of=styled_state),
    Column("VERSION", versions_cell),
    Column("TRAFFIC", lambda s: traffic_text(s) if s.get("pending_version") is not None else "-"),
    Column("ENDPOINT", lambda s: s.get("endpoint_url"), max_width=60),
    Column("AGE", lambda s: age(s["created_at"])),
    Column("ID", lambda s: s["id"]),
]


def service_fields(s: Service, cloud: str | None = None) -> Sequence[tuple[str, object]]:
    """Rows of ``services get``; ``cloud`` names the cloud (default: its id)."""
    spec = s.get("spec") or {}
    groups = [f"{g['name']} ({group_bounds(g)})  {g['vm_size']}" for g in spec.get("worker_groups") or []]
    wanted = s.get("version")
    rolled_back = given_up(s) is not None
    rows: list[tuple[str, object]] = [
        ("Name", s["name"]),
        ("ID", s["id"]),
        ("State", _state(s)),
        ("Desired", s.get("desired_state")),
        ("Endpoint", s.get("endpoint_url")),
        ("Version", versions_cell(s) + (f"  (version {wanted} was rolled back)" if rolled_back else "")),
        ("Traffic", traffic_text(s)),
        ("Applications", application_lines(s)),
        ("Rollout", rollout_policy_text(s.get("rollout"))),
        ("Last failure", one_line(str(s.get("failure")), 400) if s.get("failure") else None),
        ("Cloud", cloud or s.get("cloud_id")),
        ("Ray", spec.get("ray_version")),
        ("Image", spec.get("image")),
        ("Head", head_cell(spec.get("head") or {})),
        ("Workers", "\n".join(groups) or "-"),
        ("Nodes", nodes_text(s)),
        ("Labels", s.get("labels")),
        ("Dashboard", s.get("dashboard_url")),
        ("Generation", f"{s.get('observed_generation', '?')}/{s['generation']} applied"),
        ("Created", f"{s['created_at']} ({age(s['created_at'])} ago)"),
    ]
    hidden = ("Generation",) if s["state"] == "DELETED" else ()  # nothing is left to apply
    return [r for r in rows if r[0] not in hidden and (r[0] not in ("Last failure", "Image") or r[1] is not None)]


def status_fields(s: Service) -> Sequence[tuple[str, object]]:
    """The head of ``services status``: state, endpoint, the traffic split, a rollback's error."""
    rows: list[tuple[str, object]] = [
        ("Service", f"{s['name']} ({s['id']})"),
        ("State", _state(s)),
        ("Endpoint", s.get("endpoint_url")),
        ("Traffic", traffic_text(s)),
        ("Nodes", nodes_text(s)),
    ]
    if s.get("failure"):
        rows.append(("Last failure", one_line(str(s["failure"]), 400)))
    return rows


APPLICATION_COLUMNS = [
    Column("VERSION", lambda a: a["version"]),
    Column("APPLICATION", lambda a: a["name"]),
    Column("STATUS", lambda a: a["status"], style_of=styled_state),
    Column("MESSAGE", lambda a: one_line(a.get("message") or ""), max_width=100),
]


def applications_of(s: Service) -> list[dict[str, Any]]:
    """The live applications, by version (the active one first) and name."""
    active = s.get("active_version")
    apps = [dict(a) for a in s.get("applications") or []]
    return sorted(apps, key=lambda a: (a["version"] != active, a["version"], a["name"]))


ROLLING = frozenset({"ROLLING_OUT", "ROLLING_BACK"})


def rollout_running(s: Service) -> bool:
    return s.get("pending_version") is not None or s["state"] in ROLLING


def rollout_fields(s: Service) -> Sequence[tuple[str, object]]:
    """``services rollout status``: the versions, the pending one's share, the state."""
    pending = s.get("pending_version")
    if s["state"] == "ROLLING_BACK":
        summary = f"rolling back version {pending}" if pending is not None else "rolling back"
    elif rollout_running(s):
        summary = f"version {pending} takes {s.get('traffic_percent') or 0} % of new requests"
    else:
        summary = "no rollout running"
    rows: list[tuple[str, object]] = [
        ("Service", f"{s['name']} ({s['id']})"),
        ("State", _state(s)),
        ("Rollout", summary),
        ("Active version", s.get("active_version")),
        ("Pending version", pending),
        ("Traffic", traffic_text(s)),
        ("Policy", rollout_policy_text(s.get("rollout"))),
    ]
    if s.get("failure"):
        rows.append(("Last failure", one_line(str(s["failure"]), 400)))
    return rows
