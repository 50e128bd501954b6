"""The simulated Ray head dashboard of a RayCluster (reached through the service proxy).

Serves what Ray 2.x's dashboard serves on port 8265, for the RayCluster whose head pod is
Running:

* ``GET /api/version`` -- ``{version, ray_version, ray_commit, session_name}``;
* the Jobs REST API (``/api/jobs/``, ``/api/jobs/{id}``, ``.../logs``, ``.../stop``,
  ``DELETE /api/jobs/{id}``) and ``PUT``/``GET /api/packages/{protocol}/{name}``, backed by
  :class:`emulators.azure.kube.jobs.JobManager` (errors are text bodies, as Ray's);
* ``GET /api/v0/nodes?detail=1`` -- one ALIVE node per Running Ray pod (head first), with
  ``resources_total`` as ``ray start`` would register them (``CPU`` from ``num-cpus`` or the
  Ray container's cpu limit rounded up, else its request; ``memory`` and ``GPU`` likewise;
  ``object_store_memory`` 30% of memory; ``node:<ip>``; ``node:__internal_head__`` on the
  head; custom ``resources`` from ``rayStartParams``), plus DEAD rows for pods seen earlier;
* ``GET /api/cluster_status?format=0`` -- ``data.clusterStatus.loadMetricsReport`` with
  ``usage`` (reserved by running jobs' entrypoints / total, keys camel-cased as the dashboard
  does), ``resourceDemand`` (entrypoints of jobs still PENDING), empty ``pgDemand`` and
  ``requestDemand``, ``idleTimeMap`` null, and ``data.autoscalingStatus`` text carrying a
  ``NodeIdleSeconds: Min=.. Mean=.. Max=..`` line;
* ``PUT``/``GET /api/serve/applications/`` -- Ray Serve's REST API
  (:mod:`emulators.azure.kube.serve`; a refused config is a 400 text body).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from emulators.azure.kube import raypods
from emulators.azure.kube.jobs import TERMINAL, JobError, JobManager, bundle_of, public
from emulators.azure.kube.scheduler import GPU, parse_quantity
from emulators.azure.kube.serve import ServeError, ServeManager

Obj = dict[str, Any]


@dataclass
class RayHead:
    """One Ray cluster as its dashboard sees it."""

    cluster: str
    rc: Obj
    head: Obj
    pods: list[Obj]  # Running Ray pods of the RayCluster, head included

    @property
    def ft(self) -> bool:
        return bool((self.rc.get("spec") or {}).get("gcsFaultToleranceOptions"))

    @property
    def scope(self) -> str:
        return scope_of(self.rc, self.head)

    @property
    def owner(self) -> dict[str, str]:
        m = self.rc["metadata"]
        return {"cluster": self.cluster, "namespace": m.get("namespace", "default"), "name": m["name"]}


def scope_of(rc: Obj, head: Obj) -> str:
    if (rc.get("spec") or {}).get("gcsFaultToleranceOptions"):
        return f"rc:{rc['metadata']['uid']}"
    return f"head:{head['metadata']['uid']}"


def to_camel_case(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _limit_or_request(container: Mapping[str, Any], key: str) -> Any:
    res = container.get("resources") or {}
    return (res.get("limits") or {}).get(key) or (res.get("requests") or {}).get(key)


def _custom(text: Any) -> dict[str, float]:
    """``rayStartParams.resources``: JSON, possibly shell-quoted (``'"{\\"x\\": 1}"'``)."""
    raw = str(text or "").strip()
    for _ in range(2):
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1].replace('\\"', '"')
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): float(v) for k, v in value.items()} if isinstance(value, dict) else {}


def node_resources(pod: Obj, params: Mapping[str, Any], is_head: bool) -> dict[str, float]:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    ray = containers[0]
    out: dict[str, float] = {}
    try:
        cpu = params.get("num-cpus")
        out["CPU"] = (
            float(cpu) if cpu is not None else float(math.ceil(parse_quantity(_limit_or_request(ray, "cpu") or 0)))
        )
        memory = params.get("memory")
        out["memory"] = (
            float(memory) if memory is not None else float(parse_quantity(_limit_or_request(ray, "memory") or 0))
        )
        gpu = params.get("num-gpus")
        out["GPU"] = float(gpu) if gpu is not None else float(parse_quantity(_limit_or_request(ray, GPU) or 0))
    except ValueError:
        pass
    out["object_store_memory"] = float(int(out.get("memory", 0.0) * 0.3))
    ip = str((pod.get("status") or {}).get("podIP", ""))
    out[f"node:{ip}"] = 1.0
    if is_head:
        out["node:__internal_head__"] = 1.0
    out.update(_custom(params.get("resources")))
    return {k: v for k, v in out.items() if v > 0}


def _labels(params: Mapping[str, Any], node_id: str) -> dict[str, str]:
    labels = {"ray.io/node-id": node_id}
    raw = str(params.get("labels") or "").strip().strip("'\"")
    if raw.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):
            labels.update({str(k): str(v) for k, v in json.loads(raw).items()})
    else:
        for item in filter(None, (p.strip() for p in raw.split(","))):
            key, _, value = item.partition("=")
            labels[key] = value
    return labels


def _started_ms(pod: Obj) -> int:
    text = (pod.get("status") or {}).get("startTime")
    if not text:
        return int(time.time() * 1000)
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp() * 1000)


def node_row(rc: Obj, pod: Obj) -> Obj:
    is_head = pod["metadata"]["labels"].get(raypods.NODE_TYPE_LABEL) == "head"
    spec = rc.get("spec") or {}
    if is_head:
        params = (spec.get("headGroupSpec") or {}).get("rayStartParams") or {}
    else:
        group = pod["metadata"]["labels"].get(raypods.GROUP_LABEL)
        params = next(
            (g.get("rayStartParams") or {} for g in spec.get("workerGroupSpecs") or [] if g.get("groupName") == group),
            {},
        )
    node_id = hashlib.sha224(pod["metadata"]["uid"].encode()).hexdigest()
    ip = str((pod.get("status") or {}).get("podIP", ""))
    return {
        "node_id": node_id,
        "node_ip": ip,
        "is_head_node": is_head,
        "state": "ALIVE",
        "state_message": None,
        "node_name": ip,
        "resources_total": node_resources(pod, params, is_head),
        "labels": _labels(params, node_id),
        "start_time_ms": _started_ms(pod),
        "end_time_ms": 0,
    }


def _text(code: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=code)


class Dashboard:
    """Routes of the simulated dashboard; one instance serves every Ray cluster."""

    def __init__(self, jobs: JobManager, serve: ServeManager | None = None) -> None:
        self.jobs = jobs
        self.serve = serve if serve is not None else ServeManager(lambda: 1.0)
        self._seen: dict[str, dict[str, Obj]] = {}

    def nodes(self, head: RayHead) -> list[Obj]:
        """Alive rows for the running pods, DEAD rows for pods seen before and gone since."""
        alive = [node_row(head.rc, p) for p in sorted(head.pods, key=lambda p: p is not head.head)]
        seen = self._seen.setdefault(head.scope, {})
        ids = {row["node_id"] for row in alive}
        now_ms = int(time.time() * 1000)
        for node_id, row in seen.items():
            if node_id not in ids and row["state"] == "ALIVE":
                row.update(
                    state="DEAD", end_time_ms=now_ms, state_message="Unexpected termination: the node's pod is gone."
                )
        for row in alive:
            seen[row["node_id"]] = dict(row)
        dead = [r for r in seen.values() if r["state"] == "DEAD"]
        return alive + dead

    async def handle(self, head: RayHead, method: str, path: str, query: Mapping[str, str], body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        try:
            return await self._route(head, method, parts, query, body)
        except JobError as exc:
            return _text(exc.code, exc.message)

    async def _route(
        self, head: RayHead, method: str, parts: list[str], query: Mapping[str, str], body: bytes
    ) -> Response:
        scope = head.scope
        if not parts:
            return Response(
                "<html><head><title>Ray Dashboard</title></head><body></body></html>", media_type="text/html"
            )
        if parts == ["api", "version"]:
            version = str((head.rc.get("spec") or {}).get("rayVersion") or "2.52.0")
            session = f"session_{_started_ms(head.head)}_{head.head['metadata']['uid'][:8]}"
            return JSONResponse(
                {"version": "4", "ray_version": version, "ray_commit": "0" * 40, "session_name": session}
            )
        if parts[:2] == ["api", "jobs"]:
            return await self._jobs(head, method, parts[2:], body)
        if parts[:2] == ["api", "packages"] and len(parts) == 4:
            if method == "PUT":
                self.jobs.put_package(scope, parts[3], body)
                return Response(status_code=200)
            if method == "GET":
                return (
                    Response(status_code=200)
                    if self.jobs.has_package(scope, parts[3])
                    else _text(404, "Package not found")
                )
        if parts == ["api", "v0", "nodes"] and method == "GET":
            rows = self.nodes(head)
            limit = int(query.get("limit") or 100)
            result = {
                "total": len(rows),
                "num_after_truncation": min(len(rows), limit),
                "num_filtered": len(rows),
                "result": rows[:limit],
                "partial_failure_warning": "",
                "warnings": None,
            }
            return JSONResponse({"result": True, "msg": "", "data": {"result": result}})
        if parts == ["api", "serve", "applications"]:
            return self._serve(head, method, body)
        if parts == ["api", "cluster_status"] and method == "GET":
            return JSONResponse({"result": True, "msg": "Got cluster status.", "data": self._cluster_status(head)})
        return _text(404, "404: Not Found")

    async def _jobs(self, head: RayHead, method: str, rest: list[str], body: bytes) -> Response:
        scope = head.scope
        if not rest:
            if method == "GET":
                return JSONResponse(self.jobs.table(scope))
            if method == "POST":
                try:
                    payload = json.loads(body or b"null")
                except ValueError:
                    return _text(400, "Request body is not valid JSON")
                job = self.jobs.submit(scope, payload, head.owner)
                await self.jobs.tick(scope, self.nodes(head), str(head.head["status"].get("podIP", "")))
                return JSONResponse({"job_id": job["submission_id"], "submission_id": job["submission_id"]})
            return _text(405, "405: Method Not Allowed")
        job_id = rest[0]
        if len(rest) == 1:
            if method == "GET":
                return JSONResponse(public(self.jobs.find(scope, job_id)))
            if method == "DELETE":
                return JSONResponse({"deleted": self.jobs.delete(scope, job_id)})
        if rest[1:] == ["logs"] and method == "GET":
            return JSONResponse({"logs": self.jobs.logs(scope, job_id)})
        if rest[1:] == ["stop"] and method == "POST":
            return JSONResponse({"stopped": self.jobs.stop(scope, job_id)})
        return _text(404, "404: Not Found")

    def _serve(self, head: RayHead, method: str, body: bytes) -> Response:
        uid = str(head.head["metadata"]["uid"])
        if method == "GET":
            return JSONResponse(self.serve.details(head.scope, head.head, self.nodes(head)))
        if method == "PUT":
            try:
                self.serve.put(head.scope, uid, json.loads(body or b"null"))
            except (ValueError, ServeError) as exc:
                return _text(400, str(exc))
            return Response(status_code=200)
        if method == "DELETE":
            self.serve.put(head.scope, uid, {"applications": []})
            return Response(status_code=200)
        return _text(405, "405: Method Not Allowed")

    def _cluster_status(self, head: RayHead) -> Obj:
        rows = [r for r in self.nodes(head) if r["state"] == "ALIVE"]
        reserved = self.jobs.reservations(head.scope)
        usage: dict[str, list[float]] = {}
        for row in rows:
            for key, total in row["resources_total"].items():
                entry = usage.setdefault(key, [0.0, 0.0])
                entry[1] += total
                entry[0] += reserved.get(row["node_id"], {}).get(key, 0.0)
        demand: dict[str, list[Any]] = {}
        for bundle in self.jobs.pending_bundles(head.scope):
            key = json.dumps(bundle, sort_keys=True)
            demand.setdefault(key, [bundle, 0])[1] += 1
        idle = self._idle_seconds(head, rows)
        mean = sum(idle) / len(idle) if idle else 0.0
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines = [f"======== Autoscaler status: {stamp} ========", "Node status", "-" * 60, "Active:"]
        groups: dict[str, int] = {}
        for pod in head.pods:
            group = pod["metadata"]["labels"].get(raypods.GROUP_LABEL, "")
            groups[group] = groups.get(group, 0) + 1
        lines += [f" {n} {g}" for g, n in sorted(groups.items())]
        lines += [
            "Pending:",
            " (no pending nodes)",
            "Recent failures:",
            " (no failures)",
            "",
            "Resources",
            "-" * 60,
            "Usage:",
        ]
        lines += [f" {u:g}/{t:g} {k}" for k, (u, t) in sorted(usage.items()) if not k.startswith("node:")]
        lines += ["Demands:"] + (
            [f" {json.dumps(b)}: {n}+ pending tasks/actors" for b, n in demand.values()] or [" (no resource demands)"]
        )
        if idle:
            lines.append(f"NodeIdleSeconds: Min={min(idle):.0f} Mean={mean:.0f} Max={max(idle):.0f}")
        return {
            "autoscalingStatus": "\n".join(lines),
            "autoscalingError": None,
            "clusterStatus": {
                "loadMetricsReport": {
                    "usage": {to_camel_case(k): v for k, v in usage.items()},
                    "resourceDemand": list(demand.values()),
                    "pgDemand": [],
                    "requestDemand": [],
                    "nodeTypes": [],
                    "headIp": str(head.head["status"].get("podIP", "")),
                    "idleTimeMap": None,
                },
                "autoscalerReport": {
                    "activeNodes": groups,
                    "pendingLaunches": {},
                    "pendingNodes": [],
                    "failedNodes": [],
                },
            },
        }

    def _idle_seconds(self, head: RayHead, rows: list[Obj]) -> list[float]:
        """Per alive node: seconds since it last ran a job's entrypoint (or since it started)."""
        now_ms = time.time() * 1000
        jobs = [j for j in self.jobs.jobs.get(head.scope, {}).values() if j.get("driver_node_id")]
        out = []
        for row in rows:
            mine = [j for j in jobs if j["driver_node_id"] == row["node_id"]]
            if any(j["status"] not in TERMINAL and bundle_of(j) for j in mine):
                out.append(0.0)
                continue
            last = max([row["start_time_ms"], *(j.get("end_time") or 0 for j in mine)])
            out.append(max(0.0, (now_ms - last) / 1000))
        return out
