"""Wire shapes of clouds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: int = Field(ge=1, le=4096, description="CPUs this cloud may use for Ray nodes")
    memory_gib: float = Field(gt=0, le=65536)
    gpus: int = Field(default=0, ge=0, le=512)
    max_nodes: int = Field(default=16, ge=1, le=10000, description="Most Ray nodes (processes) at once")


class CloudCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=3, max_length=63, examples=["laptop"])
    provider: Literal["local", "azure"] = "local"
    capacity: Capacity | None = Field(default=None, description="local only; defaults to this machine's")
    default: bool = Field(default=False, description="Use this cloud when a cluster names none")


class CloudOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["cld_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    name: str
    provider: str
    status: str
    status_reason: str | None = None
    is_default: bool
    config: dict[str, Any]
    ray_versions: list[str]
    created_at: datetime
    updated_at: datetime
