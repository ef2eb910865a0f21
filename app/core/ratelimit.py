"""Rate limits with the `limits` library: in Redis when REDIS_URL is set, so every worker
shares the counters, in process memory otherwise.

Moving window: a request is admitted when fewer than the limit were admitted in the window
before it, so no window of that length, wherever it starts, ever holds more. The library keeps
one timestamp per admitted request and key (at most the limit, 600 at the default); a counter
approximation (sliding window counter) would be O(1) but can admit a little over the limit in
some windows, and the authentication limits are a guarantee against guessing.

The in-memory case uses the library's synchronous storage and strategy on purpose: a hit is a
few dictionary operations under a lock, with no await. Its asyncio storage schedules an expiry
task that hops to a thread on nearly every hit, which cost more than the whole rest of an
authenticated request (bench/users_me.py: 3,900 vs 7,000 req/s). That storage sweeps expired
entries from every key 10 ms after any hit, copying each key's list: with 5,000 active keys of
50 entries it took two thirds of a core (0.08 with SweepingMemoryStorage). A hit's decision
never needs the sweep (it reads the limit-th newest entry), so that storage sweeps once a
second, and drops idle keys, which the library keeps.

With Redis, the authentication limits (login, registration, password reset: per address and
per account) are checked in Redis on every hit: they guard against guessing and must hold
exactly across workers. The general per-principal limit is counted in two tiers, as
distributed limiters commonly are: each worker enforces it exactly over its own requests in
memory, and adds its counts to Redis in one batch per key every FLUSH_SECONDS, off the request
path. A key Redis finds over the limit is refused by every worker until its window frees up.
So the limit holds across workers to within one flush interval of traffic, and an API request
costs no Redis round trip: one per request had halved `/users/me` throughput
(bench/users_me.py --redis: 2,700 vs 6,000 req/s without limits).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import threading
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter as MovingWindow

from app.core.config import Settings
from app.core.errors import RateLimited

logger = logging.getLogger("gatehouse.ratelimit")

# Between two sweeps of expired entries from the in-memory storage (the library's is 10 ms).
SWEEP_SECONDS = 1.0

# How long a worker's counts for the general limit wait before they are added to Redis.
FLUSH_SECONDS = 0.05

_Key = tuple[str, str]


class SweepingMemoryStorage(MemoryStorage):
    """The library's memory storage, swept once every SWEEP_SECONDS, and of idle keys too.

    Overrides the storage's private scheduling hook (limits is pinned; a test checks that the
    override is in effect). Between sweeps a key's list holds at most SWEEP_SECONDS of entries
    past its window, which no decision reads. The library's own sweep empties an idle key's
    list but keeps the key: one entry per client address ever seen, each visited by every
    sweep; this one drops it."""

    def _MemoryStorage__schedule_expiry(self) -> None:
        if not self.timer.is_alive():
            self.timer = threading.Timer(SWEEP_SECONDS, self.sweep)
            self.timer.daemon = True  # never holds up the process's exit
            self.timer.start()

    def sweep(self) -> None:
        now = time.time()
        for key in list(self.events):
            with self.locks[key]:
                events = self.events.get(key)
                if events:  # newest first: keep the entries that have not expired
                    live = bisect.bisect_left(events, -now, key=lambda entry: -entry.expiry)
                    self.events[key] = events[:live]
                if not self.events.get(key):
                    self.events.pop(key, None)
                    self.locks.pop(key, None)
        for key, expiry in list(self.expirations.items()):
            if expiry <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


class RateLimiter:
    def __init__(self, settings: Settings, redis_url: str | None) -> None:
        self.enabled = settings.RATE_LIMIT_ENABLED
        # Always: the whole limit without Redis, this worker's share of it with Redis.
        self.local = MovingWindow(SweepingMemoryStorage())
        self.shared: AsyncMovingWindow | None = None
        if redis_url:
            self.shared = AsyncMovingWindow(
                RedisStorage(
                    _async_uri(redis_url),
                    implementation="redispy",
                    key_prefix=f"{settings.REDIS_NAMESPACE}:rl",
                )
            )
        self.default = RateLimitItemPerSecond(
            settings.RATE_LIMIT_REQUESTS, settings.RATE_LIMIT_WINDOW
        )
        self.auth = RateLimitItemPerSecond(
            settings.AUTH_RATE_LIMIT_REQUESTS, settings.AUTH_RATE_LIMIT_WINDOW
        )
        # The general limit's second tier (with Redis only).
        self._pending: dict[_Key, int] = {}
        self._refused_until: dict[_Key, float] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def hit(self, scope: str, key: str, *, auth: bool = False) -> None:
        """Count one request for `scope:key`; raise 429 with Retry-After when over the limit."""
        if not self.enabled:
            return
        if auth and self.shared is not None:
            if not await self.shared.hit(self.auth, scope, key):
                self._refuse((await self.shared.get_window_stats(self.auth, scope, key)).reset_time)
            return
        item = self.auth if auth else self.default
        if self.shared is not None:
            until = self._refused_until.get((scope, key))
            if until is not None:
                if until > time.time():
                    self._refuse(until)
                del self._refused_until[(scope, key)]
        if not self.local.hit(item, scope, key):
            self._refuse(self.local.get_window_stats(item, scope, key).reset_time)
        if self.shared is not None:
            self._pending[(scope, key)] = self._pending.get((scope, key), 0) + 1
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Add this worker's pending counts for the general limit to Redis; remember the keys
        Redis finds over the limit. A Redis failure loses those counts (logged): each worker's
        own limit still holds."""
        if self.shared is None:
            return
        pending, self._pending = self._pending, {}
        item = self.default
        for (scope, key), count in pending.items():
            try:
                if not await self.shared.hit(item, scope, key, cost=count):
                    stats = await self.shared.get_window_stats(item, scope, key)
                    self._refused_until[(scope, key)] = stats.reset_time
            except Exception:
                logger.warning("could not add rate-limit counts to Redis", exc_info=True)
                return
        now = time.time()
        for refused, until in list(self._refused_until.items()):
            if until <= now:
                del self._refused_until[refused]

    @staticmethod
    def _refuse(reset_time: float) -> None:
        raise RateLimited(retry_after=max(1, math.ceil(reset_time - time.time())))

    async def close(self) -> None:
        """At shutdown: the counts still pending (under FLUSH_SECONDS' worth) are dropped."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def reset(self) -> None:
        self.local.storage.reset()
        self._pending.clear()
        self._refused_until.clear()
        if self.shared is not None:
            await self.shared.storage.reset()


def _async_uri(redis_url: str) -> str:
    return redis_url if redis_url.startswith("async+") else "async+" + redis_url
