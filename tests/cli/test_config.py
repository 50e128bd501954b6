"""Profiles and precedence: flags > environment > ./.rayplane/dev.env > profile (no server needed)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cli.config import (
    DEFAULT_API_URL,
    ConfigError,
    ConfigFile,
    Overrides,
    config_path,
    find_dev_env,
    resolve,
    write_private,
)


@pytest.fixture
def config(tmp_path: Path) -> ConfigFile:
    cfg = ConfigFile(tmp_path / "cfg" / "config.yaml", current="default")
    cfg.profiles = {
        "default": {"api_url": "http://profile-default", "api_key": "rpk_default"},
        "work": {"api_url": "http://profile-work", "api_key": "rpk_work"},
        "sso": {"api_url": "http://sso", "auth": "entra", "authority": "a", "client_id": "c", "scope": "s"},
    }
    cfg.save()
    return cfg


def dev_env(directory: Path, url: str = "http://dev-env", key: str = "rpk_dev") -> Path:
    path = directory / ".rayplane" / "dev.env"
    path.parent.mkdir(parents=True)
    path.write_text(f"RAYPLANE_API_URL={url}\nRAYPLANE_API_KEY={key}\n")
    return path


def test_config_file_is_private_and_round_trips(config: ConfigFile) -> None:
    assert stat.S_IMODE(config.path.stat().st_mode) == 0o600
    assert not config.loose_permissions()
    again = ConfigFile.load(config.path)
    assert again.current == "default"
    assert again.profiles == config.profiles
    config.path.chmod(0o644)
    assert config.loose_permissions()
    config.save()
    assert stat.S_IMODE(config.path.stat().st_mode) == 0o600


def test_write_private_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.yaml"
    write_private(path, "one")
    write_private(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["b.yaml"]


def test_config_path(tmp_path: Path) -> None:
    assert config_path({"RAYPLANE_CONFIG": str(tmp_path / "x.yaml")}) == tmp_path / "x.yaml"
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "rayplane" / "config.yaml"
    assert config_path({}).parts[-3:] == (".config", "rayplane", "config.yaml")


def test_dev_env_is_found_walking_up(tmp_path: Path) -> None:
    path = dev_env(tmp_path / "project")
    deep = tmp_path / "project" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_dev_env(deep) == path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_dev_env(elsewhere) is None


def test_precedence(config: ConfigFile, tmp_path: Path) -> None:
    work = tmp_path / "project" / "src"
    work.mkdir(parents=True)
    env = {"RAYPLANE_API_URL": "http://env", "RAYPLANE_API_KEY": "rpk_env"}

    plain = resolve(Overrides(), {}, work, config)
    assert (plain.api_url, plain.api_key, plain.profile) == ("http://profile-default", "rpk_default", "default")

    dev_env(tmp_path / "project")
    from_dev = resolve(Overrides(), {}, work, config)
    assert (from_dev.api_url, from_dev.api_key) == ("http://dev-env", "rpk_dev")
    assert from_dev.credential_source.endswith(".rayplane/dev.env")  # type: ignore[union-attr]

    from_env = resolve(Overrides(), env, work, config)
    assert (from_env.api_url, from_env.api_key, from_env.url_source) == ("http://env", "rpk_env", "environment")

    flags = resolve(Overrides(api_url="http://flag", api_key="rpk_flag"), env, work, config)
    assert (flags.api_url, flags.api_key) == ("http://flag", "rpk_flag")

    # a profile asked for by name beats the environment and dev.env; a URL flag still wins
    named = resolve(Overrides(profile="work"), env, work, config)
    assert (named.api_url, named.api_key, named.profile) == ("http://profile-work", "rpk_work", "work")
    mixed = resolve(Overrides(profile="work", api_url="http://flag"), env, work, config)
    assert (mixed.api_url, mixed.api_key) == ("http://flag", "rpk_work")

    by_env = resolve(Overrides(), {"RAYPLANE_PROFILE": "work"}, work, config)
    assert by_env.api_key == "rpk_work"


def test_key_from_env_and_url_from_profile(config: ConfigFile, tmp_path: Path) -> None:
    t = resolve(Overrides(), {"RAYPLANE_API_KEY": "rpk_env"}, tmp_path, config)
    assert (t.api_url, t.api_key) == ("http://profile-default", "rpk_env")


def test_entra_profile_and_defaults(config: ConfigFile, tmp_path: Path) -> None:
    sso = resolve(Overrides(profile="sso"), {}, tmp_path, config)
    assert sso.api_key is None
    assert sso.entra is not None
    assert sso.entra["client_id"] == "c"
    empty = resolve(Overrides(), {}, tmp_path, ConfigFile(tmp_path / "none.yaml"))
    assert (empty.api_url, empty.has_credential) == (DEFAULT_API_URL, False)


def test_unknown_profile_and_broken_file(config: ConfigFile, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no profile named 'nope'.*profiles: default, sso, work"):
        resolve(Overrides(profile="nope"), {}, tmp_path, config)
    broken = tmp_path / "broken.yaml"
    broken.write_text("profiles: [1, 2]\n")
    with pytest.raises(ConfigError, match="not a Rayplane config file"):
        ConfigFile.load(broken)
