"""SQLite through aiosqlite with one thread hop per statement.

aiosqlite runs each connection's calls on a worker thread, one call at a time. SQLAlchemy's
adapter makes a call for every DB-API step: open a cursor, execute, fetch the rows, close the
cursor (three or four round trips between the event loop and the worker per statement). Each
round trip wakes two threads, and on a small virtual machine a wake-up costs more than the
statement itself: a login (five statements) spent most of its CPU time switching threads.

This adapter keeps SQLAlchemy's aiosqlite dialect and connection, and swaps only the buffered
cursor: the worker opens a cursor, executes, fetches every row and closes it in one call, and
the event loop reads the results from memory. Server-side (streaming) cursors are unchanged.
It is passed to SQLAlchemy as the dialect's DB-API module (`create_async_engine(module=...)`).

Write-behind: while a connection's `write_behind` is set (by `app.core.database.execute_writes`,
around statements whose results nobody reads), an INSERT, UPDATE or DELETE without RETURNING is
held instead of sent. Held statements go out, in order, in the same worker call as the next
statement or the commit; a rollback drops them. A login's four writes and its commit are then one
round trip instead of five. Their row counts are unknown (-1), which is why only callers that read
none may hold them (not the ORM's flush, which checks the count of each UPDATE).
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

_Result = tuple[Any, int, int | None, list[Any]]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Result:
    """On the connection's worker thread: the whole statement, rows included."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


_DEFERRABLE = ("INSERT", "UPDATE", "DELETE")


def _deferrable(operation: str) -> bool:
    """A write whose only result is its row count (anything else is sent at once)."""
    head = operation.lstrip()[:6].upper()
    return head in _DEFERRABLE and "RETURNING" not in operation.upper()


def _run_pending(conn: sqlite3.Connection, pending: list[tuple[str, Any]]) -> None:
    """On the worker thread: the held writes, in order. The first that fails raises, and the
    transaction is left to the caller's rollback, as if it had failed when it was written."""
    for operation, parameters in pending:
        conn.execute(operation, parameters).close()


def _run_after(
    conn: sqlite3.Connection,
    pending: list[tuple[str, Any]],
    operation: str,
    parameters: Any,
    many: bool,
) -> _Result:
    _run_pending(conn, pending)
    return _run(conn, operation, parameters, many)


def _commit_after(conn: sqlite3.Connection, pending: list[tuple[str, Any]]) -> None:
    _run_pending(conn, pending)
    conn.commit()


class OneCallCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement, fetch and close are one call on the worker thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No driver cursor is opened here (that would be a round trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # the driver cursor is already closed

    def close(self) -> None:
        self._rows.clear()

    async def _call(self, operation: Any, parameters: Any, many: bool) -> None:
        adapt: OneCallConnection = self._adapt_connection  # type: ignore[assignment]
        if adapt.write_behind and not many and _deferrable(operation):
            adapt.pending.append((operation, parameters))
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows = collections.deque()
            return
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with adapt._execute_mutex:
            if adapt.pending:
                pending, adapt.pending = adapt.pending, []
                result: _Result = await connection._execute(
                    _run_after, connection._conn, pending, operation, parameters, many
                )
            else:
                result = await connection._execute(
                    _run, connection._conn, operation, parameters, many
                )
        self._description, self._rowcount, self._lastrowid, rows = result
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._call(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._call(operation, seq_of_parameters, True)


class OneCallConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("pending", "write_behind")
    _cursor_cls = OneCallCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.pending: list[tuple[str, Any]] = []
        self.write_behind = False

    def _idle(self) -> bool:
        """Connected and outside a transaction (SQLite begins one only before a write)."""
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        return connection._connection is not None and not connection.in_transaction

    # Outside a transaction there is nothing to commit or roll back: skipping the call saves a
    # round trip for every read-only request, and for the pool's reset after each commit.
    def commit(self) -> None:
        self.write_behind = False
        if self.pending:
            pending, self.pending = self.pending, []
            connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
            try:
                await_(connection._execute(_commit_after, connection._conn, pending))
            except Exception as error:
                self._handle_exception(error)
        elif not self._idle():
            super().commit()

    def rollback(self) -> None:
        self.write_behind = False
        self.pending = []
        if not self._idle():
            super().rollback()


class OneCallDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return OneCallConnection(self, adapted._connection)


def sqlite_dbapi() -> OneCallDBAPI:
    return OneCallDBAPI(aiosqlite, sqlite3)
