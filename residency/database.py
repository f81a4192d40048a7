"""The SQLAlchemy adapter for one database (the control plane, or one region's data plane).

A transaction opened for a tenant sets ``bulwark.tenant_id`` with ``set_config(..., true)`` so the
PostgreSQL row-level-security policies scope every statement to that tenant, underneath the
repositories' own ``WHERE tenant_id = ...``. Connection-level failures surface as a 503 that
names the region; they never leak driver messages.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import msgspec
import structlog
from sqlalchemy import Executable, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.db import TENANT_SETTING
from residency import sqlite_driver
from residency.errors import DatabaseUnavailable

# A pool with no free connection for ``pool_timeout`` seconds is an outage as the caller feels
# it (the server stopped answering, or every connection hangs): 503, not a bug.
_OUTAGE_ERRORS = (OperationalError, InterfaceError, OSError, TimeoutError, PoolTimeout)


def _is_outage(exc: BaseException) -> bool:
    """A connection-level failure (not a constraint or a query bug). asyncpg reports a server
    that went away mid-statement as a bare DBAPI error; SQLAlchemy marks it invalidated."""
    if isinstance(exc, _OUTAGE_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


AFTER_COMMIT = "bulwark_after_commit"
AFTER_ROLLBACK = "bulwark_after_rollback"
log = structlog.get_logger("bulwark.database")


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` once the unit of work ``session`` belongs to has committed."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


def after_end(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` once the unit of work has ended, committed or rolled back: for records
    that must outlive a refused request (a blocked DLP attempt) without holding its locks."""
    done = False

    async def once() -> None:
        nonlocal done
        if not done:
            done = True
            await callback()

    session.info.setdefault(AFTER_COMMIT, []).append(once)
    session.info.setdefault(AFTER_ROLLBACK, []).append(once)


_read_only: ContextVar[bool] = ContextVar("bulwark_db_read_only", default=False)


def ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _json(value: Any) -> str:
    """JSON columns as msgspec writes them: the same values the standard library's encoder
    would store (non-ASCII kept as UTF-8 rather than escaped), several times faster —
    policies, citations and audit details are written on every request."""
    return _JSON_ENCODER.encode(value).decode()


_JSON_ENCODER = msgspec.json.Encoder()


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if make_url(url).get_backend_name() == "sqlite":
        ensure_sqlite_directory(url)
        engine = create_async_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            connect_args={"timeout": 15},
            hide_parameters=True,
            json_serializer=_json,
            **({"module": sqlite_driver.dbapi()} if sqlite_driver.available() else {}),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            # Deleted rows are overwritten, not left in free pages (erasure, purge).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()
            # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin: the
            # module's legacy mode defers BEGIN to the first write, so a SAVEPOINT issued
            # before any write would open (and its RELEASE commit) the outer transaction.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a
            # transaction that reads and then writes cannot fail on a stale snapshot.
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                connection.exec_driver_sql("BEGIN" if _read_only.get() else "BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        json_serializer=_json,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


class Database:
    """One database: an engine, a session factory and tenant-scoped transactions."""

    def __init__(self, name: str, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.name = name
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, echo=echo)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(
        self, tenant_id: uuid.UUID | None, *, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block succeeds, rolled back when it raises.

        ``tenant_id=None`` is only for the control plane and for health checks; on a regional
        PostgreSQL database RLS then hides every tenant-owned row (fail closed).
        ``read_only`` lets SQLite readers run beside a writer instead of queueing behind it.
        """
        with self._faults(read_only=read_only):
            async with self._sessions() as session:
                try:
                    async with session.begin():
                        if tenant_id is not None and self.is_postgres:
                            await session.execute(
                                text("SELECT set_config(:name, :value, true)"),
                                {"name": TENANT_SETTING, "value": str(tenant_id)},
                            )
                        yield session
                except BaseException:
                    # Rolled back (and its locks released): run what must happen regardless.
                    for callback in session.info.pop(AFTER_ROLLBACK, []):
                        try:
                            await callback()
                        except Exception:  # never mask the error that rolled back
                            log.exception("after_rollback_failed")
                    raise
                # Committed: now (and only now) hand work to others, e.g. enqueue jobs that
                # must see the rows this unit of work wrote.
                for callback in session.info.pop(AFTER_COMMIT, []):
                    await callback()

    async def read_row(self, statement: Executable) -> tuple[Any, ...] | None:
        """One read with no tenant scope, for the hot path's rows that no RLS policy hides (the
        control plane; the auth epochs): outside any transaction on PostgreSQL (autocommit), in
        a plain read transaction on SQLite."""
        with self._faults(read_only=True):
            async with self.engine.connect() as connection:
                if self.is_postgres:
                    connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                row = (await connection.execute(statement)).first()
                return tuple(row) if row is not None else None

    @contextmanager
    def _faults(self, *, read_only: bool) -> Iterator[None]:
        """Marks the work read-only or not (SQLite's BEGIN), and turns a connection-level
        failure into ``DatabaseUnavailable`` (503) naming this database."""
        token = _read_only.set(read_only)
        try:
            yield
        except DBAPIError as exc:
            if _is_outage(exc):
                raise DatabaseUnavailable(self.name) from exc
            raise
        except _OUTAGE_ERRORS as exc:
            raise DatabaseUnavailable(self.name) from exc
        finally:
            _read_only.reset(token)

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except _OUTAGE_ERRORS as exc:
            raise DatabaseUnavailable(self.name) from exc

    async def scrub(self) -> None:
        """After deleting data: on SQLite, fold the WAL into the database and truncate it, so
        no older page image of deleted rows survives in the WAL file. (PostgreSQL reclaims
        dead tuples through autovacuum.)"""
        if self.is_postgres:
            return
        try:
            async with self.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        except _OUTAGE_ERRORS as exc:
            raise DatabaseUnavailable(self.name) from exc

    async def dispose(self) -> None:
        await self.engine.dispose()
