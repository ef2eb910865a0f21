"""The rate limiter against a real Redis, with two limiters standing for two worker processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from app.core.errors import RateLimited
from app.core.ratelimit import FLUSH_SECONDS, SWEEP_SECONDS, RateLimiter, SweepingMemoryStorage
from tests.conftest import REDIS_URL, make_settings


def limiter(namespace: str, redis_url: str | None = REDIS_URL) -> RateLimiter:
    settings = make_settings(
        RATE_LIMIT_ENABLED=True,
        RATE_LIMIT_REQUESTS=5,
        RATE_LIMIT_WINDOW=60,
        AUTH_RATE_LIMIT_REQUESTS=3,
        AUTH_RATE_LIMIT_WINDOW=60,
        REDIS_NAMESPACE=namespace,
    )
    return RateLimiter(settings, redis_url)


@pytest.fixture
async def workers() -> AsyncIterator[tuple[RateLimiter, RateLimiter]]:
    namespace = f"gh-test-rl-{uuid.uuid4().hex[:10]}"
    a, b = limiter(namespace), limiter(namespace)
    yield a, b
    await a.close()
    await b.close()
    assert a.shared is not None
    await a.shared.storage.reset()  # this namespace's keys only


async def admitted(worker: RateLimiter, times: int, key: str = "user:1") -> int:
    count = 0
    for _ in range(times):
        try:
            await worker.hit("api", key)
        except RateLimited:
            break
        count += 1
    return count


async def test_each_worker_holds_the_limit_without_waiting_for_redis(
    workers: tuple[RateLimiter, RateLimiter],
) -> None:
    a, _ = workers
    assert await admitted(a, 5) == 5
    with pytest.raises(RateLimited) as refused:
        await a.hit("api", "user:1")
    # Moving window: the next request is due when the first of the five leaves the window.
    assert int(refused.value.headers["Retry-After"]) == 60
    assert await admitted(a, 5, key="user:2") == 5  # another principal has its own budget


async def test_workers_share_the_general_limit_through_redis(
    workers: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = workers
    assert await admitted(a, 3) == 3
    await a.flush()
    assert await admitted(b, 2) == 2
    await b.flush()  # Redis now holds all five
    # Each worker may let one flush interval's requests through before it learns of the rest.
    assert await admitted(b, 1) == 1
    await b.flush()
    with pytest.raises(RateLimited) as refused:
        await b.hit("api", "user:1")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert await admitted(a, 1) == 1
    await a.flush()
    assert await admitted(a, 1) == 0
    assert await admitted(b, 1, key="user:2") == 1  # the refusal is for that principal only


async def test_counts_reach_redis_by_themselves(
    workers: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = workers
    assert await admitted(a, 4) == 4
    for _ in range(100):  # the flush runs FLUSH_SECONDS after the first pending hit
        await asyncio.sleep(FLUSH_SECONDS)
        assert b.shared is not None
        if (await b.shared.get_window_stats(b.default, "api", "user:1")).remaining == 1:
            break
    else:
        raise AssertionError("the counts never reached Redis")
    assert await admitted(b, 2) == 2  # one under the limit, one in flight
    await b.flush()
    assert await admitted(b, 1) == 0


async def test_authentication_limits_are_exact_across_workers(
    workers: tuple[RateLimiter, RateLimiter],
) -> None:
    a, b = workers
    await a.hit("login:ip", "198.51.100.7", auth=True)
    await a.hit("login:ip", "198.51.100.7", auth=True)
    await b.hit("login:ip", "198.51.100.7", auth=True)
    with pytest.raises(RateLimited):  # no flush: every authentication hit is checked in Redis
        await b.hit("login:ip", "198.51.100.7", auth=True)
    with pytest.raises(RateLimited):
        await a.hit("login:ip", "198.51.100.7", auth=True)


async def test_without_redis_the_worker_holds_the_limit_alone() -> None:
    """A Redis that cannot be reached loses the shared counts (logged), never a request, and
    the worker's own limit still holds."""
    unreachable = limiter("gh-test-rl-down", redis_url="redis://127.0.0.1:1/0")
    assert await admitted(unreachable, 3) == 3
    await unreachable.flush()
    assert await admitted(unreachable, 5) == 2
    await unreachable.close()
    memory_only = limiter("unused", redis_url=None)
    assert await admitted(memory_only, 6) == 5
    await memory_only.flush()  # nothing to do


async def test_memory_storage_sweeps_once_a_second() -> None:
    """The library's 10 ms sweep is replaced (this fails if a limits upgrade renames the hook),
    and expired entries still go, idle keys with them."""
    from limits import RateLimitItemPerSecond

    memory = limiter("unused", redis_url=None)
    storage = memory.local.storage
    assert isinstance(storage, SweepingMemoryStorage)
    short = RateLimitItemPerSecond(2, 1)
    memory.local.hit(short, "api", "user:1")
    await asyncio.sleep(0.05)  # the constructor's first 10 ms timer has fired
    memory.local.hit(short, "api", "user:2")
    assert storage.timer.interval == SWEEP_SECONDS and storage.timer.daemon
    idle = {k for k in storage.events if "user:1" in k or "user:2" in k}
    assert len(idle) == 2
    for _ in range(40):  # their entries expire after 1 s; a later sweep drops the idle keys
        await asyncio.sleep(0.1)
        memory.local.hit(short, "api", "user:3")  # traffic goes on (it schedules the sweeps)
        if not idle & set(storage.events):
            break
    else:
        raise AssertionError(f"idle keys were never swept: {list(storage.events)}")
    assert memory.local.hit(short, "api", "user:1")  # the window is free again
