"""The SQLAlchemy adapter for one database (the control plane, or one region's data plane).

A transaction opened for a tenant sets ``bulwark.tenant_id`` with ``set_config(..., true)`` so the
PostgreSQL row-level-security policies scope every statement to that tenant, underneath the
repositories' own ``WHERE tenant_id = ...``. Connection-level failures surface as a 503 that
names the region; they never leak driver messages.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.db import TENANT_SETTING
from residency.errors import DatabaseUnavailable

_OUTAGE_ERRORS = (OperationalError, InterfaceError, OSError, TimeoutError)


def ensure_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


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
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "savepoint")
        def _savepoint_inside_the_unit_of_work(connection: Connection, _name: str) -> None:
            # The sqlite3 driver only opens a transaction implicitly before INSERT/UPDATE/DELETE.
            # A SAVEPOINT sent first would open a transaction of its own, and its RELEASE would
            # COMMIT it: work inside ``begin_nested()`` would survive the unit of work's
            # rollback (a failed request would keep a row, without its audit event). Open the
            # enclosing transaction first so the savepoint nests inside it.
            if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                connection.exec_driver_sql("BEGIN")

        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
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
    async def transaction(self, tenant_id: uuid.UUID | None) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block succeeds, rolled back when it raises.

        ``tenant_id=None`` is only for the control plane and for health checks; on a regional
        PostgreSQL database RLS then hides every tenant-owned row (fail closed).
        """
        try:
            async with self._sessions() as session, session.begin():
                if tenant_id is not None and self.is_postgres:
                    await session.execute(
                        text("SELECT set_config(:name, :value, true)"),
                        {"name": TENANT_SETTING, "value": str(tenant_id)},
                    )
                yield session
        except _OUTAGE_ERRORS as exc:
            raise DatabaseUnavailable(self.name) from exc

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except _OUTAGE_ERRORS as exc:
            raise DatabaseUnavailable(self.name) from exc

    async def dispose(self) -> None:
        await self.engine.dispose()
