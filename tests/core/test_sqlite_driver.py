"""The SQLite adapter that runs each statement in one worker-thread call (app/core/sqlite_driver.py):
it must behave exactly like a DB-API cursor for everything SQLAlchemy reads from it."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.database import create_null_pool_engine, execute_writes
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


# ---- write-behind (execute_writes) -------------------------------------------------------------


async def _stored(engine) -> list[str]:  # type: ignore[no-untyped-def]
    """The names committed to the table, in insertion order."""
    async with engine.connect() as conn:
        return list((await conn.execute(select(things.c.name).order_by(things.c.id))).scalars())


@asynccontextmanager
async def _connected_session(engine, worker_calls: list[str]):  # type: ignore[no-untyped-def]
    """A session whose connection is already checked out, the calls that took cleared: what the
    test does next is all the log shows."""
    async with AsyncSession(engine) as session:
        await session.connection()
        worker_calls.clear()
        yield session


@pytest.fixture
def worker_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions each aiosqlite worker-thread call ran, in order (closing the
    connection, which this NullPool engine does on release, is left out)."""
    import aiosqlite

    calls: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = getattr(fn, "__name__", repr(fn))
        if name != "close":
            calls.append(name)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return calls


async def test_held_writes_reach_the_database_with_the_commit_in_one_call(
    engine,  # type: ignore[no-untyped-def]
    worker_calls: list[str],
) -> None:
    async with _connected_session(engine, worker_calls) as session:
        await execute_writes(
            session,
            [
                (insert(things), {"name": "a"}),
                (insert(things), {"name": "b"}),
                (update(things).where(things.c.name == "a"), {"name": "a!"}),
            ],
        )
        assert worker_calls == []  # nothing sent yet
        await session.commit()
        assert worker_calls == ["_commit_after"]
    assert await _stored(engine) == ["a!", "b"]


async def test_a_read_after_held_writes_sees_them_in_the_same_call(
    engine,  # type: ignore[no-untyped-def]
    worker_calls: list[str],
) -> None:
    async with _connected_session(engine, worker_calls) as session:
        await execute_writes(session, [(insert(things), {"name": "seen"})])
        count = await session.scalar(select(func.count()).select_from(things))
        assert count == 1
        assert worker_calls == ["_run_after"]
        await session.rollback()  # the held write had gone out with the read: undone here
    assert await _stored(engine) == []


async def test_an_error_in_a_held_write_fails_the_commit_and_keeps_nothing(
    engine,  # type: ignore[no-untyped-def]
) -> None:
    async with AsyncSession(engine) as session:
        await execute_writes(
            session, [(insert(things), {"name": "twice"}), (insert(things), {"name": "twice"})]
        )
        with pytest.raises(IntegrityError):
            await session.commit()
    assert await _stored(engine) == []


async def test_rollback_drops_held_writes_without_a_call(
    engine,  # type: ignore[no-untyped-def]
    worker_calls: list[str],
) -> None:
    async with _connected_session(engine, worker_calls) as session:
        await execute_writes(session, [(insert(things), {"name": "dropped"})])
        await session.rollback()
        assert worker_calls == []
        await session.commit()
    assert await _stored(engine) == []


async def test_writes_outside_execute_writes_are_sent_at_once(
    engine,  # type: ignore[no-untyped-def]
    worker_calls: list[str],
) -> None:
    async with AsyncSession(engine) as session:
        await execute_writes(session, [(insert(things), {"name": "held"})])
        worker_calls.clear()
        # The block is over: a write of its own goes out at once, the held one before it.
        await session.execute(insert(things), {"name": "direct"})
        assert worker_calls == ["_run_after"]
        await session.commit()
        assert worker_calls == ["_run_after", "commit"]
    assert sorted(await _stored(engine)) == ["direct", "held"]
