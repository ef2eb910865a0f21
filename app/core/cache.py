"""Process-local caches kept coherent across worker processes.

The per-request path (authentication, permission checks) must not touch the database, so each
process keeps the principals it has built and the set of revoked sessions in memory. Coherence:

* Two counters live in the database (`authz_state`): the authorization version, bumped in the
  same transaction as any change that alters what a principal may do, and the revocation
  version, bumped when sessions are revoked.
* With Redis, the process that committed a change publishes it on a channel right after the
  commit; every process applies it within milliseconds. A slow poll of the counters is the
  safety net for a missed message or a reconnect.
* Without Redis, processes sharing one database poll the counters every
  STATE_POLL_INTERVAL_SECONDS, so a change is seen everywhere within that interval.

The revoked-session set only needs sessions that have not expired (an access token never
outlives its session). Revocations arrive one by one and would otherwise only accumulate, so
the set is re-read from the database every REVOKED_REFRESH_SECONDS, which drops expired ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

logger = logging.getLogger("gatehouse.state")

# How often the revoked-session set is re-read in full, dropping sessions that have expired.
REVOKED_REFRESH_SECONDS = 600.0


@dataclass
class StateSources:
    """How to read the authoritative state (wired to the database at start-up)."""

    read_versions: Callable[[], Awaitable[tuple[int, int]]]
    read_revoked_sessions: Callable[[], Awaitable[set[uuid.UUID]]]


class SharedState:
    def __init__(
        self, redis_url: str | None, poll_interval: float, namespace: str = "gatehouse"
    ) -> None:
        self.channel = f"{namespace}:state"
        self.redis: Redis | None = (
            Redis.from_url(redis_url, decode_responses=True) if redis_url else None
        )
        self._poll_interval = poll_interval if self.redis is None else max(poll_interval, 5.0)
        self.sources: StateSources | None = None
        self.authz_version = -1
        self.revocation_version = -1
        self._principals: dict[Any, Any] = {}
        self._revoked: set[uuid.UUID] = set()
        # While the set is being re-read: revocations applied meanwhile, which the database
        # snapshot being read may predate (they are kept across the swap).
        self._revoked_during_read: set[uuid.UUID] | None = None
        self._revoked_read_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()

    # ---- the hot path: plain dictionary look-ups, no I/O --------------------------------
    def is_session_revoked(self, session_id: uuid.UUID) -> bool:
        return session_id in self._revoked

    def get_principal(self, key: Any) -> Any | None:
        return self._principals.get(key)

    def put_principal(self, key: Any, value: Any, version: int) -> None:
        # A principal built from data older than the version we know of is not kept.
        if version == self.authz_version:
            self._principals[key] = value

    # ---- changes, called after the transaction that made them has committed -------------
    async def authz_changed(self, version: int) -> None:
        self._apply_authz_version(version)
        await self._publish(f"v:{version}")

    async def sessions_revoked(self, version: int, session_ids: list[uuid.UUID]) -> None:
        self._apply_revocations(version, session_ids)
        if session_ids:
            await self._publish(f"s:{version}:" + ",".join(str(s) for s in session_ids))

    def _apply_authz_version(self, version: int) -> None:
        if version != self.authz_version:
            self.authz_version = max(version, self.authz_version)
            self._principals.clear()

    def _apply_revocations(self, version: int, session_ids: list[uuid.UUID]) -> None:
        self._revoked.update(session_ids)
        if self._revoked_during_read is not None:
            self._revoked_during_read.update(session_ids)
        self.revocation_version = max(version, self.revocation_version)

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self, sources: StateSources) -> None:
        self.sources = sources
        await self.resync()
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="state-poll"))
        if self.redis is not None:
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="state-listen"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout=5)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.redis is not None:
            await self.redis.aclose()

    async def resync(self) -> None:
        """Re-read everything from the source of truth (start-up, reconnect, missed message)."""
        assert self.sources is not None
        authz_version, revocation_version = await self.sources.read_versions()
        if revocation_version != self.revocation_version:
            await self.reread_revoked()
            self.revocation_version = max(revocation_version, self.revocation_version)
        if authz_version != self.authz_version:
            self.authz_version = authz_version
            self._principals.clear()

    async def reread_revoked(self) -> None:
        """Replace the revoked set with the database's (unexpired sessions only), keeping any
        revocation applied while the read was in flight."""
        assert self.sources is not None
        applied: set[uuid.UUID] = set()
        self._revoked_during_read = applied
        try:
            fresh = await self.sources.read_revoked_sessions()
        finally:
            self._revoked_during_read = None
        self._revoked = fresh | applied
        self._revoked_read_at = time.monotonic()

    async def ping_redis(self) -> bool:
        if self.redis is None:
            return False
        return bool(await self.redis.ping())

    async def _publish(self, message: str) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.publish(self.channel, message)
        except Exception:  # the poll loop will still carry the change
            logger.warning("could not publish state change", exc_info=True)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                await self.resync()
                if time.monotonic() - self._revoked_read_at >= REVOKED_REFRESH_SECONDS:
                    await self.reread_revoked()
            except Exception:
                logger.warning("state poll failed", exc_info=True)

    async def _listen_loop(self) -> None:
        assert self.redis is not None
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                # Anything published while we were not subscribed is picked up here.
                await self.resync()
                self._ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._handle(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("state channel lost; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)

    def _handle(self, data: str) -> None:
        kind, _, rest = data.partition(":")
        if kind == "v":
            self._apply_authz_version(int(rest))
        elif kind == "s":
            version, _, ids = rest.partition(":")
            self._apply_revocations(int(version), [uuid.UUID(s) for s in ids.split(",") if s])
