"""Async engine, session factory, shared column types and the one-unit-of-work-per-request rule.

The request's session is created by `get_session`; services and repositories only `flush()`.
It commits once when the handler succeeds (before the response is sent) and rolls back entirely
when it raises. Work that must only happen after a successful commit (publishing cache
invalidations, sending mail) is queued with `after_commit()`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import uuid_utils
from fastapi import Depends
from sqlalchemy import DateTime, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel
from starlette.requests import Request

from app.core.config import Settings
from app.core.errors import AppError
from app.core.sqlite_driver import OneCallConnection, sqlite_dbapi

AfterCommit = Callable[[], Awaitable[None]]


def new_id() -> uuid.UUID:
    """Time-ordered UUIDv7: index-friendly primary keys that still reveal nothing sequential."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def id_field() -> Any:
    return Field(default_factory=new_id, primary_key=True)


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def updated_at_field() -> Any:
    return Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        nullable=False,
        sa_column_kwargs={"onupdate": utcnow},
    )


def deleted_at_field() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=True)


def datetime_field(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class TableBase(SQLModel):
    """Columns every table has: a UUIDv7 key and creation / modification times."""

    id: uuid.UUID = id_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class SoftDeleteMixin(SQLModel):
    deleted_at: datetime | None = deleted_at_field()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.DATABASE_URL,
            echo=settings.DATABASE_ECHO,
            connect_args={"timeout": 30},
            module=sqlite_dbapi(),  # one worker-thread round trip per statement
            # aiosqlite runs each connection on its own thread; a small pool avoids
            # reopening the file per request while keeping writers few.
            pool_size=5,
            max_overflow=5,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        settings.DATABASE_URL,
        echo=settings.DATABASE_ECHO,
        pool_size=settings.DATABASE_POOL_SIZE,
        max_overflow=settings.DATABASE_MAX_OVERFLOW,
        pool_pre_ping=True,
    )


def create_null_pool_engine(url: str) -> AsyncEngine:
    """For one-off tools (migrations, CLI) that must not hold connections."""
    is_sqlite = url.startswith("sqlite")
    extra: dict[str, Any] = {"module": sqlite_dbapi()} if is_sqlite else {}
    engine = create_async_engine(url, poolclass=NullPool, **extra)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Queue work that must run only once the request's transaction has committed."""
    session.info.setdefault("after_commit", []).append(action)


async def run_after_commit(session: AsyncSession) -> None:
    session.info.pop("authz_bumped", None)
    actions: list[AfterCommit] = session.info.pop("after_commit", [])
    for action in actions:
        await action()


async def _discard(session: AsyncSession) -> None:
    await session.rollback()
    session.info.pop("after_commit", None)
    session.info.pop("authz_bumped", None)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: commit once on success, roll back everything on error."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
        except AppError as exc:
            # Some refusals must still persist what led to them (a failed login's counter and
            # its audit row); they say so explicitly with `keep_changes`.
            if exc.keep_changes and session.in_transaction():
                await session.commit()
                await run_after_commit(session)
            else:
                await _discard(session)
            raise
        except BaseException:
            await _discard(session)
            raise
        else:
            if session.in_transaction():
                await session.commit()
            await run_after_commit(session)


# The request's unit of work. scope="function": the commit happens before the response is sent,
# so a client never sees a success whose transaction then fails.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# A statement and its parameters whose result nobody reads: an INSERT, UPDATE or DELETE.
Write = tuple[Executable, dict[str, Any]]


async def execute_writes(session: AsyncSession, writes: Sequence[Write]) -> None:
    """Runs `writes` in order on the session's transaction, in one pass through the async
    bridge rather than one per statement (the login hot path).

    On SQLite they are held and reach the database with the next statement or the commit, in
    one worker-thread call (app/core/sqlite_driver.py): an error of theirs surfaces there, and
    the transaction fails as a whole, as it would have at once. Core statements only: their row
    counts are not known there (an ORM flush checks them)."""
    await session.run_sync(_execute_writes, writes)


def _execute_writes(session: Session, writes: Sequence[Write]) -> None:
    connection = session.connection()
    adapted = connection.connection.dbapi_connection
    held = adapted if isinstance(adapted, OneCallConnection) else None
    if held is not None:
        held.write_behind = True
    try:
        for statement, parameters in writes:
            connection.execute(statement, parameters)
    finally:
        if held is not None:
            held.write_behind = False
