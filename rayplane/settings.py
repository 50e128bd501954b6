"""Process configuration: one pydantic-settings class, every variable prefixed ``RAYPLANE_``.

Contract:
- ``load_settings()`` validates the environment once; a bad value raises
  ``SettingsError`` whose message names the variable (``RAYPLANE_...``) at fault, so
  start-up stops with something a human can act on.
- In ``dev`` mode (the default for ``make run``) secrets may be generated and kept under
  ``data_dir``; in any other mode every secret must be given explicitly.
- ``database_url`` / ``redis_url`` left empty mean "use the embedded servers" (dev only).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "RAYPLANE_"


class SettingsError(RuntimeError):
    """Raised when the environment does not describe a valid configuration."""


class Settings(BaseSettings):
    """Every knob of the control plane. Field ``foo`` is read from ``RAYPLANE_FOO``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    env: Literal["dev", "test", "production"] = "dev"
    data_dir: Path = Path(".rayplane")

    database_url: str | None = None
    redis_url: str | None = None
    # Where local clusters with head fault tolerance keep Ray's GCS tables: a TCP Redis the Ray
    # nodes can reach. Unset: the control plane's own Redis when that is TCP. ``rayplane dev``
    # starts one of its own for this (loopback, password) unless it is set.
    local_gcs_redis_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None

    # Keyed hash of API keys. Rotating it invalidates every key, so it is a real secret.
    secret_key: SecretStr | None = None

    entra_authority: str = "https://login.microsoftonline.com"
    entra_audience: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ca_bundle: Path | None = None
    jwks_cache_seconds: int = Field(default=3600, ge=0)

    # The console's sign-in (web/, docs/web.md): a confidential Entra app, multi-tenant
    # (``web_authority_tenant`` "organizations"). Unset id/secret: Rayplane's Azure app's.
    # ``web_scope`` unset: "<first entra_audience>/user_impersonation", so the session's access
    # token is one the API (and the Marketplace activation) accepts.
    web_client_id: str | None = None
    web_client_secret: SecretStr | None = None
    web_authority_tenant: str = "organizations"
    web_scope: str | None = None
    web_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=1200, ge=0)
    auth_cache_seconds: float = Field(default=10.0, ge=0)
    idempotency_ttl_hours: int = Field(default=24, ge=1)

    # Request limits (api/limits.py, docs/operations.md). A body is refused with 413 from its
    # Content-Length, or while it streams, before any of it is parsed.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_package_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    # A working-dir zip is refused (422) when its central directory declares more than this in
    # all, or more than ``max_package_compression_ratio`` times its own size (zip bombs).
    max_package_uncompressed_bytes: int = Field(default=1024**3, ge=1024)
    max_package_compression_ratio: float = Field(default=200.0, gt=1)
    # Failed authentications per minute, per client address and per API-key prefix (429 after).
    auth_failures_per_minute: int = Field(default=30, ge=0)
    auth_failures_per_key_per_minute: int = Field(default=10, ge=0)

    # Clusters and the local provider.
    local_clouds: bool | None = Field(default=None, description="default: on in dev mode")
    local_cpus: int | None = Field(default=None, ge=1)
    local_memory_gib: float | None = Field(default=None, gt=0)
    local_max_nodes: int = Field(default=16, ge=1)
    # Unset: derived from ``data_dir`` (``ray_root()``), so two control planes never share one.
    local_ray_root: Path | None = None
    # As root, local Ray nodes run as this user (created if missing); empty keeps them root.
    local_node_user: str = "rayplane-ray"
    default_quota_vcpus: int = Field(default=2000, ge=0)
    default_quota_clusters: int = Field(default=50, ge=0)
    task_queue: str = "rayplane"
    # Celery worker processes the dev supervisor (``rayplane dev``) starts; production runs its
    # workers with their own ``--concurrency``.
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    reconcile_busy_seconds: float = Field(default=1.0, gt=0)
    reconcile_steady_seconds: float = Field(default=5.0, gt=0)
    # How long a local Ray head may take to answer before its start counts as failed (retried
    # with backoff); a small machine under load can need more than Ray's own 60 s.
    local_head_timeout_seconds: float = Field(default=120.0, gt=0)
    sweep_hold_seconds: int = Field(default=15, ge=1)
    provisioning_timeout_seconds: int = Field(default=600, ge=10)
    lease_seconds: int = Field(default=120, ge=5)
    max_attempts: int = Field(default=8, ge=1)
    scale_down_idle_seconds: int = Field(default=60, ge=1)

    # Azure provider: Rayplane's multi-tenant Entra app, and where Azure is.
    azure_client_id: str | None = None
    azure_client_secret: SecretStr | None = None
    azure_client_certificate_path: Path | None = None
    azure_federated_token_file: Path | None = None
    azure_home_tenant_id: str | None = None
    azure_arm_url: str = "https://management.azure.com"
    azure_pool_grace_seconds: int = Field(default=1800, ge=0)
    azure_pool_gc_interval_seconds: float = Field(default=60.0, gt=0)
    azure_kubernetes_version: str | None = None
    # The image of the log shipper sidecar in Azure Ray pods (Rayplane's own image, which runs
    # ``python -m rayplane.providers.azure.podship``): docs/observability.md.
    azure_log_shipper_image: str = "rayplane:0.1.0"
    demo_azure: bool = False
    # ``rayplane dev`` starts the Azure emulator as Entra ID and the Marketplace for the console
    # (ops/demo_azure.py ConsoleDemo). Default: on in dev mode when the emulator is installed
    # and RAYPLANE_ENTRA_AUTHORITY is not set.
    dev_console_emulator: bool | None = None

    # Azure Marketplace (SaaS Fulfillment v2 and Metering) and billing.
    marketplace_api_url: str = "https://marketplaceapi.microsoft.com"
    marketplace_client_id: str | None = None
    marketplace_client_secret: SecretStr | None = None
    marketplace_publisher_tenant_id: str | None = None
    # The landing page's unauthenticated calls (resolve, activate), per client address.
    marketplace_resolve_rate_per_minute: int = Field(default=30, ge=0)
    # How long an unsubscribed tenant stays readable (read-only) before it is closed.
    marketplace_retention_days: float = Field(default=30.0, ge=0)
    # How often beat re-sends webhook events still waiting for a worker.
    marketplace_event_sweep_seconds: float = Field(default=10.0, gt=0)

    # Metering (usage -> Marketplace, hourly) and budgets.
    metering_dry_run: bool = False
    metering_delay_seconds: int = Field(default=300, ge=0)
    metering_lookback_hours: int = Field(default=48, ge=1, le=24 * 31)
    metering_warn_age_hours: float = Field(default=20.0, gt=0, lt=24)
    metering_parallelism: int = Field(default=2, ge=1, le=8)
    budget_check_interval_seconds: float = Field(default=300.0, gt=0)
    # Cluster metrics (``rayplane.metrics``): how often the nodes are scraped, and how long
    # the coarsest tier (15-minute means) is kept.
    metrics_scrape_seconds: float = Field(default=15.0, ge=5.0, le=300.0)
    metrics_retention_days: int = Field(default=30, ge=1, le=400)

    # Durable logs of clusters (rayplane/logstore): an Azure Storage connection string (Azurite
    # locally; ``rayplane dev`` sets it when Azurite is installed), or a directory (``file:///…``).
    # Unset: the directory ``<data_dir>/cluster-logs``.
    log_store_url: SecretStr | None = None
    log_container: str = Field(default="rayplane-logs", pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    log_retention_days: int = Field(default=30, ge=1)
    # How often a node's shipper looks for new lines (seconds): the most its logs lag behind.
    log_ship_interval_seconds: float = Field(default=1.0, gt=0, le=60)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("entra_audience", "cors_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be a postgresql:// or postgresql+psycopg:// URL")
        return value

    @field_validator("local_gcs_redis_url")
    @classmethod
    def _tcp_redis(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL: Ray's GCS cannot use a unix socket")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or redis+socket:// URL")
        return value

    @model_validator(mode="after")
    def _secrets_outside_dev(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name, value in (
                    ("secret_key", self.secret_key),
                    ("database_url", self.database_url),
                    ("redis_url", self.redis_url),
                )
                if value is None
            ]
            if missing:
                raise ValueError("required outside dev mode: " + ", ".join(ENV_PREFIX + m.upper() for m in missing))
        return self

    @property
    def gcs_redis_url(self) -> str | None:
        """The Redis local heads keep their GCS in (see ``local_gcs_redis_url``), None if none is
        TCP: then head fault tolerance is refused on local clouds."""
        if self.local_gcs_redis_url:
            return self.local_gcs_redis_url
        if self.redis_url and self.redis_url.startswith(("redis://", "rediss://")):
            return self.redis_url
        return None

    @property
    def is_dev(self) -> bool:
        return self.env != "production"

    @property
    def local_clouds_enabled(self) -> bool:
        return self.is_dev if self.local_clouds is None else self.local_clouds

    def served_providers(self) -> frozenset[str]:
        """The kinds of cloud this control plane can run clusters on."""
        kinds = {"local"} if self.local_clouds_enabled else set()
        if self.azure_client_id:
            kinds.add("azure")
        return frozenset(kinds)

    def local_capacity(self) -> dict[str, float | int]:
        """This machine's capacity unless configured: what a tenant's ``local`` cloud may use."""
        cpus = self.local_cpus or os.cpu_count() or 1
        if self.local_memory_gib is not None:
            memory = self.local_memory_gib
        else:
            memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        return {"cpus": cpus, "memory_gib": memory, "gpus": 0, "max_nodes": self.local_max_nodes}

    def ray_root(self) -> Path:
        """Where this control plane's local Ray nodes live: ``RAYPLANE_LOCAL_RAY_ROOT``, else
        ``/tmp/rp-<8 hex digits of a hash of the resolved data dir>``.

        One root per control plane (per data dir, and so per database in dev), so stopping
        one instance never reaches another's clusters. It is short on purpose: Ray's unix
        socket paths under it must stay within Linux's 107 bytes (``LocalProvider`` refuses
        a root that is too long), which a data dir deep in a checkout would not allow.
        """
        return self.local_ray_root if self.local_ray_root is not None else default_ray_root(self.data_dir)

    def log_store(self) -> str:
        """Where cluster logs go: ``RAYPLANE_LOG_STORE_URL``, else ``file://<data dir>/cluster-logs``."""
        if self.log_store_url is not None:
            return self.log_store_url.get_secret_value()
        return "file://" + str((self.data_dir / "cluster-logs").resolve())

    def hashing_key(self) -> bytes:
        """The HMAC key for API keys; in dev it is generated once and kept in ``data_dir``.

        The file is readable by its owner only (0600, tightened again if someone widened it).
        Processes starting together race to create it: each writes a private temporary file
        and hard-links it into place, which fails if the name exists, so every process reads
        one complete key and never a half-written one.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_urlsafe(32))
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path.read_text().strip().encode()


def default_ray_root(data_dir: Path) -> Path:
    """``/tmp/rp-<8 hex digits>``: one short directory per resolved data dir."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return Path("/tmp") / f"rp-{digest}"  # noqa: S108 - per instance; the provider sets its mode


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item.get("loc", ())]
        name = ENV_PREFIX + loc[0].upper() if loc else "configuration"
        lines.append(f"{name}: {item.get('msg', 'invalid value')}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings() -> Settings:
    """Read and validate the environment; raise ``SettingsError`` naming the bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (validated once)."""
    return load_settings()


def broker_url(url: str) -> str:
    """The Celery (kombu) spelling of a Redis URL: kombu writes a unix-socket Redis as
    ``redis+socket:///path``; ``unix://`` is accepted too."""
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url
