"""A unit of work is all or nothing, savepoints included (the audit log relies on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from residency.database import Database


async def test_work_inside_a_savepoint_is_rolled_back_with_the_unit_of_work(
    tmp_path: Path,
) -> None:
    # On SQLite the driver opens transactions only before DML, so a SAVEPOINT sent first used to
    # open (and its RELEASE commit) a transaction of its own, outside the unit of work.
    database = Database("t", f"sqlite+aiosqlite:///{tmp_path / 'uow.db'}")
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
        with pytest.raises(RuntimeError, match="request failed"):
            async with database.transaction(None) as session:
                await session.execute(text("SELECT 1"))
                async with session.begin_nested():
                    await session.execute(text("INSERT INTO t VALUES (1)"))
                await session.execute(text("INSERT INTO t VALUES (2)"))
                raise RuntimeError("request failed")
        async with database.transaction(None) as session:
            async with session.begin_nested():
                await session.execute(text("INSERT INTO t VALUES (3)"))
            # A failed savepoint rolls back alone; the unit of work goes on.
            with pytest.raises(RuntimeError, match="inner"):
                async with session.begin_nested():
                    await session.execute(text("INSERT INTO t VALUES (4)"))
                    raise RuntimeError("inner")
        async with database.transaction(None) as session:
            assert (await session.execute(text("SELECT x FROM t"))).scalars().all() == [3]
    finally:
        await database.dispose()


async def test_writers_of_one_process_queue_for_sqlite_instead_of_failing_busy(
    tmp_path: Path,
) -> None:
    # With SQLite's busy handler switched off, a second writer of the same process would fail at
    # once with "database is locked"; the process's writers take turns instead.
    database = Database("t", f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}")

    @event.listens_for(database.engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))

        async def write(n: int) -> None:
            async with database.transaction(None) as session:
                await session.execute(text("INSERT INTO t VALUES (:x)"), {"x": n})
                await asyncio.sleep(0.01)  # hold the write lock across an await
                await session.execute(text("INSERT INTO t VALUES (:x)"), {"x": -n})

        await asyncio.gather(*(write(n) for n in range(1, 9)))
        async with database.transaction(None, read_only=True) as session:
            values = (await session.execute(text("SELECT x FROM t"))).scalars().all()
        assert sorted(values) == sorted([*range(1, 9), *range(-8, 0)])
    finally:
        await database.dispose()
