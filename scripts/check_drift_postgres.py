"""`alembic check` against a scratch PostgreSQL database: models and migrations must agree on
PostgreSQL too (types differ from SQLite)."""

from __future__ import annotations

import asyncio
import os
import uuid

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.bootstrap import alembic_config
from app.core.database import create_null_pool_engine


async def _admin(sql: str) -> None:
    engine = create_null_pool_engine(os.environ["DATABASE_URL"])
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(sql))
    await engine.dispose()


def main() -> None:
    name = f"gatehouse_drift_{uuid.uuid4().hex[:8]}"
    url = make_url(os.environ["DATABASE_URL"]).set(database=name).render_as_string(False)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)
        print("PostgreSQL: no drift")
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
