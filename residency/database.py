"""The SQLAlchemy adapter for one database (the control plane, or one region's data plane).

A transaction opened for a tenant sets ``bulwark.tenant_id`` with ``set_config(..., true)`` so the
PostgreSQL row-level-security policies scope every statement to that tenant, underneath the
repositories' own ``WHERE tenant_id = ...``. Connection-level failures surface as a 503 that
names the region; they never leak driver messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import structlog
from sqlalchemy import Dialect, Executable, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from kernel.db import TENANT_SETTING
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
# The in-process write lock a ``Database.transaction`` took on SQLite (released when it ends).
_write_slot: ContextVar[list[asyncio.Lock] | None] = ContextVar(
    "bulwark_db_write_slot", default=None
)
_WRITE_LOCK_SECONDS = 15.0


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
            module=sqlite_driver.dbapi(),
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

        writers = _WriteLocks()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a
            # transaction that reads and then writes cannot fail on a stale snapshot.
            if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return
            if _read_only.get():
                begin = "BEGIN"
            else:
                begin = "BEGIN IMMEDIATE"
                slot = _write_slot.get()
                if slot is not None and not slot:
                    # Writers of this process queue here, in order, instead of in SQLite's busy
                    # handler (which sleeps in growing steps, milliseconds each); the busy
                    # handler still arbitrates between processes.
                    slot.append(writers.acquire())
            # Made with the transaction's first statement, in its trip to the driver's thread.
            if not sqlite_driver.defer_begin(connection.connection.dbapi_connection, begin):
                connection.exec_driver_sql(begin)

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


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]
    binds: tuple[Callable[[Any], Any] | None, ...]
    results: tuple[Callable[[Any], Any] | None, ...]


class _InlineReader:
    """``Database.read_row`` on an SQLite file, made on the calling thread through one
    sqlite3 connection of its own: read-only, in autocommit (each read sees the latest commit),
    never waiting on a lock. Each statement is compiled once by SQLAlchemy; its parameters and
    columns go through the same type processors SQLAlchemy would apply."""

    def __init__(self, path: str, dialect: Dialect) -> None:
        self.path = path
        self.dialect = dialect
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._plans: dict[int, tuple[Executable, _Plan]] = {}

    def row(self, statement: Executable, parameters: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, or ``None``. Raises ``sqlite3.Error`` (the caller reads the usual way
        then): e.g. busy while a checkpoint resets the WAL."""
        plan = self._plan(statement)
        values = [
            process(parameters[name]) if process else parameters[name]
            for name, process in zip(plan.names, plan.binds, strict=True)
        ]
        with self._lock:  # one connection: one statement at a time, whatever the thread
            try:
                row = self._connect().execute(plan.sql, values).fetchone()
            except sqlite3.Error:
                self.close()
                raise
        if row is None:
            return None
        return tuple(
            process(value) if process else value
            for value, process in zip(row, plan.results, strict=True)
        )

    def _plan(self, statement: Executable) -> _Plan:
        held = self._plans.get(id(statement))
        if held is not None and held[0] is statement:
            return held[1]
        compiled = statement.compile(dialect=self.dialect)  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup or ())
        plan = _Plan(
            sql=compiled.string,
            names=names,
            binds=tuple(
                compiled.binds[name].type.dialect_impl(self.dialect).bind_processor(self.dialect)
                for name in names
            ),
            results=tuple(
                column.type.dialect_impl(self.dialect).result_processor(self.dialect, None)
                for column in statement.selected_columns  # type: ignore[attr-defined]
            ),
        )
        self._plans[id(statement)] = (statement, plan)
        return plan

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA query_only=ON")
            self._connection = connection
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _inline_reader(url: str, dialect: Dialect) -> _InlineReader | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return _InlineReader(parsed.database, dialect)


class _WriteLocks:
    """One asyncio lock per event loop for an SQLite database's writing transactions."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def acquire(self) -> asyncio.Lock:
        """Take this loop's lock (from SQLAlchemy's synchronous side of an async call)."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        try:
            sqlite_driver.wait_for(asyncio.wait_for(lock.acquire(), _WRITE_LOCK_SECONDS))
        except TimeoutError:
            # What SQLite's busy handler would have said after as long.
            raise sqlite3.OperationalError("database is locked") from None
        return lock


def _release(slot: list[asyncio.Lock]) -> None:
    while slot:
        slot.pop().release()


class Database:
    """One database: an engine, a session factory and tenant-scoped transactions."""

    def __init__(self, name: str, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.name = name
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, echo=echo)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader = _inline_reader(url, self.engine.dialect)

    @asynccontextmanager
    async def transaction(
        self, tenant_id: uuid.UUID | None, *, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block succeeds, rolled back when it raises.

        ``tenant_id=None`` is only for the control plane and for health checks; on a regional
        PostgreSQL database RLS then hides every tenant-owned row (fail closed).
        ``read_only`` lets SQLite readers run beside a writer instead of queueing behind it.
        """
        slot: list[asyncio.Lock] = []
        token = _write_slot.set(slot)
        with self._faults(read_only=read_only):
            async with self._sessions() as session:
                try:
                    try:
                        async with session.begin():
                            if tenant_id is not None and self.is_postgres:
                                await session.execute(
                                    text("SELECT set_config(:name, :value, true)"),
                                    {"name": TENANT_SETTING, "value": str(tenant_id)},
                                )
                            yield session
                    finally:
                        _write_slot.reset(token)
                        _release(slot)
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

    @property
    def reads_inline(self) -> bool:
        """Whether ``read_row`` runs on the caller's thread (SQLite): nothing to overlap."""
        return self._reader is not None

    async def read_row(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        """One read with no tenant scope, for the hot path's rows that no RLS policy hides (the
        control plane; the auth epochs): outside any transaction on PostgreSQL (autocommit).

        On an SQLite file it is made on the event loop's own thread, through a read-only
        connection of its own: one indexed row in WAL mode never waits for a writer, and costs
        less than the trips to a connection's thread would. Should SQLite ever answer busy
        (it may while a checkpoint resets the WAL) the read goes the usual way instead."""
        if self._reader is not None:
            with contextlib.suppress(sqlite3.Error):
                return self._reader.row(statement, parameters or {})
        with self._faults(read_only=True):
            async with self.engine.connect() as connection:
                if self.is_postgres:
                    connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                row = (await connection.execute(statement, parameters)).first()
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
        if self._reader is not None:
            self._reader.close()
