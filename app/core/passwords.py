"""Password policy (NIST 800-63B): length bounds, a blocklist of common passwords, and no
password equal to or containing the username or the email's local part. Composition rules are
available as settings, off by default."""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path

from app.core.config import Settings
from app.core.errors import ValidationFailed

BLOCKLIST_FILE = Path(__file__).parent / "data" / "common_passwords.txt"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    if not BLOCKLIST_FILE.exists():
        return frozenset()
    return frozenset(
        line.strip().lower() for line in BLOCKLIST_FILE.read_text().splitlines() if line.strip()
    )


def password_problems(
    password: str, settings: Settings, *, username: str | None = None, email: str | None = None
) -> list[str]:
    problems: list[str] = []
    if len(password) < settings.PASSWORD_MIN_LENGTH:
        problems.append(f"must be at least {settings.PASSWORD_MIN_LENGTH} characters long")
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        # Refused before it reaches the hash: long inputs are a denial-of-service lever.
        problems.append(f"must be at most {settings.PASSWORD_MAX_LENGTH} characters long")
        return problems
    lowered = password.lower()
    if lowered in common_passwords():
        problems.append("is too common; choose a less predictable password")
    for label, value in (("username", username), ("email", email)):
        if not value:
            continue
        needle = value.lower().split("@")[0] if label == "email" else value.lower()
        if len(needle) >= 3 and (needle in lowered or lowered == value.lower()):
            problems.append(f"must not contain your {label}")
    if settings.PASSWORD_REQUIRE_UPPERCASE and not any(c.isupper() for c in password):
        problems.append("must contain an uppercase letter")
    if settings.PASSWORD_REQUIRE_LOWERCASE and not any(c.islower() for c in password):
        problems.append("must contain a lowercase letter")
    if settings.PASSWORD_REQUIRE_NUMBERS and not any(c.isdigit() for c in password):
        problems.append("must contain a digit")
    if settings.PASSWORD_REQUIRE_SPECIAL and not any(c in string.punctuation for c in password):
        problems.append("must contain a special character")
    return problems


def validate_password(
    password: str,
    settings: Settings,
    *,
    username: str | None = None,
    email: str | None = None,
    field: str = "password",
) -> None:
    problems = password_problems(password, settings, username=username, email=email)
    if problems:
        raise ValidationFailed(
            f"Password {problems[0]}",
            code="weak_password",
            errors=[{"field": field, "message": f"Password {p}"} for p in problems],
        )
