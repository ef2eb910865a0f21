"""The `gatehouse` command: first start on a fresh directory, restarts, demo data, production
refusals, check-config masking and create-superuser. `uvicorn.run` is replaced by a recorder:
everything up to listening is real (migrations, seed, settings) on a temporary SQLite file."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pwdlib import PasswordHash
from typer.testing import CliRunner

import app
from app.cli import cli
from app.core.config import Settings

runner = CliRunner()
CREDENTIALS_RE = re.compile(r"Created (\S+).* with password: (\S+)")
STRONG_KEY = "k" * 20 + "-Very-Random-Production-Key-0123456789"
LIGHT_HASHING = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "1024", "LOG_LEVEL": "WARNING"}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory and an environment holding none of our settings."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield tmp_path
    root.handlers[:] = handlers  # `serve` configures logging for the process
    root.setLevel(level)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_run(app: str, **kwargs: Any) -> None:
        calls.append({"app": app, **kwargs})

    monkeypatch.setattr("uvicorn.run", fake_run)
    return calls


def invoke(args: list[str], **env: str) -> Any:
    return runner.invoke(cli, args, env={**LIGHT_HASHING, **env})


def _hash_of(db: Path, username: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = ?", (username,))
        found = row.fetchone()
    return found[0] if found else None


def _roles_of(db: Path, username: str) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT r.name FROM users u JOIN user_roles ur ON ur.user_id = u.id"
            " JOIN roles r ON r.id = ur.role_id WHERE u.username = ?",
            (username,),
        ).fetchall()
    return {r[0] for r in rows}


def _verifies(password: str, hashed: str | None) -> bool:
    return hashed is not None and PasswordHash.recommended().verify(password, hashed)


def test_serve_on_a_fresh_directory(workdir: Path, served: list[dict[str, Any]]) -> None:
    result = invoke(["serve"])
    assert result.exit_code == 0, result.output
    db = workdir / "gatehouse.db"
    assert db.exists()
    # Migrated and seeded: the super-admin exists with the printed, strong random password.
    printed = dict(CREDENTIALS_RE.findall(result.output))
    password = printed["superadmin"]
    assert len(password) >= 16 and password not in ("admin", "superadmin", "changeme")
    assert _verifies(password, _hash_of(db, "superadmin"))
    assert _roles_of(db, "superadmin") == {"superadmin"}
    assert _hash_of(db, "demo_user") is None
    # Listens on 127.0.0.1:8000 with one worker by default.
    assert len(served) == 1
    call = served[0]
    assert call["app"] == "app.main:create_app" and call["factory"] is True
    assert (call["host"], call["port"], call["workers"], call["reload"]) == (
        "127.0.0.1",
        8000,
        1,
        False,
    )
    # Development: a signing key was generated once, private to the owner.
    key_file = workdir / ".gatehouse_secret_key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o077) == 0
    assert len(key_file.read_text().strip()) >= 32


def test_restart_keeps_key_and_never_reprints_password(
    workdir: Path, served: list[dict[str, Any]]
) -> None:
    assert invoke(["serve"]).exit_code == 0
    key = (workdir / ".gatehouse_secret_key").read_text()
    first_hash = _hash_of(workdir / "gatehouse.db", "superadmin")
    again = invoke(["serve"])
    assert again.exit_code == 0, again.output
    assert "password:" not in again.output
    assert (workdir / ".gatehouse_secret_key").read_text() == key
    assert key.strip() == Settings(_env_file=None).SECRET_KEY  # type: ignore[call-arg]
    assert _hash_of(workdir / "gatehouse.db", "superadmin") == first_hash
    assert len(served) == 2


def test_superadmin_password_from_environment(workdir: Path, served: list[Any]) -> None:
    result = invoke(["serve"], SUPERADMIN_PASSWORD="Chosen-By-The-Operator-7")
    assert result.exit_code == 0, result.output
    assert "Chosen-By-The-Operator-7" not in result.output
    assert "password:" not in result.output
    assert _verifies("Chosen-By-The-Operator-7", _hash_of(workdir / "gatehouse.db", "superadmin"))


def test_serve_options_reach_uvicorn(workdir: Path, served: list[dict[str, Any]]) -> None:
    result = invoke(["serve", "--host", "0.0.0.0", "--port", "9001", "--workers", "3"])
    assert result.exit_code == 0, result.output
    call = served[0]
    assert (call["host"], call["port"], call["workers"]) == ("0.0.0.0", 9001, 3)
    from_env = invoke(["serve"], WEB_CONCURRENCY="4")
    assert from_env.exit_code == 0
    assert served[1]["workers"] == 4
    reload_result = invoke(["serve", "--reload"])
    assert reload_result.exit_code == 0
    assert served[2]["reload"] is True
    # The application's code is watched, not whatever directory the command runs in.
    assert served[2]["reload_dirs"] == [str(Path(app.__file__).resolve().parent)]


def test_demo_users_with_demo_password(workdir: Path, served: list[Any]) -> None:
    result = invoke(["serve", "--demo"], DEMO_PASSWORD="Demo-Password-For-All-1")
    assert result.exit_code == 0, result.output
    db = workdir / "gatehouse.db"
    with sqlite3.connect(db) as conn:
        roles = {r[0] for r in conn.execute("SELECT name FROM roles")}
    assert {"admin", "user"} <= roles
    for role in roles - {"superadmin"}:
        assert _roles_of(db, f"demo_{role}") == {role}
        assert _verifies("Demo-Password-For-All-1", _hash_of(db, f"demo_{role}"))
    assert "Demo-Password-For-All-1" not in result.output


def test_demo_users_with_printed_random_password(workdir: Path, served: list[Any]) -> None:
    result = invoke(["serve", "--demo"])
    assert result.exit_code == 0, result.output
    printed = dict(CREDENTIALS_RE.findall(result.output))
    demo_password = printed["demo_*"]
    assert demo_password != printed["superadmin"]
    assert _verifies(demo_password, _hash_of(workdir / "gatehouse.db", "demo_admin"))


@pytest.mark.parametrize(
    "key", [None, "changeme", "short-but-not-empty", "a" * 64, "ab" * 32, "0123" * 12]
)
def test_production_refuses_missing_or_weak_secret_key(
    workdir: Path, served: list[Any], key: str | None
) -> None:
    env = {"ENVIRONMENT": "production"}
    if key is not None:
        env["SECRET_KEY"] = key
    result = invoke(["serve"], **env)
    assert result.exit_code == 2
    assert "SECRET_KEY" in result.output
    assert served == []
    assert not (workdir / "gatehouse.db").exists()
    assert not (workdir / ".gatehouse_secret_key").exists()


def test_production_starts_with_a_strong_key(workdir: Path, served: list[Any]) -> None:
    result = invoke(["serve"], ENVIRONMENT="production", SECRET_KEY=STRONG_KEY)
    assert result.exit_code == 0, result.output
    assert len(served) == 1
    assert not (workdir / ".gatehouse_secret_key").exists()


def test_check_config_masks_secrets(workdir: Path) -> None:
    result = invoke(
        ["check-config"],
        SECRET_KEY=STRONG_KEY,
        SMTP_PASSWORD="smtp-secret-value",
        DATABASE_URL="postgresql+asyncpg://gate:db-secret-value@db.internal:5432/gatehouse",
        REDIS_URL="redis://:redis-secret-value@cache:6379/0",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    for secret in (STRONG_KEY, "smtp-secret-value", "db-secret-value", "redis-secret-value"):
        assert secret not in out
    assert "SECRET_KEY=***" in out and "SMTP_PASSWORD=***" in out
    assert "DATABASE_URL=postgresql+asyncpg://gate:***@db.internal:5432/gatehouse" in out
    assert "API_PREFIX=/api/v1" in out
    assert "configuration is valid" in out


@pytest.mark.parametrize(
    ("name", "value"),
    [("ALLOWED_ORIGINS", "*"), ("ENVIRONMENT", "prod"), ("DATABASE_POOL_SIZE", "0")],
)
def test_check_config_rejects_invalid_settings(workdir: Path, name: str, value: str) -> None:
    result = invoke(["check-config"], **{name: value})
    assert result.exit_code == 2
    assert name in result.output


def test_migrate_seed_and_create_superuser(workdir: Path) -> None:
    assert invoke(["migrate"]).exit_code == 0
    seeded = invoke(["seed"], SUPERADMIN_PASSWORD="Operator-Chosen-Pass-3")
    assert seeded.exit_code == 0, seeded.output
    db = workdir / "gatehouse.db"
    args = ["create-superuser", "--username", "alice", "--email", "alice@example.org"]
    created = invoke([*args, "--password", "Strong-Horse-Pass-42"])
    assert created.exit_code == 0, created.output
    assert _roles_of(db, "alice") == {"superadmin"}
    assert _verifies("Strong-Horse-Pass-42", _hash_of(db, "alice"))
    again = invoke([*args, "--password", "Another-Strong-Pass-42"])
    assert again.exit_code == 1
    assert _verifies("Strong-Horse-Pass-42", _hash_of(db, "alice"))


def test_migrate_takes_the_revision_as_an_argument(workdir: Path) -> None:
    # As documented: `gatehouse migrate [REVISION]`.
    result = invoke(["migrate", "head"])
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output
    assert _hash_of(workdir / "gatehouse.db", "nobody") is None  # the schema exists


def test_create_superuser_refuses_a_taken_email_cleanly(workdir: Path) -> None:
    assert invoke(["migrate"]).exit_code == 0
    args = ["--email", "alice@example.org", "--password", "Strong-Horse-Pass-42"]
    assert invoke(["create-superuser", "--username", "alice", *args]).exit_code == 0
    again = invoke(["create-superuser", "--username", "bob", *args])
    assert again.exit_code == 1, again.output  # not an IntegrityError traceback
    assert again.exception is None or isinstance(again.exception, SystemExit)
    assert "email already exists" in again.output
    assert _hash_of(workdir / "gatehouse.db", "bob") is None


@pytest.mark.parametrize(
    ("username", "email", "message"),
    [("Bad Name!", "bad@example.org", "Username"), ("carol", "not-an-email", "Email")],
)
def test_create_superuser_validates_username_and_email(
    workdir: Path, username: str, email: str, message: str
) -> None:
    assert invoke(["migrate"]).exit_code == 0
    result = invoke(
        [
            "create-superuser",
            "--username",
            username,
            "--email",
            email,
            "--password",
            "Strong-Horse-Pass-42",
        ]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    with sqlite3.connect(workdir / "gatehouse.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_create_superuser_is_audited(workdir: Path) -> None:
    assert invoke(["migrate"]).exit_code == 0
    result = invoke(
        [
            "create-superuser",
            "--username",
            "Alice",
            "--email",
            "Alice@Example.org",
            "--password",
            "Strong-Horse-Pass-42",
        ]
    )
    assert result.exit_code == 0, result.output
    with sqlite3.connect(workdir / "gatehouse.db") as conn:
        rows = conn.execute(
            "SELECT a.action, a.resource_id, a.changes, a.details FROM audit_logs a"
        ).fetchall()
        (user_id,) = conn.execute("SELECT id FROM users WHERE username = 'alice'").fetchone()
    assert len(rows) == 1
    action, resource_id, changes, details = rows[0]
    assert action == "user.create"
    assert resource_id.replace("-", "") == str(user_id).replace("-", "")
    assert "superadmin" in changes and "alice@example.org" in changes
    assert "password" not in changes and "create-superuser" in details


@pytest.mark.parametrize("password", ["password", "short", "xx-alice-xx-1234"])
def test_create_superuser_refuses_weak_passwords(workdir: Path, password: str) -> None:
    assert invoke(["migrate"]).exit_code == 0
    result = invoke(
        [
            "create-superuser",
            "--username",
            "alice",
            "--email",
            "alice@example.org",
            "--password",
            password,
        ]
    )
    assert result.exit_code == 2
    assert "Password" in result.output
    assert _hash_of(workdir / "gatehouse.db", "alice") is None


# ---- on each test backend ----------------------------------------------------------------


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a PostgreSQL database of this worker's own."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from app.core.database import create_null_pool_engine
    from tests.conftest import POSTGRES_URL, WORKER

    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'elsewhere.db'}"
        return
    name = f"gatehouse_cli_{WORKER}_{os.getpid()}"
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    async def recreate(create: bool) -> None:
        admin = create_null_pool_engine(POSTGRES_URL)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if create:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    asyncio.run(recreate(True))
    try:
        yield url
    finally:
        asyncio.run(recreate(False))


def _db_roles_of(url: str, username: str) -> set[str]:
    import asyncio

    from sqlalchemy import text

    from app.core.database import create_null_pool_engine

    async def query() -> set[str]:
        engine = create_null_pool_engine(url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT r.name FROM users u JOIN user_roles ur ON ur.user_id = u.id"
                    " JOIN roles r ON r.id = ur.role_id WHERE u.username = :u"
                ),
                {"u": username},
            )
            names = {r[0] for r in rows}
        await engine.dispose()
        return names

    return asyncio.run(query())


def test_commands_with_database_url(
    workdir: Path, served: list[dict[str, Any]], fresh_database: str
) -> None:
    env = {"DATABASE_URL": fresh_database}
    assert invoke(["migrate"], **env).exit_code == 0
    first = invoke(["serve", "--demo"], DEMO_PASSWORD="Demo-Password-For-All-1", **env)
    assert first.exit_code == 0, first.output
    assert "Created superadmin" in first.output
    assert _db_roles_of(fresh_database, "superadmin") == {"superadmin"}
    assert _db_roles_of(fresh_database, "demo_admin") == {"admin"}
    again = invoke(["serve"], **env)
    assert again.exit_code == 0 and "Created superadmin" not in again.output
    created = invoke(
        [
            "create-superuser",
            "--username",
            "alice",
            "--email",
            "alice@example.org",
            "--password",
            "Strong-Horse-Pass-42",
        ],
        **env,
    )
    assert created.exit_code == 0, created.output
    assert _db_roles_of(fresh_database, "alice") == {"superadmin"}
    # DATABASE_URL was honoured: no embedded file in the working directory.
    assert not (workdir / "gatehouse.db").exists()
