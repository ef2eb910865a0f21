"""Password hashing and token signing.

Argon2id through pwdlib (bcrypt hashes from imports are verified and upgraded on login). Every
hash and verify runs in a worker thread: the argon2 C code releases the GIL, so logins never
stall the event loop. Access tokens are short-lived JWTs with an algorithm allow-list; refresh
and one-time tokens are opaque random strings stored only as SHA-256 digests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from app.core.config import Settings

ACCESS_TOKEN_TYPE = "access"
_T = TypeVar("_T")
VERIFIED_TOKEN_CACHE_SIZE = 50_000


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.ARGON2_TIME_COST,
                    memory_cost=settings.ARGON2_MEMORY_COST,
                    parallelism=settings.ARGON2_PARALLELISM,
                ),
                BcryptHasher(),
            )
        )
        # Verified for unknown users so that "no such user" costs as much as "wrong password".
        self._dummy_hash = self._hash.hash(secrets.token_urlsafe(16))
        # At most one hash per core at a time: a burst of logins queues here instead of running
        # many memory-hard hashes at once (which thrash caches and starve the event loop). A
        # plain executor: the cheapest hand-off to a thread and back on the login hot path.
        self._executor = ThreadPoolExecutor(_usable_cores(), thread_name_prefix="password-hash")

    def hash_sync(self, password: str) -> str:
        return self._hash.hash(password)

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._in_thread(self._hash.hash, password)

    async def verify_and_update(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """(valid, new_hash_or_None). With no stored hash, a dummy is verified to keep timing flat."""
        if hashed is None:
            await self._in_thread(self._hash.verify, password, self._dummy_hash)
            return False, None
        try:
            return await self._in_thread(self._hash.verify_and_update, password, hashed)
        except Exception:  # an unknown or corrupt hash format is a failed login, not a 500
            return False, None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return max(1, os.cpu_count() or 1)


def opaque_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fingerprint(value: str, key: str) -> str:
    """A short keyed digest (e.g. of a password hash) to bind one-time tokens to current state."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: int
    issued_at: int


class TokenError(Exception):
    pass


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.SECRET_KEY
        self._algorithm = settings.ALGORITHM
        self._issuer = settings.TOKEN_ISSUER
        self._audience = settings.TOKEN_AUDIENCE
        self.access_ttl = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
        self._decode_options = {"require": ["exp", "iat", "iss", "aud", "sub", "sid", "typ"]}
        # Tokens already verified, by their exact string: a client sends the same token on
        # every request until it expires, and full verification (base64 checks, HMAC, claim
        # checks) is the largest cost of an authenticated request. Expiry is re-checked on
        # every hit; revocation is checked by the caller on every request anyway.
        self._verified: dict[str, AccessClaims] = {}

    def create_access_token(
        self, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
    ) -> tuple[str, int]:
        expires = now + self.access_ttl
        payload = {
            "sub": str(user_id),
            "sid": str(session_id),
            "typ": ACCESS_TOKEN_TYPE,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "iss": self._issuer,
            "aud": self._audience,
            "jti": secrets.token_hex(8),
        }
        token = jwt.encode(payload, self._key, algorithm=self._algorithm)
        return token, int(self.access_ttl.total_seconds())

    def decode_access_token(self, token: str) -> AccessClaims:
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                return cached
            del self._verified[token]
        claims = self._decode_access_token(token)
        if len(self._verified) >= VERIFIED_TOKEN_CACHE_SIZE:
            self._verified.clear()  # crude but bounded; refills from live traffic at once
        self._verified[token] = claims
        return claims

    def _decode_access_token(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],  # allow-list: never "none", never from the header
                audience=self._audience,
                issuer=self._issuer,
                options=self._decode_options,  # type: ignore[arg-type]
            )
            if payload.get("typ") != ACCESS_TOKEN_TYPE:
                raise TokenError("not an access token")
            return AccessClaims(
                user_id=uuid.UUID(payload["sub"]),
                session_id=uuid.UUID(payload["sid"]),
                expires_at=int(payload["exp"]),
                issued_at=int(payload["iat"]),
            )
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise TokenError(str(exc)) from exc

    def create_purpose_token(
        self, purpose: str, subject: str, now: datetime, ttl: timedelta, **claims: Any
    ) -> str:
        """Signed single-purpose tokens (password reset, email verification)."""
        payload = {
            "sub": subject,
            "typ": purpose,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "iss": self._issuer,
            "aud": f"{self._audience}:{purpose}",
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm=self._algorithm)

    def decode_purpose_token(self, purpose: str, token: str) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=f"{self._audience}:{purpose}",
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        if payload.get("typ") != purpose:
            raise TokenError("wrong token purpose")
        return payload
