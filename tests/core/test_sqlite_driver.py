"""The SQLite adapter that runs each statement in one worker-thread call (app/core/sqlite_driver.py):
it must behave exactly like a DB-API cursor for everything SQLAlchemy reads from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from app.core.database import create_null_pool_engine
from app.core.sqlite_driver import OneCallCursor

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), unique=True, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_null_pool_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_uses_the_one_call_cursor(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.dbapi_connection.cursor(), OneCallCursor)


async def test_rows_rowcount_lastrowid_and_returning(engine) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as conn:
        result = await conn.execute(insert(things).values(name="a"))
        assert result.inserted_primary_key == (1,)
        await conn.execute(insert(things), [{"name": "b"}, {"name": "c"}])  # executemany
        returned = await conn.execute(insert(things).values(name="d").returning(things.c.id))
        assert returned.scalar_one() == 4
        changed = await conn.execute(
            update(things).where(things.c.id > 1).values(name=things.c.name + "!")
        )
        assert changed.rowcount == 3
        names = (await conn.execute(select(things.c.name).order_by(things.c.id))).scalars().all()
        assert names == ["a", "b!", "c!", "d!"]
        assert (await conn.execute(text("SELECT count(*) FROM things"))).scalar_one() == 4
        partial = await conn.execute(select(things.c.id).order_by(things.c.id))
        assert partial.fetchmany(2) == [(1,), (2,)]
        assert partial.fetchall() == [(3,), (4,)]


async def test_errors_are_the_dbapi_errors_and_roll_back(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(things).values(name="x"))
            await conn.execute(insert(things).values(name="x"))
    async with engine.connect() as conn:
        assert (await conn.execute(select(things))).all() == []


async def test_rollback_discards_and_idle_commit_costs_no_round_trip(
    engine,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiosqlite

    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    async with engine.connect() as conn:
        await conn.execute(select(things))  # a read opens no SQLite transaction
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
        await conn.commit()
        assert calls == []
        await conn.execute(insert(things).values(name="gone"))
        await conn.rollback()
        assert calls == ["_run", "rollback"]
        assert (await conn.execute(select(things))).all() == []
