"""Wire shapes of jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RuntimeEnv(BaseModel):
    """The subset of Ray's runtime_env that Rayplane accepts."""

    model_config = ConfigDict(extra="forbid")

    env_vars: dict[str, str] = Field(default_factory=dict, max_length=200)
    pip: list[str] | None = Field(default=None, max_length=200)
    working_dir: str | None = Field(
        default=None,
        pattern=r"^gcs://_ray_pkg_[0-9a-f]{16,64}\.zip$",
        description="A URI returned by POST /v1/clusters/{id}/packages",
    )


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entrypoint: str = Field(min_length=1, max_length=20000, examples=["python train.py"])
    runtime_env: RuntimeEnv = Field(default_factory=RuntimeEnv)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)
    entrypoint_num_cpus: float | None = Field(default=None, ge=0, strict=True)
    entrypoint_num_gpus: float | None = Field(default=None, ge=0, strict=True)
    submission_id: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: str = Field(examples=["job_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    cluster_id: str
    submission_id: str
    status: str = Field(examples=["SUCCEEDED"], description="PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED")
    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str] = Field(validation_alias="job_metadata")
    message: str | None = None
    driver_exit_code: int | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class PackageOut(BaseModel):
    uri: str = Field(examples=["gcs://_ray_pkg_3f2a9c0d1e4b5a6c.zip"])
    size_bytes: int
