"""What the offline ``rayplane services`` tests read: a service file and API answers."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

SERVE: dict[str, Any] = {
    "applications": [
        {"name": "hello", "import_path": "app:deployment", "route_prefix": "/hello", "runtime_env": {}},
        {"name": "echo", "import_path": "echo:app", "route_prefix": "/echo"},
    ]
}
FILE = f"""\
name: hello
head: {{vm_size: Standard_D2s_v5}}
worker_groups:
  - {{name: cpu, vm_size: Standard_D2s_v5, min_nodes: 1, max_nodes: 2}}
serve: {json.dumps(SERVE)}
rollout: {{strategy: incremental, step_percent: 50, interval_seconds: 5}}
"""


def service(**changes: Any) -> dict[str, Any]:
    created = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    s: dict[str, Any] = {
        "id": "svc_01jd3w5z8k2m4n6p8r0t2v4x6y",
        "name": "hello",
        "cloud_id": "cld_1",
        "state": "RUNNING",
        "state_reason": None,
        "state_code": None,
        "desired_state": "running",
        "generation": 1,
        "observed_generation": 1,
        "spec": {
            "ray_version": "2.60.0",
            "image": None,
            "head": {"vm_size": "Standard_D2s_v5", "gcs_fault_tolerance": True},
            "worker_groups": [
                {
                    "name": "cpu",
                    "vm_size": "Standard_D2s_v5",
                    "min_nodes": 1,
                    "max_nodes": 2,
                    "spot": False,
                    "fallback_to_on_demand": False,
                }
            ],
        },
        # as the API answers: every application's fields, defaults filled in
        "serve": {
            "applications": [
                {**{"route_prefix": "/", "runtime_env": {}, "deployments": []}, **a}
                for a in copy.deepcopy(SERVE["applications"])
            ]
        },
        "rollout": {
            "strategy": "incremental",
            "step_percent": 50,
            "interval_seconds": 5,
            "max_surge_percent": 100,
            "health_timeout_seconds": 600,
        },
        "labels": {},
        "endpoint_url": "http://127.0.0.1:41234",
        "version": 1,
        "active_version": 1,
        "pending_version": None,
        "traffic_percent": 0,
        "applications": [
            {"version": 1, "name": "hello", "status": "RUNNING", "message": ""},
            {"version": 1, "name": "echo", "status": "RUNNING", "message": ""},
        ],
        "failure": None,
        "nodes": {"1": {"head": {"alive": True}, "groups": {"cpu": {"ready": 1, "wanted": 1}}}},
        "dashboard_url": "http://127.0.0.1:8265",
        "created_at": created,
        "updated_at": created,
    }
    s.update(changes)
    return s


ROLLING = {
    "state": "ROLLING_OUT",
    "version": 2,
    "pending_version": 2,
    "traffic_percent": 20,
    "nodes": {
        "1": {"head": {"alive": True}, "groups": {"cpu": {"ready": 1, "wanted": 1}}},
        "2": {"head": {"alive": True}, "groups": {"cpu": {"ready": 0, "wanted": 1}}},
    },
    "applications": [
        {"version": 2, "name": "hello", "status": "DEPLOYING", "message": "Deploying app 'hello'.\nwaiting"},
        {"version": 1, "name": "hello", "status": "RUNNING", "message": ""},
    ],
}
