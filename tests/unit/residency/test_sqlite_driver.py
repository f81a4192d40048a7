"""The one-trip SQLite adapter against the installed aiosqlite and SQLAlchemy: each internal it
uses is exercised here, so a release that moves one fails this file (and the version range in
``SUPPORTED`` fails the import first)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from itertools import chain
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import exc, text
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)

from kernel.supply_chain import UnsupportedDependency, require_version
from residency import sqlite_driver
from residency.database import create_engine


def test_the_installed_releases_are_in_the_supported_ranges() -> None:
    for distribution, supported in sqlite_driver.SUPPORTED.items():
        require_version(distribution, supported, user="test")


def test_a_release_outside_the_range_is_refused_naming_it() -> None:
    installed = require_version("aiosqlite", ">=0", user="test")
    with pytest.raises(UnsupportedDependency, match=rf"aiosqlite.*<0\.1.*{installed}"):
        require_version("aiosqlite", "<0.1", user="residency/sqlite_driver.py")
    with pytest.raises(UnsupportedDependency, match="not installed"):
        require_version("no-such-distribution-here", ">=1", user="test")


async def test_aiosqlite_runs_a_function_on_the_connections_thread(tmp_path: Path) -> None:
    seen: list[Any] = []

    def on_thread(raw: sqlite3.Connection, value: int) -> int:
        seen.append(threading.current_thread())
        return int(raw.execute("SELECT ?", (value,)).fetchone()[0])

    async with aiosqlite.connect(tmp_path / "t.db") as connection:
        assert isinstance(connection._conn, sqlite3.Connection)
        assert await connection._execute(on_thread, connection._conn, 7) == 7
    assert seen and seen[0] is not threading.current_thread()


def test_the_sqlalchemy_adapter_keeps_the_internals_the_cursor_replaces() -> None:
    # OneTripCursor sets every slot of the stock cursor itself (it skips the stock __init__,
    # which would open a driver cursor): a slot added upstream must be added there too.
    slots = set(
        chain.from_iterable(getattr(c, "__slots__", ()) for c in AsyncAdapt_aiosqlite_cursor.mro())
    )
    assert slots == {
        "_adapt_connection",
        "_connection",
        "_cursor",
        "_rows",
        "_soft_closed_memoized",
    }
    assert callable(AsyncAdapt_aiosqlite_cursor._async_soft_close)
    assert AsyncAdapt_aiosqlite_connection._cursor_cls is AsyncAdapt_aiosqlite_cursor
    assert callable(AsyncAdapt_aiosqlite_connection._handle_exception)
    assert issubclass(sqlite_driver.OneTripConnection, AsyncAdapt_aiosqlite_connection)


async def test_one_trip_per_statement_with_begin_and_driver_errors_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    stock = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", "?"))
        return await stock(self, fn, *args, **kwargs)

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-trip.db'}")
    try:
        async with engine.begin() as connection:
            raw = await connection.get_raw_connection()
            assert isinstance(raw.dbapi_connection, sqlite_driver.OneTripConnection)
            assert isinstance(raw.dbapi_connection._connection, aiosqlite.Connection)
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await connection.execute(text("INSERT INTO t (id, v) VALUES (1, 'a')"))
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        async with engine.begin() as connection:
            trips.clear()
            row = (await connection.execute(text("SELECT v FROM t WHERE id = 1"))).one()
            assert row.v == "a"
            # BEGIN IMMEDIATE travelled with the SELECT: one trip for both.
            assert trips == ["_run"]
        async with engine.begin() as connection:
            with pytest.raises(exc.IntegrityError):
                await connection.execute(text("INSERT INTO t (id, v) VALUES (1, 'b')"))
    finally:
        await engine.dispose()


async def test_wait_for_awaits_from_sqlalchemys_synchronous_side() -> None:
    from sqlalchemy.util.concurrency import greenlet_spawn

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await greenlet_spawn(lambda: sqlite_driver.wait_for(answer())) == 42
