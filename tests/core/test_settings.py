"""Settings: a bad value stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rayplane.settings import Settings, SettingsError, load_settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAYPLANE_API_PORT", "not-a-port"),
        ("RAYPLANE_API_PORT", "70000"),
        ("RAYPLANE_ENV", "staging"),
        ("RAYPLANE_DATABASE_URL", "mysql://root@localhost/x"),
        ("RAYPLANE_REDIS_URL", "http://localhost"),
        ("RAYPLANE_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert variable in str(err.value)


def test_production_requires_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYPLANE_ENV", "production")
    for name in ("RAYPLANE_SECRET_KEY", "RAYPLANE_DATABASE_URL", "RAYPLANE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError) as err:
        load_settings()
    for name in ("RAYPLANE_SECRET_KEY", "RAYPLANE_DATABASE_URL", "RAYPLANE_REDIS_URL"):
        assert name in str(err.value)


def test_dev_generates_and_keeps_a_hashing_key(tmp_path: os.PathLike[str]) -> None:
    s = Settings(env="dev", data_dir=tmp_path)
    first = s.hashing_key()
    assert len(first) >= 32
    assert Settings(env="dev", data_dir=tmp_path).hashing_key() == first
    assert oct((s.data_dir / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYPLANE_CORS_ORIGINS", "https://a.example, https://b.example")
    assert load_settings().cors_origins == ["https://a.example", "https://b.example"]


def test_cli_start_up_stops_with_the_variable_name() -> None:
    env = {**os.environ, "RAYPLANE_API_PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "RAYPLANE_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_operations_doc_lists_every_setting() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    missing = [f"RAYPLANE_{name.upper()}" for name in Settings.model_fields if f"RAYPLANE_{name.upper()}" not in doc]
    assert missing == []
