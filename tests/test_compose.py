"""docker-compose.yml and infra/Dockerfile stay honest against the code they run.

The file is rendered and validated as ``docker-compose config`` would (interpolation,
extension fields, the Compose Specification's JSON schema: ``tests/support/compose.py``), so
``make test`` needs no Compose tool and no Docker engine. The commands must be the process kinds that
``rayplane dev`` supervises plus ``migrate``, and the health checks must name endpoints
the API serves. Needs no database: no fixture from conftest.py is used.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from ops.dev import STOP_ORDER, Supervisor, process_argv
from rayplane.settings import Settings
from tests.support.compose import ComposeError, render

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "infra" / "Dockerfile"

SECRETS = {"RAYPLANE_SECRET_KEY": "compose-test-secret", "POSTGRES_PASSWORD": "compose-test-password"}
INFRA_SERVICES = {"postgres", "redis"}
RAYPLANE_SERVICES = {"migrate", "api", "worker", "beat"}


def _env(values: dict[str, str]) -> dict[str, str]:
    # Hermetic: no RAYPLANE_* or secret from the caller, as an empty --env-file would make it.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAYPLANE_", "COMPOSE_")) and k not in SECRETS}
    return {**base, **values}


@pytest.fixture
def config() -> dict[str, Any]:
    return render(COMPOSE_FILE, _env(SECRETS))


def _services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = config["services"]
    return services


def _http_path(text: str) -> str:
    match = re.search(r"http://[^/\s'\"]+(/[A-Za-z0-9_./-]*)", text)
    assert match is not None, f"no http:// URL in {text!r}"
    return match.group(1)


def _dockerfile_instruction(name: str) -> str:
    """One instruction of infra/Dockerfile with its continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().upper().startswith(name + " ")]
    assert len(lines) == 1, f"expected one {name} in {DOCKERFILE}, found {len(lines)}"
    return lines[0]


def _served_paths() -> set[str]:
    # The OpenAPI document lists every path the app routes (FastAPI's ``app.routes`` holds
    # lazily-flattened included routers, so it is not a reliable list of paths).
    paths: dict[str, Any] = create_app(Settings(env="test")).openapi()["paths"]
    return set(paths)


def test_services_are_exactly_the_control_plane(config: dict[str, Any]) -> None:
    assert set(_services(config)) == INFRA_SERVICES | RAYPLANE_SERVICES


def test_every_rayplane_service_runs_the_one_image(config: dict[str, Any]) -> None:
    services = _services(config)
    builds = [services[name].get("build") for name in sorted(RAYPLANE_SERVICES)]
    assert builds[0] is not None
    assert builds[0]["dockerfile"] == "infra/Dockerfile"
    assert Path(builds[0]["context"]).resolve() == ROOT
    assert all(build == builds[0] for build in builds), builds
    for name in RAYPLANE_SERVICES:
        environment = services[name]["environment"]
        assert environment["RAYPLANE_ENV"] == "production", name
        assert environment["RAYPLANE_SECRET_KEY"] == SECRETS["RAYPLANE_SECRET_KEY"], name
        assert environment["RAYPLANE_DATABASE_URL"].startswith("postgresql://"), name
        assert environment["RAYPLANE_REDIS_URL"] == "redis://redis:6379/0", name
        assert environment["RAYPLANE_LOG_FORMAT"] == "json", name


def test_commands_match_the_dev_supervisor(config: dict[str, Any]) -> None:
    services = _services(config)
    commands = {name: services[name]["command"] for name in RAYPLANE_SERVICES}
    assert commands == {name: [name] for name in RAYPLANE_SERVICES}
    # The kinds `rayplane dev` (make run) supervises, each one a real `rayplane <kind>` command line.
    kinds = set(STOP_ORDER)
    settings = Settings(env="test")
    for kind in kinds:
        assert process_argv(kind, settings), kind
    assert {command[0] for command in commands.values()} == kinds | {"migrate"}


def test_startup_order_and_one_shot_migration(config: dict[str, Any]) -> None:
    services = _services(config)
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["api"]["environment"]["RAYPLANE_API_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
    assert any(int(port["target"]) == 8000 for port in services["api"]["ports"])


def test_backing_services(config: dict[str, Any]) -> None:
    services = _services(config)
    assert services["postgres"]["image"] == "postgres:18"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    # Postgres 18 images keep PGDATA under /var/lib/postgresql/18/; a volume on .../data breaks them.
    assert any(v.split(":")[1] == "/var/lib/postgresql" for v in services["postgres"]["volumes"])
    assert services["redis"]["image"] == "redis:7"
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    command = services["redis"]["command"]
    assert command[command.index("--save") + 1] == ""
    assert command[command.index("--appendonly") + 1] == "no"


def test_api_healthcheck_is_readiness(config: dict[str, Any]) -> None:
    test = " ".join(_services(config)["api"]["healthcheck"]["test"])
    path = _http_path(test)
    assert path == "/readyz"
    # The same endpoint `rayplane dev` waits on before it reports the control plane running.
    assert f'"{path}"' in inspect.getsource(Supervisor._wait_ready)
    assert path in _served_paths()


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_no_default_secret(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(ComposeError) as refused:
        render(COMPOSE_FILE, _env(env))
    assert missing in str(refused.value)


def test_the_renderer_refuses_what_compose_refuses(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  api:\n    image: x\n    restart: sometimes\n    ports: {a: 1}\n")
    with pytest.raises(ComposeError, match="ports"):
        render(bad, {})
    escaped = tmp_path / "escaped.yml"
    escaped.write_text("services:\n  api:\n    image: x\n    command: ['echo', '$$HOME', '${A:-d}', '${B-e}']\n")
    assert render(escaped, {"B": ""})["services"]["api"]["command"] == ["echo", "$HOME", "d", ""]


def test_dockerfile_entrypoint_is_rayplane() -> None:
    assert DOCKERFILE.is_file()
    assert _dockerfile_instruction("ENTRYPOINT") == 'ENTRYPOINT ["rayplane"]'
    assert _dockerfile_instruction("CMD") == 'CMD ["api"]'
    assert _dockerfile_instruction("FROM").split()[1] == "python:3.11-slim"
    assert _dockerfile_instruction("USER").split()[1] not in ("root", "0")


def test_dockerfile_healthcheck_is_served() -> None:
    path = _http_path(_dockerfile_instruction("HEALTHCHECK"))
    assert path == "/healthz"
    served = _served_paths()
    assert {"/healthz", "/readyz"} <= served
    assert path in served
    # Liveness needs neither Postgres nor Redis: it answers without the app's lifespan
    # (httpx.ASGITransport does not run it).
    assert asyncio.run(_get(path)) == 200


async def _get(path: str) -> int:
    transport = httpx.ASGITransport(app=create_app(Settings(env="test")))
    async with httpx.AsyncClient(transport=transport, base_url="http://rayplane") as client:
        return (await client.get(path)).status_code
