"""Where the CLI finds the API and its credential: flags, environment, ``dev.env``, profiles.

Profiles live in one YAML file, written with mode 0600::

    current_profile: default
    profiles:
      default: {api_url: http://127.0.0.1:8000, api_key: rpk_…}
      work: {api_url: https://rayplane.example.com, auth: entra, authority: …, client_id: …, scope: …}

Its path is ``$RAYPLANE_CONFIG``, else ``$XDG_CONFIG_HOME/rayplane/config.yaml``, else
``~/.config/rayplane/config.yaml``.

Precedence, for the URL and the credential separately (the first that has one wins):

1. ``--api-url`` / ``--api-key``;
2. the profile named by ``--profile``;
3. ``RAYPLANE_API_URL`` / ``RAYPLANE_API_KEY``;
4. the profile named by ``RAYPLANE_PROFILE``;
5. ``.rayplane/dev.env``, looked for in the working directory and each parent (``make run``
   writes it);
6. the current profile of the config file;
7. ``http://127.0.0.1:8000`` for the URL.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"


class ConfigError(Exception):
    """The configuration is missing, unreadable or contradictory (exit code 2)."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("RAYPLANE_CONFIG"):
        return Path(env["RAYPLANE_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "rayplane" / "config.yaml"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def find_dev_env(start: Path) -> Path | None:
    """``.rayplane/dev.env`` in ``start`` or the nearest parent that has one."""
    for directory in (start, *start.parents):
        candidate = directory / ".rayplane" / "dev.env"
        if candidate.is_file():
            return candidate
    return None


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments are skipped."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


@dataclass
class ConfigFile:
    """The profiles file. ``load`` tolerates a missing file; ``save`` writes 0600."""

    path: Path
    current: str | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ConfigFile:
        if not path.exists():
            return cls(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
            raise ConfigError(f"{path} is not a Rayplane config file (expected a 'profiles' mapping)")
        profiles = {str(k): dict(v or {}) for k, v in (data.get("profiles") or {}).items()}
        return cls(path, data.get("current_profile"), profiles)

    def loose_permissions(self) -> bool:
        """True when group or others may read the file (it holds secrets)."""
        return self.path.exists() and bool(self.path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))

    def save(self) -> None:
        data = {"current_profile": self.current, "profiles": self.profiles}
        write_private(self.path, yaml.safe_dump(data, sort_keys=False))

    def get(self, name: str) -> dict[str, Any] | None:
        return self.profiles.get(name)

    def require(self, name: str) -> dict[str, Any]:
        profile = self.profiles.get(name)
        if profile is None:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(f"no profile named {name!r} in {self.path} (profiles: {known}); run `rayplane login`")
        return profile


@dataclass
class Overrides:
    """What the command line says: global flags."""

    api_url: str | None = None
    api_key: str | None = None
    profile: str | None = None


@dataclass
class Target:
    """Where to send requests and how to authenticate, with where each came from."""

    api_url: str
    api_key: str | None = None
    entra: dict[str, Any] | None = None
    profile: str | None = None
    url_source: str = "default"
    credential_source: str | None = None
    config_path: Path | None = None

    @property
    def has_credential(self) -> bool:
        return bool(self.api_key or self.entra)


def resolve(
    overrides: Overrides,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    config: ConfigFile | None = None,
) -> Target:
    """Apply the precedence in this module's docstring."""
    env = os.environ if env is None else env
    config = config or ConfigFile.load(config_path(env))
    cwd = cwd or Path.cwd()
    layers: list[tuple[str, str | None, dict[str, Any] | None, str | None]] = []  # source, url, credential, profile
    layers.append(("--api-url/--api-key", overrides.api_url, _key(overrides.api_key), None))
    if overrides.profile:
        p = config.require(overrides.profile)
        layers.append((f"profile {overrides.profile!r} (--profile)", p.get("api_url"), _cred(p), overrides.profile))
    layers.append(("environment", env.get("RAYPLANE_API_URL"), _key(env.get("RAYPLANE_API_KEY")), None))
    if env.get("RAYPLANE_PROFILE") and not overrides.profile:
        name = env["RAYPLANE_PROFILE"]
        p = config.require(name)
        layers.append((f"profile {name!r} (RAYPLANE_PROFILE)", p.get("api_url"), _cred(p), name))
    dev_env = find_dev_env(cwd)
    if dev_env is not None:
        values = read_env_file(dev_env)
        layers.append((str(dev_env), values.get("RAYPLANE_API_URL"), _key(values.get("RAYPLANE_API_KEY")), None))
    current = config.current or DEFAULT_PROFILE
    if not (overrides.profile or env.get("RAYPLANE_PROFILE")) and config.get(current) is not None:
        p = config.profiles[current]
        layers.append((f"profile {current!r}", p.get("api_url"), _cred(p), current))

    target = Target(api_url=DEFAULT_API_URL, config_path=config.path)
    url_found = cred_found = False
    for source, url, cred, profile in layers:
        if url and not url_found:
            target.api_url, target.url_source, url_found = url.rstrip("/"), source, True
        if cred and not cred_found:
            target.api_key = cred.get("api_key")
            target.entra = cred if cred.get("auth") == "entra" else None
            target.credential_source, target.profile, cred_found = source, profile, True
    return target


def _key(value: str | None) -> dict[str, Any] | None:
    return {"api_key": value} if value else None


def _cred(profile: Mapping[str, Any]) -> dict[str, Any] | None:
    if profile.get("auth") == "entra":
        return dict(profile)
    return _key(profile.get("api_key"))
