"""What the app holds for its lifetime: settings, engine, session factory, Redis, validators."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.nudges import Nudger
from rayplane.identity.entra import EntraValidator
from rayplane.settings import Settings


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    entra: EntraValidator
    hashing_key: bytes
    nudger: Nudger
