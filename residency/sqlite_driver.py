"""SQLAlchemy's aiosqlite adapter, with each statement made in one trip to the driver's thread.

aiosqlite runs a sqlite3 connection on a thread of its own and every call is a trip there and
back (a queue put, a thread wake-up, a loop wake-up: ~0.1-0.2 ms on a small VM). SQLAlchemy's
stock adapter makes four or five such trips per statement (open a cursor, execute, fetch, read
the description, close), which made a one-row read cost ~1.7 ms here. This adapter's cursor does
execute, fetch and close in one function on that thread and keeps the description, row count,
last row id and rows on the event loop's side: one trip per statement. A transaction's BEGIN
(``defer_begin``) travels with its first statement instead of making a trip of its own, and a
transaction that made no statement commits or rolls back without a trip. Connections and
everything else are the stock adapter's.

It reaches into internals of two dependencies, and is the only module that does, so it pins the
releases it was checked against (``SUPPORTED``) and refuses to import with any other
(``UnsupportedDependency``); tests/unit/residency/test_sqlite_driver.py exercises each internal
on the installed releases:

* aiosqlite: ``Connection._execute`` (queues a function on the connection's thread) and
  ``Connection._conn`` (the sqlite3 connection that function may use);
* SQLAlchemy's aiosqlite adapter: the cursor's ``_adapt_connection``, ``_connection``,
  ``_cursor``, ``_rows``, ``_soft_closed_memoized`` and ``_async_soft_close``, the connection's
  ``_connection``, ``_handle_exception`` and ``_cursor_cls``; ``sqlalchemy.util``'s ``await_``
  and ``EMPTY_DICT`` (``wait_for`` lends the former to residency/database.py).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

from kernel.supply_chain import require_version

# The releases whose internals this module was checked against (see the module docstring).
SUPPORTED = {"aiosqlite": ">=0.22,<0.23", "sqlalchemy": ">=2.1,<2.2"}
for _distribution, _range in SUPPORTED.items():
    require_version(_distribution, _range, user="residency/sqlite_driver.py")

_Outcome = tuple[Any, int, int | None, list[Any]]
_T = TypeVar("_T")


def _run(
    raw: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """On the connection's thread: the transaction's BEGIN if still to be made, then the whole
    statement."""
    if begin is not None:
        raw.execute(begin)
    cursor = raw.cursor()
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


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No driver cursor is opened up front (the stock adapter's first trip).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

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
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
        connection = self._connection
        adapt = self._adapt_connection
        begin, adapt._pending_begin = adapt._pending_begin, None  # type: ignore[attr-defined]
        try:
            outcome = await_(
                connection._execute(_run, connection._conn, begin, operation, parameters, many)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._trip(operation, seq_of_parameters, many=True)

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_pending_begin",)
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._pending_begin: str | None = None

    def commit(self) -> None:
        if self._pending_begin is not None:  # no statement: no transaction was opened
            self._pending_begin = None
            return
        super().commit()

    def rollback(self) -> None:
        if self._pending_begin is not None:
            self._pending_begin = None
            return
        super().rollback()


def wait_for(awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable`` from SQLAlchemy's synchronous side of an async call (an event
    handler), as the adapter's cursor does: SQLAlchemy's ``await_``."""
    return await_(awaitable)


def defer_begin(dbapi_connection: Any, statement: str) -> bool:
    """Have ``statement`` (``BEGIN`` or ``BEGIN IMMEDIATE``) made with the connection's next
    statement, in its trip; False for a connection of another adapter (the caller makes it)."""
    if not isinstance(dbapi_connection, OneTripConnection):
        return False
    dbapi_connection._pending_begin = statement
    return True


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        stock = super().connect(*arg, **kw)
        return OneTripConnection(self, stock._connection)


def dbapi() -> OneTripDbapi:
    """The ``module`` to give ``create_async_engine`` for ``sqlite+aiosqlite`` URLs."""
    return OneTripDbapi(aiosqlite, sqlite3)
