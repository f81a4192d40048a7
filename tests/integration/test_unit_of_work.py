"""A unit of work is all or nothing, savepoints included (the audit log relies on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
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


# The routes on the hot path: one dependency at a time (two or more of one level resolve in a
# task group, ~0.1 ms each) and no request unit of work (the gateway and the chat service open
# short transactions of their own, so none stays open while a model generates).
HOT_ROUTES = (
    ("POST", "/v1/gateway/chat/completions"),
    ("POST", "/v1/chat"),
    ("POST", "/v1/chat/completions"),
)


def _resolution(app: Litestar) -> dict[tuple[str, str], list[set[str]]]:
    """Each route's dependencies, level by level, as Litestar resolves them: a level of one
    dependency is awaited, a level of several runs in a task group."""
    resolved: dict[tuple[str, str], list[set[str]]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method, (_, kwargs_model) in route.route_handler_map.items():
                resolved[(method, route.path)] = [
                    {dependency.key for dependency in level}
                    for level in kwargs_model.dependency_batches
                ]
    return resolved


def test_every_unit_of_work_is_entered_alone_in_the_requests_own_context(app: Litestar) -> None:
    # A unit of work entered in a task group's task would be entered in another context than the
    # one that ends it (``Database.transaction`` resets its context variables on the way out).
    units = {
        key
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler, _ in route.route_handler_map.values()
        for key, provide in handler.resolve_dependencies().items()
        if provide.has_async_generator_dependency or provide.has_sync_generator_dependency
    }
    assert units == {"db", "key_admin_db", "control_db"}
    resolution = _resolution(app)
    shared = {
        route: level
        for route, levels in resolution.items()
        for level in levels
        if len(level) > 1 and level & units
    }
    assert shared == {}
    for route in HOT_ROUTES:
        assert all(len(level) == 1 for level in resolution[route]), route
        assert not any(level & units for level in resolution[route]), route
