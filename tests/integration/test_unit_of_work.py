"""A unit of work is all or nothing, savepoints included (the audit log relies on it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

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
