"""Wire shapes of members and API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from rayplane.common.principal import Role


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["mem_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    oid: str = Field(examples=["00000000-0000-0000-0000-0000000000a1"])
    email: str | None = None
    display_name: str | None = None
    role: Role
    created_at: datetime
    updated_at: datetime


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oid: str = Field(min_length=1, max_length=64, description="Entra object id of the user")
    role: Role = Role.MEMBER
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    display_name: str | None = Field(default=None, max_length=200)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["key_01jd3w5z8k2m4n6p8r0t2v4x6y"])
    name: str
    prefix: str = Field(description="Public part of the key, shown as rpk_<prefix>_…")
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str | None = Field(
        description="The whole key. Shown once: Rayplane keeps only a keyed hash. Null in an idempotent replay."
    )
    secret_omitted: bool = Field(
        default=False,
        description=(
            "True in an idempotent replay (Idempotent-Replayed: true): the key is not kept, so it is not in "
            "the answer; revoke this key and create another if it was lost"
        ),
    )


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.MEMBER
    expires_at: datetime | None = None
