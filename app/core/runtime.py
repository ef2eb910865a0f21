"""Everything a running application shares between requests, built once in the lifespan and
kept on `app.state.runtime`. Tests build their own (light hashing, frozen clock, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from app.core.cache import SharedState
from app.core.clock import Clock
from app.core.config import Settings
from app.core.security import PasswordHasher, TokenService

if TYPE_CHECKING:
    from app.core.mail import Mailer
    from app.core.ratelimit import RateLimiter


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    state: SharedState
    clock: Clock
    hasher: PasswordHasher
    tokens: TokenService
    mailer: Mailer
    limiter: RateLimiter
    # Module-owned singletons (principal store, policy engine, ...) registered at start-up.
    services: dict[str, Any] = field(default_factory=dict)


def get_runtime(conn: HTTPConnection) -> Runtime:
    runtime: Runtime = conn.app.state.runtime
    return runtime


async def _runtime_dependency(conn: HTTPConnection) -> Runtime:
    # async on purpose: FastAPI runs plain `def` dependencies in its thread pool.
    return get_runtime(conn)


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]
