"""Settings: every knob comes from the environment or `.env`, validated at start-up.

Fails fast: in production a missing or weak SECRET_KEY stops the process. In development a
random key is generated once and kept in a git-ignored file so tokens survive restarts.
"""

from __future__ import annotations

import math
import re
import secrets
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

WEAK_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "please-change-me"}
MIN_SECRET_LENGTH = 32
DEV_SECRET_FILE = Path(".gatehouse_secret_key")
_ORIGIN_RE = re.compile(r"^https?://[^/\s,]+$")


# A random key of the minimum length carries well over this much (32 hex digits: ~118 bits by
# this estimate; token_urlsafe(48): ~350); "aaaa…" or "abab…" of any length carries next to none.
MIN_SECRET_BITS = 96


def _is_weak_secret(key: str) -> bool:
    """Too short, a well-known placeholder, or too repetitive to be random: a repeated unit, or
    too little entropy estimated from the key's own character frequencies (length x Shannon
    entropy per character)."""
    if len(key) < MIN_SECRET_LENGTH or key.strip().lower() in WEAK_SECRETS:
        return True
    n = len(key)
    if any(key[p:] == key[:-p] for p in range(1, min(n // 2, 64) + 1)):
        return True  # a short unit repeated ("0123" * 12): periodic, not random
    per_char = -sum(c / n * math.log2(c / n) for c in Counter(key).values())
    return per_char * n < MIN_SECRET_BITS


def _load_or_create_dev_secret(path: Path = DEV_SECRET_FILE) -> str:
    """A development key that survives restarts without ever being committed."""
    if path.exists():
        value = path.read_text().strip()
        if len(value) >= MIN_SECRET_LENGTH:
            return value
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Application
    APP_NAME: str = "Gatehouse"
    ENVIRONMENT: Literal["development", "test", "staging", "production"] = "development"
    DEBUG: bool = False
    API_PREFIX: str = "/api/v1"
    DOCS_ENABLED: bool = True
    LOG_LEVEL: str = "INFO"
    LOG_JSON: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics, logs through the process's global OTel
    # providers). Off unless wanted: the provider check costs time on every request, and
    # Prometheus metrics are served at /metrics either way.
    OTEL_ENABLED: bool = False

    # Database
    DATABASE_URL: str = "sqlite+aiosqlite:///./gatehouse.db"
    DATABASE_POOL_SIZE: int = Field(default=10, ge=1, le=200)
    DATABASE_MAX_OVERFLOW: int = Field(default=20, ge=0, le=500)
    DATABASE_ECHO: bool = False

    # Shared state
    REDIS_URL: str | None = None
    # Prefix of every Redis key and channel, so several deployments can share one Redis.
    REDIS_NAMESPACE: str = "gatehouse"
    STATE_POLL_INTERVAL_SECONDS: float = Field(default=0.5, gt=0, le=10)

    # Tokens
    SECRET_KEY: str = ""
    ALGORITHM: Literal["HS256", "HS384", "HS512"] = "HS256"
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    REFRESH_TOKEN_EXPIRE_DAYS: int = Field(default=14, ge=1, le=365)
    TOKEN_ISSUER: str = "gatehouse"
    TOKEN_AUDIENCE: str = "gatehouse-api"
    RESET_TOKEN_EXPIRE_MINUTES: int = Field(default=30, ge=1, le=24 * 60)
    VERIFY_TOKEN_EXPIRE_HOURS: int = Field(default=48, ge=1, le=24 * 30)

    # Password hashing (Argon2id, OWASP profile); tests use light parameters.
    ARGON2_TIME_COST: int = Field(default=2, ge=1)
    ARGON2_MEMORY_COST: int = Field(default=19456, ge=8)
    ARGON2_PARALLELISM: int = Field(default=1, ge=1)

    # Password policy (NIST 800-63B: length and blocklist on, composition off)
    PASSWORD_MIN_LENGTH: int = Field(default=8, ge=6, le=128)
    PASSWORD_MAX_LENGTH: int = Field(default=128, ge=8, le=1024)
    PASSWORD_REQUIRE_UPPERCASE: bool = False
    PASSWORD_REQUIRE_LOWERCASE: bool = False
    PASSWORD_REQUIRE_NUMBERS: bool = False
    PASSWORD_REQUIRE_SPECIAL: bool = False

    # Accounts
    USER_REGISTRATION_ENABLED: bool = True
    EMAIL_VALIDATION_ENABLED: bool = False
    DEFAULT_ROLE: str = "user"
    LOCKOUT_THRESHOLD: int = Field(default=5, ge=1, le=100)
    LOCKOUT_MINUTES: int = Field(default=15, ge=1, le=24 * 60)
    LOCKOUT_MAX_MINUTES: int = Field(default=24 * 60, ge=1)
    SUPERADMIN_EMAIL: str = "superadmin@gatehouse.local"
    SUPERADMIN_PASSWORD: str | None = None
    DEMO_PASSWORD: str | None = None
    BREAK_GLASS_MINUTES: int = Field(default=30, ge=1, le=24 * 60)

    # Rate limits (moving window)
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_REQUESTS: int = Field(default=600, ge=1)
    RATE_LIMIT_WINDOW: int = Field(default=60, ge=1, description="seconds")
    AUTH_RATE_LIMIT_REQUESTS: int = Field(default=20, ge=1)
    AUTH_RATE_LIMIT_WINDOW: int = Field(default=60, ge=1)
    TRUSTED_PROXIES: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # HTTP
    ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    SECURITY_HEADERS_ENABLED: bool = True
    MAX_REQUEST_BODY_BYTES: int = Field(default=1_048_576, ge=1024)

    # Mail
    SMTP_HOST: str | None = None
    SMTP_PORT: int = 587
    SMTP_USER: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_TLS: bool = False
    SMTP_STARTTLS: bool = False
    SMTP_TIMEOUT_SECONDS: float = 10.0
    EMAIL_FROM: str = "gatehouse@localhost"
    FRONTEND_URL: str = "http://localhost:8000"

    @field_validator("ALLOWED_ORIGINS", "TRUSTED_PROXIES", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("ALLOWED_ORIGINS")
    @classmethod
    def _no_wildcard_origin(cls, value: list[str]) -> list[str]:
        # Credentials are allowed on CORS requests, so `*` would hand every site our users.
        if "*" in value:
            raise ValueError("'*' is not allowed: list the exact origins")
        return value

    @field_validator("ALLOWED_ORIGINS")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        # A typo (a trailing slash, a JSON list) would silently disable CORS for that origin.
        for origin in value:
            if not _ORIGIN_RE.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: use scheme://host[:port], comma-separated"
                )
        return value

    @model_validator(mode="after")
    def _secret_key_is_strong(self) -> Settings:
        if _is_weak_secret(self.SECRET_KEY):
            if self.ENVIRONMENT in ("production", "staging"):
                raise ValueError(
                    f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_LENGTH}"
                    " characters (not a placeholder, not a repeated pattern) in production"
                    " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
            if self.ENVIRONMENT == "test":
                self.SECRET_KEY = secrets.token_urlsafe(48)
            else:
                self.SECRET_KEY = _load_or_create_dev_secret()
        if self.PASSWORD_MIN_LENGTH > self.PASSWORD_MAX_LENGTH:
            raise ValueError("PASSWORD_MIN_LENGTH must not exceed PASSWORD_MAX_LENGTH")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        return self.ENVIRONMENT == "production"


@lru_cache
def get_settings() -> Settings:
    return Settings()
