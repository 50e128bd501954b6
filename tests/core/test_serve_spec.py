"""The typed Serve config and rollout policy of a service (rayplane.clusters.serve)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rayplane.clusters.serve import (
    RolloutSpec,
    RolloutStrategy,
    ServedVersion,
    ServeSpec,
    ServiceSpec,
    needs_new_cluster,
    rollout_errors,
    serve_errors,
)
from rayplane.clusters.spec import ClusterSpec

CPU = ClusterSpec.from_json(
    {
        "ray_version": "2.40.0",
        "image": None,
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 2}],
    }
)
GPU = dataclasses.replace(
    CPU,
    worker_groups=ClusterSpec.from_json(
        {
            "head": {"vm_size": "Standard_D2s_v5"},
            "worker_groups": [{"name": "gpu", "vm_size": "Standard_NC4as_T4_v3", "min_nodes": 0, "max_nodes": 1}],
        }
    ).worker_groups,
)
TWO_APPS: dict[str, Any] = {
    "applications": [
        {
            "name": "echo",
            "import_path": "echo:app",
            "route_prefix": "/echo",
            "runtime_env": {"working_dir": "file:///srv/apps", "env_vars": {"MODE": "a"}},
            "deployments": [{"name": "Echo", "num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5}}],
        },
        {
            "name": "counter",
            "import_path": "apps.counter.app",
            "route_prefix": "/count",
            "deployments": [
                {
                    "name": "Counter",
                    "autoscaling_config": {"min_replicas": 1, "max_replicas": 4},
                    "user_config": {"k": 1},
                }
            ],
        },
    ]
}


def test_round_trip_keeps_the_wire_spelling() -> None:
    spec = ServeSpec.from_json(TWO_APPS)
    again = ServeSpec.from_json(spec.to_json())
    assert again == spec
    out = spec.to_json()["applications"]
    assert out[0]["deployments"] == [{"name": "Echo", "num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5}}]
    assert out[1]["deployments"][0]["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4}
    assert out[1]["deployments"][0]["user_config"] == {"k": 1}


def test_the_spec_does_not_share_the_callers_dicts() -> None:
    data = {"applications": [{"name": "a", "import_path": "a:app", "runtime_env": {"env_vars": {"X": "1"}}}]}
    spec = ServeSpec.from_json(data)
    data["applications"][0]["runtime_env"]["env_vars"]["X"] = "2"  # type: ignore[index]
    assert spec.applications[0].runtime_env["env_vars"] == {"X": "1"}
    spec.to_json()["applications"][0]["runtime_env"]["env_vars"]["X"] = "3"
    assert spec.applications[0].runtime_env["env_vars"] == {"X": "1"}


def test_deploy_config_is_the_serve_rest_api_body() -> None:
    body = ServeSpec.from_json(TWO_APPS).deploy_config(http_host="127.0.0.1", http_port=18000)
    assert body["proxy_location"] == "HeadOnly"
    assert body["http_options"] == {"host": "127.0.0.1", "port": 18000}
    assert [a["name"] for a in body["applications"]] == ["echo", "counter"]
    assert body["applications"][0]["route_prefix"] == "/echo"


def test_a_valid_config_has_no_errors() -> None:
    assert serve_errors(ServeSpec.from_json(TWO_APPS), CPU) == []


def test_every_broken_rule_is_reported_at_once_with_its_field() -> None:
    bad = {
        "applications": [
            {"name": "a", "import_path": "nodots", "route_prefix": "/x/"},
            {"name": "a", "import_path": "m:app", "route_prefix": "/y"},
            {
                "name": "-bad",
                "import_path": "m:app",
                "route_prefix": "/y",
                "deployments": [
                    {"name": "D", "num_replicas": 1, "autoscaling_config": {"min_replicas": 3, "max_replicas": 2}},
                    {"name": "D", "ray_actor_options": {"num_gpus": 1, "memory": -1}},
                ],
            },
        ]
    }
    fields = [e.field for e in serve_errors(ServeSpec.from_json(bad), CPU)]
    assert fields == [
        "body.serve.applications.0.name",
        "body.serve.applications.0.import_path",
        "body.serve.applications.0.route_prefix",
        "body.serve.applications.1.name",
        "body.serve.applications.1.route_prefix",
        "body.serve.applications.2.name",
        "body.serve.applications.2.route_prefix",
        "body.serve.applications.2.deployments.0.name",
        "body.serve.applications.2.deployments.0.num_replicas",
        "body.serve.applications.2.deployments.0.autoscaling_config",
        "body.serve.applications.2.deployments.1.name",
        "body.serve.applications.2.deployments.1.ray_actor_options.memory",
        "body.serve.applications.2.deployments.1.ray_actor_options.num_gpus",
    ]


def test_no_application_is_refused() -> None:
    assert [e.field for e in serve_errors(ServeSpec(applications=()), CPU)] == ["body.serve.applications"]


def test_gpus_are_asked_of_a_cluster_that_has_them() -> None:
    spec = ServeSpec.from_json(
        {
            "applications": [
                {
                    "name": "m",
                    "import_path": "m:app",
                    "deployments": [{"name": "M", "ray_actor_options": {"num_gpus": 1}}],
                }
            ]
        }
    )
    assert serve_errors(spec, GPU) == []
    (error,) = serve_errors(spec, CPU)
    assert error.field.endswith("ray_actor_options.num_gpus")
    assert "no node of this service has a GPU" in error.message


def test_an_application_without_a_route_is_allowed_and_never_clashes() -> None:
    spec = ServeSpec.from_json(
        {
            "applications": [
                {"name": "a", "import_path": "a:app", "route_prefix": None},
                {"name": "b", "import_path": "b:app", "route_prefix": None},
            ]
        }
    )
    assert serve_errors(spec, CPU) == []


@pytest.mark.parametrize(
    ("rollout", "steps"),
    [
        ({}, (100,)),
        ({"strategy": "incremental", "step_percent": 25}, (25, 50, 75, 100)),
        ({"strategy": "incremental", "step_percent": 30}, (30, 60, 90, 100)),
        ({"strategy": "incremental", "step_percent": 100}, (100,)),
    ],
)
def test_traffic_moves_in_the_rollouts_steps(rollout: dict[str, Any], steps: tuple[int, ...]) -> None:
    spec = RolloutSpec.from_json(rollout)
    assert spec.traffic_steps() == steps
    assert RolloutSpec.from_json(spec.to_json()) == spec


def test_rollout_defaults_and_bounds() -> None:
    default = RolloutSpec.from_json(None)
    assert default.strategy is RolloutStrategy.BLUE_GREEN
    assert default.health_timeout_seconds == 600
    assert rollout_errors(default) == []
    bad = RolloutSpec.from_json(
        {"step_percent": 0, "interval_seconds": 0, "max_surge_percent": 101, "health_timeout_seconds": 5}
    )
    assert [e.field for e in rollout_errors(bad)] == [
        "body.rollout.step_percent",
        "body.rollout.interval_seconds",
        "body.rollout.max_surge_percent",
        "body.rollout.health_timeout_seconds",
    ]
    with pytest.raises(ValueError, match="canary"):
        RolloutSpec.from_json({"strategy": "canary"})


def test_what_needs_a_new_cluster() -> None:
    resized = dataclasses.replace(
        CPU, worker_groups=(dataclasses.replace(CPU.worker_groups[0], min_nodes=0, max_nodes=5),)
    )
    assert not needs_new_cluster(CPU, CPU)
    assert not needs_new_cluster(CPU, resized)  # the autoscaler resizes in place
    assert needs_new_cluster(CPU, dataclasses.replace(CPU, ray_version="2.41.0"))
    assert needs_new_cluster(CPU, dataclasses.replace(CPU, image="example.azurecr.io/ray:custom"))
    assert needs_new_cluster(CPU, GPU)  # another group (name and size)
    assert needs_new_cluster(
        CPU, dataclasses.replace(CPU, head=dataclasses.replace(CPU.head, gcs_fault_tolerance=True))
    )
    spot = dataclasses.replace(CPU, worker_groups=(dataclasses.replace(CPU.worker_groups[0], spot=True),))
    assert needs_new_cluster(CPU, spot)


def test_service_versions_grow_only_for_new_nodes_and_are_never_given_twice() -> None:
    serve = ServeSpec.from_json(TWO_APPS)
    other = ServeSpec.from_json({"applications": TWO_APPS["applications"][:1]})
    rollout = RolloutSpec()
    v1 = ServiceSpec(serve=serve)
    assert (v1.version, v1.latest, v1.previous) == (1, 1, None)
    in_place = v1.changed(CPU, CPU, other, rollout)
    assert (in_place.version, in_place.latest, in_place.previous, in_place.serve) == (1, 1, None, other)
    new_image = dataclasses.replace(CPU, image="img:2")
    v2 = in_place.changed(CPU, new_image, other, rollout)
    assert (v2.version, v2.latest) == (2, 2)
    assert v2.previous == ServedVersion(CPU, other)  # what serves now, for a rollback
    v3 = v2.changed(new_image, dataclasses.replace(CPU, image="img:3"), serve, rollout)
    assert (v3.version, v3.latest) == (3, 3)
    assert v3.previous == ServedVersion(CPU, other)  # still what serves: version 2 never did
    # After a rollback to version 1 (the reconciler sets version back), the next is 4, not 2.
    back = dataclasses.replace(v3, version=1, previous=None)
    assert back.changed(CPU, new_image, serve, rollout).version == 4
    assert ServiceSpec.from_json(v3.to_json()) == v3
