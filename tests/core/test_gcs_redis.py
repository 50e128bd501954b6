"""Where local heads keep their GCS: the dev supervisor's own Redis, one an operator names,
or the control plane's Redis when it is TCP (``Settings.gcs_redis_url``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from rayplane.embedded import EmbeddedServices
from rayplane.providers.local import gcs
from rayplane.settings import Settings


@pytest.fixture(autouse=True)
def _no_redis_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAYPLANE_REDIS_URL", "RAYPLANE_LOCAL_GCS_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def settings(**values: Any) -> Settings:
    return Settings(**values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, None),
        ({"redis_url": "redis+socket:///tmp/r.sock"}, None),
        ({"redis_url": "redis://127.0.0.1:6379/3"}, "redis://127.0.0.1:6379/3"),
        (
            {"redis_url": "redis+socket:///tmp/r.sock", "local_gcs_redis_url": "redis://:pw@127.0.0.1:7000/0"},
            "redis://:pw@127.0.0.1:7000/0",
        ),
        (
            {"redis_url": "redis://127.0.0.1:6379/3", "local_gcs_redis_url": "rediss://gcs.example:6380"},
            "rediss://gcs.example:6380",
        ),
    ],
)
def test_the_gcs_redis_is_the_named_one_else_a_tcp_control_plane_redis(
    values: dict[str, str], expected: str | None
) -> None:
    assert settings(**values).gcs_redis_url == expected


def test_a_unix_socket_cannot_be_named_for_the_gcs() -> None:
    with pytest.raises(ValidationError, match="unix socket"):
        settings(local_gcs_redis_url="redis+socket:///tmp/r.sock")


def test_without_a_tcp_redis_the_refusal_names_the_setting() -> None:
    assert gcs.problem(settings(redis_url="redis+socket:///tmp/r.sock").gcs_redis_url) is not None
    message = gcs.problem(None)
    assert message is not None
    assert "RAYPLANE_LOCAL_GCS_REDIS_URL" in message


def test_the_embedded_gcs_redis_is_tcp_on_loopback_behind_a_password(tmp_path: Path) -> None:
    services = EmbeddedServices(tmp_path)
    url = services.start_gcs_redis()
    try:
        endpoint = gcs.endpoint(url)  # what the local provider hands to Ray
        assert endpoint.host == "127.0.0.1"
        assert endpoint.port == services.gcs_redis_port
        assert len(endpoint.password) >= 24
        assert redis.Redis.from_url(url).ping() is True
        anonymous = redis.Redis(host="127.0.0.1", port=endpoint.port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        assert not any(tmp_path.rglob("*.rdb"))  # keeps nothing on disk
    finally:
        services.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_two_embedded_gcs_redises_get_their_own_ports_and_passwords(tmp_path: Path) -> None:
    first, second = EmbeddedServices(tmp_path / "a"), EmbeddedServices(tmp_path / "b")
    try:
        a, b = first.start_gcs_redis(), second.start_gcs_redis()
        assert first.gcs_redis_port != second.gcs_redis_port
        assert gcs.endpoint(a).password != gcs.endpoint(b).password
    finally:
        first.stop()
        second.stop()
