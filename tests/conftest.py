"""Test fixtures: every test runs once per configured backend.

Backends (GATEHOUSE_TEST_BACKENDS, default "sqlite"):
  * sqlite   - a SQLite file copied per test from a migrated and seeded template; in-process
               shared state (no Redis).
  * postgres - PostgreSQL (GATEHOUSE_TEST_POSTGRES_URL) plus Redis (GATEHOUSE_TEST_REDIS_URL):
               one database per xdist worker, migrated once, and per test truncated and
               restored to the seeded snapshot.
The schema is always built by Alembic, never by metadata.create_all.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import make_url

from app.bootstrap import migrate, seed
from app.core.clock import FrozenClock
from app.core.config import Settings
from app.core.database import create_null_pool_engine
from app.main import create_app
from app.models_registry import load_all_models
from tests.factories import Factory

BACKENDS = [
    b.strip() for b in os.environ.get("GATEHOUSE_TEST_BACKENDS", "sqlite").split(",") if b.strip()
]
POSTGRES_URL = os.environ.get(
    "GATEHOUSE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("GATEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
SUPERADMIN_PASSWORD = "Superadmin-Test-Pass-1"

BASE_TEST_SETTINGS: dict[str, Any] = {
    "ENVIRONMENT": "test",
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_COST": 1024,
    "ARGON2_PARALLELISM": 1,
    "RATE_LIMIT_ENABLED": False,
    "LOG_JSON": False,
    "LOG_LEVEL": "WARNING",
    "SUPERADMIN_PASSWORD": SUPERADMIN_PASSWORD,
    "SUPERADMIN_EMAIL": "superadmin@example.com",
    "SMTP_HOST": None,
    "STATE_POLL_INTERVAL_SECONDS": 0.2,
}


def make_settings(**overrides: Any) -> Settings:
    values = {**BASE_TEST_SETTINGS, **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# One database per pytest process (xdist worker or plain run), so concurrent runs never share.
_DB_NAME = f"gatehouse_test_{WORKER}_{os.getpid()}"


def _worker_db_url() -> str:
    url = make_url(POSTGRES_URL)
    return url.set(database=_DB_NAME).render_as_string(hide_password=False)


async def _drop_postgres_database(url: str) -> None:
    admin = create_null_pool_engine(POSTGRES_URL)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    await admin.dispose()


async def _recreate_postgres_database(url: str) -> None:
    admin = create_null_pool_engine(POSTGRES_URL)
    name = make_url(url).database
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


class Snapshot:
    """The seeded contents of every table, restored before each PostgreSQL test."""

    def __init__(self) -> None:
        self.tables = list(load_all_models().metadata.sorted_tables)
        self.rows: dict[str, list[dict[str, Any]]] = {}

    async def capture(self, url: str) -> None:
        engine = create_null_pool_engine(url)
        async with engine.connect() as conn:
            for table in self.tables:
                result = await conn.execute(select(table))
                self.rows[table.name] = [dict(r) for r in result.mappings()]
        await engine.dispose()

    async def restore(self, url: str) -> None:
        engine = create_null_pool_engine(url)
        names = ", ".join(f'"{t.name}"' for t in self.tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            for table in self.tables:
                rows = self.rows.get(table.name)
                if rows:
                    await conn.execute(insert(table), rows)
        await engine.dispose()


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Built lazily, once per session, for each backend in use."""
    templates: dict[str, Any] = {"dir": tmp_path_factory.mktemp("db-templates")}
    yield templates
    if "postgres" in templates:
        asyncio.run(_drop_postgres_database(_worker_db_url()))


def _sqlite_template(templates: dict[str, Any]) -> Path:
    if "sqlite" not in templates:
        path: Path = templates["dir"] / "template.db"
        url = f"sqlite+aiosqlite:///{path}"
        migrate(url)
        asyncio.run(seed(make_settings(DATABASE_URL=url)))
        templates["sqlite"] = path
    return templates["sqlite"]  # type: ignore[no-any-return]


def _postgres_template(templates: dict[str, Any]) -> Snapshot:
    if "postgres" not in templates:
        url = _worker_db_url()
        asyncio.run(_recreate_postgres_database(url))
        migrate(url)
        asyncio.run(seed(make_settings(DATABASE_URL=url)))
        snapshot = Snapshot()
        asyncio.run(snapshot.capture(url))
        templates["postgres"] = snapshot
    return templates["postgres"]  # type: ignore[no-any-return]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, _templates: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        target = tmp_path / "test.db"
        shutil.copyfile(_sqlite_template(_templates), target)
        yield f"sqlite+aiosqlite:///{target}"
    elif backend == "postgres":
        snapshot = _postgres_template(_templates)
        url = _worker_db_url()
        asyncio.run(snapshot.restore(url))
        yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")


@pytest.fixture
def redis_url(backend: str) -> str | None:
    return REDIS_URL if backend == "postgres" else None


@pytest.fixture
def namespace() -> str:
    """A Redis namespace of this test's own: channels and keys never cross tests or workers."""
    return f"gh-test-{WORKER}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change settings for its app."""
    return {}


@pytest.fixture
def settings(
    database_url: str, redis_url: str | None, namespace: str, settings_overrides: dict[str, Any]
) -> Settings:
    return make_settings(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_NAMESPACE=namespace,
        **settings_overrides,
    )


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock, configure_logs=False)
    async with application.router.lifespan_context(application):
        yield application
        runtime = application.state.runtime
        if runtime.state.redis is not None:
            keys = [
                k
                async for k in runtime.state.redis.scan_iter(match=f"{settings.REDIS_NAMESPACE}:*")
            ]
            if keys:
                await runtime.state.redis.delete(*keys)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def runtime(app: Any) -> Any:
    return app.state.runtime


@pytest.fixture
def factory(app: Any, client: httpx.AsyncClient) -> Factory:
    return Factory(app, client)


@pytest.fixture
async def superadmin(factory: Factory) -> Any:
    return await factory.existing("superadmin", SUPERADMIN_PASSWORD)


@pytest.fixture
async def admin_client(factory: Factory, superadmin: Any) -> httpx.AsyncClient:
    """A client authenticated as the seeded super-admin."""
    return await factory.client_for(superadmin)


__all__ = ["delete", "make_settings"]
