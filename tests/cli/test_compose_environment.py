"""docker-compose.yml runs `gatehouse serve`: the environment it hands the app must mean what
an operator expects (docker is not needed to check that)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# Settings whose empty string means something else than "not set" (aiosmtplib logs in whenever
# a username is given, even an empty one, so an empty SMTP_USER breaks mail to a relay).
NULLABLE = {"SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD", "SUPERADMIN_PASSWORD", "DEMO_PASSWORD"}


def app_environment() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment: dict[str, Any] = compose["services"]["app"]["environment"]
    return environment


def test_optional_settings_are_passed_through_never_defaulted_to_empty() -> None:
    environment = app_environment()
    for name in NULLABLE & set(environment):
        value = environment[name]
        # `NAME:` (null) passes the operator's value through, or leaves it unset.
        assert value is None, f"{name}: {value!r} turns 'unset' into an empty string"


def test_every_variable_is_a_setting() -> None:
    known = set(Settings.model_fields) | {"WEB_CONCURRENCY"}
    assert set(app_environment()) <= known
