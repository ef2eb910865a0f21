"""Rate limits with the `limits` library (moving window): in Redis when REDIS_URL is set, so
every worker shares the counters, in memory otherwise."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from app.core.config import Settings
from app.core.errors import RateLimited


class RateLimiter:
    def __init__(self, settings: Settings, redis_url: str | None) -> None:
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.storage: Storage = (
            RedisStorage(
                _async_uri(redis_url),
                implementation="redispy",
                key_prefix=f"{settings.REDIS_NAMESPACE}:rl",
            )
            if redis_url
            else MemoryStorage()
        )
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.default = RateLimitItemPerSecond(
            settings.RATE_LIMIT_REQUESTS, settings.RATE_LIMIT_WINDOW
        )
        self.auth = RateLimitItemPerSecond(
            settings.AUTH_RATE_LIMIT_REQUESTS, settings.AUTH_RATE_LIMIT_WINDOW
        )

    async def hit(self, scope: str, key: str, *, auth: bool = False) -> None:
        """Count one request for `scope:key`; raise 429 with Retry-After when over the limit."""
        if not self.enabled:
            return
        item = self.auth if auth else self.default
        if not await self.strategy.hit(item, scope, key):
            stats = await self.strategy.get_window_stats(item, scope, key)
            raise RateLimited(retry_after=max(1, math.ceil(stats.reset_time - time.time())))

    async def reset(self) -> None:
        await self.storage.reset()


def _async_uri(redis_url: str) -> str:
    return redis_url if redis_url.startswith("async+") else "async+" + redis_url
