"""What the app holds for its lifetime: settings, engine, session factory, Redis, validators."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.nudges import Nudger
from rayplane.identity.cache import PrincipalCache
from rayplane.identity.entra import EntraValidator
from rayplane.marketplace.client import FulfillmentClient
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
    auth_cache: PrincipalCache = field(default_factory=lambda: PrincipalCache(0))
    # Separate sessions for safe methods (GET, HEAD, OPTIONS); None means ``sessions``.
    # ``build_state`` sets an autocommit engine and its factory (two round trips fewer).
    read_engine: AsyncEngine | None = None
    read_sessions: async_sessionmaker[AsyncSession] | None = None
    # The SaaS Fulfillment client, made on first use (api/routers/marketplace.py): a server
    # without Marketplace settings starts, and only the Marketplace endpoints answer 503.
    marketplace: FulfillmentClient | None = None
