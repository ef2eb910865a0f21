"""Deployment and tooling files stay consistent with the code: every setting is documented in
.env.example (which itself loads), the compose file wires the app to PostgreSQL and Redis with
health checks, the Dockerfile builds in stages and runs unprivileged, pre-commit hooks are local.
Docker cannot run here, so these check the files' structure."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import yaml

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _env_example_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]+)=(.*)$", line)
        if match:
            keys.setdefault(match.group(1), match.group(2))
    return keys


def test_every_setting_is_documented_in_env_example() -> None:
    documented = _env_example_keys()
    missing = set(Settings.model_fields) - set(documented)
    assert not missing, f"add to .env.example: {sorted(missing)}"
    unknown = set(documented) - set(Settings.model_fields)
    assert not unknown, f".env.example names unknown settings: {sorted(unknown)}"


def test_issue_knobs_exist() -> None:
    required = [
        "DATABASE_URL",
        "DATABASE_POOL_SIZE",
        "DATABASE_MAX_OVERFLOW",
        "SECRET_KEY",
        "ALGORITHM",
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "REFRESH_TOKEN_EXPIRE_DAYS",
        "APP_NAME",
        "ENVIRONMENT",
        "DEBUG",
        "API_PREFIX",
        "ALLOWED_ORIGINS",
        "DOCS_ENABLED",
        "USER_REGISTRATION_ENABLED",
        "EMAIL_VALIDATION_ENABLED",
        "RATE_LIMIT_ENABLED",
        "RATE_LIMIT_REQUESTS",
        "RATE_LIMIT_WINDOW",
        "SECURITY_HEADERS_ENABLED",
        "PASSWORD_MIN_LENGTH",
        "PASSWORD_REQUIRE_UPPERCASE",
        "PASSWORD_REQUIRE_LOWERCASE",
        "PASSWORD_REQUIRE_NUMBERS",
        "PASSWORD_REQUIRE_SPECIAL",
        "LOG_LEVEL",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USER",
        "SMTP_PASSWORD",
        "EMAIL_FROM",
        "REDIS_URL",
    ]
    assert set(required) <= set(Settings.model_fields)
    assert Settings.model_fields["API_PREFIX"].default == "/api/v1"


def test_env_example_loads_as_the_defaults() -> None:
    loaded = Settings(_env_file=ROOT / ".env.example", ENVIRONMENT="test")  # type: ignore[call-arg]
    defaults = Settings(_env_file=None, ENVIRONMENT="test")  # type: ignore[call-arg]
    assert loaded.model_dump(exclude={"SECRET_KEY"}) == defaults.model_dump(exclude={"SECRET_KEY"})


def test_gitignore_covers_local_secrets_and_databases() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name in (".gatehouse_secret_key", ".env", "gatehouse.db", "gatehouse.db-wal"):
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
    assert "!.env.example" in patterns


def test_compose_runs_app_with_postgres_and_redis() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"app", "db", "redis"} <= set(services)
    for name in ("app", "db", "redis"):
        assert services[name]["healthcheck"]["test"], name
    app = services["app"]
    assert app["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    env = app["environment"]
    assert (
        env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        and "@db:5432/" in env["DATABASE_URL"]
    )
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert ":?" in env["SECRET_KEY"]  # compose refuses to start without one
    assert env["ENVIRONMENT"].endswith("production}")
    assert "postgres" in services["db"]["image"] and "redis" in services["redis"]["image"]


def test_dockerfile_is_multistage_unprivileged_and_healthchecked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", text, flags=re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 3
    assert "uv sync" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", text, flags=re.MULTILINE)
    assert '"serve", "--host", "0.0.0.0"' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    for must in (".git", ".venv", ".env", ".gatehouse_secret_key", "*.db"):
        assert must in ignored


def test_pre_commit_hooks_are_local() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [r["repo"] for r in config["repos"]] == ["local"]
    entries = {h["entry"] for h in config["repos"][0]["hooks"]}
    assert entries == {"uv run ruff check", "uv run ruff format --check", "uv run mypy app"}


def test_readme_gives_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in setup.splitlines() if line.startswith("    ")]
    assert commands == ["uv run gatehouse serve", "uv run pytest"]
