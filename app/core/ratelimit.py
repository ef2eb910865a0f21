"""Rate limits with the `limits` library: in Redis when REDIS_URL is set, so every worker
shares the counters, in process memory otherwise.

Sliding window counter: two fixed-window counters per key, the previous one weighted by how
much of it still overlaps the window. O(1) time and memory per key whatever the limit (a moving
window keeps one entry per request: 600 per active user at the default limit), and exact for a
burst from a standing start, which is what a client hitting the limit sees.

The in-memory case uses the library's synchronous storage and strategy on purpose: a hit is a
few dictionary operations under a lock, with no await. Its asyncio storage schedules an expiry
task that hops to a thread on nearly every hit, which cost more than the whole rest of an
authenticated request (bench/users_me.py: 3,900 vs 7,000 req/s).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter as AsyncSlidingWindow
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter as SlidingWindow

from app.core.config import Settings
from app.core.errors import RateLimited


class RateLimiter:
    def __init__(self, settings: Settings, redis_url: str | None) -> None:
        self.enabled = settings.RATE_LIMIT_ENABLED
        self.shared: AsyncSlidingWindow | None = None
        self.local: SlidingWindow | None = None
        if redis_url:
            self.shared = AsyncSlidingWindow(
                RedisStorage(
                    _async_uri(redis_url),
                    implementation="redispy",
                    key_prefix=f"{settings.REDIS_NAMESPACE}:rl",
                )
            )
        else:
            self.local = SlidingWindow(MemoryStorage())
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
        if self.local is not None:
            if not self.local.hit(item, scope, key):
                self._refuse(self.local.get_window_stats(item, scope, key).reset_time)
        elif self.shared is not None and not await self.shared.hit(item, scope, key):
            self._refuse((await self.shared.get_window_stats(item, scope, key)).reset_time)

    @staticmethod
    def _refuse(reset_time: float) -> None:
        raise RateLimited(retry_after=max(1, math.ceil(reset_time - time.time())))

    async def reset(self) -> None:
        if self.local is not None:
            self.local.storage.reset()
        elif self.shared is not None:
            await self.shared.storage.reset()


def _async_uri(redis_url: str) -> str:
    return redis_url if redis_url.startswith("async+") else "async+" + redis_url
