"""The one base of tenant-scoped repositories, and the one dialect-aware upsert.

Each repository is bound to one ``TenantContext`` and every statement it issues filters on that
tenant (on PostgreSQL, row-level security enforces the same underneath). A row of another tenant
is simply not found, which the services turn into 404. A missing or forged scope fails closed, in
``TenantScope`` and nowhere else (docs/ARCHITECTURE.md, tenant scoping).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Insert, Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import RegionalBase
from kernel.tenancy import TenantContext

M = TypeVar("M", bound=RegionalBase)


class TenantScope:
    """A repository bound to one tenant: its session and the context every statement it issues
    filters on. The base of every tenant-scoped repository; one that is about one model with an
    ``id`` extends ``TenantScoped`` instead, one that keeps a per-tenant policy row
    ``TenantPolicyRows``."""

    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        if not isinstance(ctx, TenantContext):  # fail closed on a missing or forged scope
            raise TypeError("a TenantContext is required")
        self.session = session
        self.ctx = ctx


class TenantScoped(TenantScope, Generic[M]):
    """Rows of one model, of one tenant: every statement filters on the context's tenant."""

    model: type[M]

    def _select(self) -> Select[M]:
        model: Any = self.model
        return select(self.model).where(model.tenant_id == self.ctx.tenant_id)

    async def get(self, row_id: uuid.UUID) -> M | None:
        model: Any = self.model
        result = await self.session.execute(self._select().where(model.id == row_id))
        return result.scalar_one_or_none()

    async def add(self, row: M) -> M:
        row.tenant_id = self.ctx.tenant_id  # type: ignore[attr-defined]
        self.session.add(row)
        await self.session.flush()
        return row

    def stage(self, row: M) -> M:
        """Add ``row`` to this tenant's unit of work without a round trip now: it is written
        with the next flush or at commit (for rows nothing reads back in between)."""
        row.tenant_id = self.ctx.tenant_id  # type: ignore[attr-defined]
        self.session.add(row)
        return row

    async def find(
        self,
        where: ColumnElement[bool] | None,
        *,
        order_by: Sequence[Any],
        offset: int = 0,
        limit: int | None = None,
    ) -> Sequence[M]:
        """This tenant's rows matching ``where`` (always ANDed with the tenant), one page."""
        statement = self._select()
        if where is not None:
            statement = statement.where(where)
        statement = statement.order_by(*order_by).offset(offset)
        if limit is not None:
            statement = statement.limit(limit)
        result = await self.session.execute(statement)
        return result.scalars().all()

    async def page(self, *, limit: int, offset: int) -> Sequence[M]:
        """One page of this tenant's rows, oldest first."""
        model: Any = self.model
        return await self.find(
            None, order_by=[model.created_at, model.id], offset=offset, limit=limit
        )

    async def count(self, where: ColumnElement[bool] | None) -> int:
        model: Any = self.model
        statement = (
            select(func.count()).select_from(model).where(model.tenant_id == self.ctx.tenant_id)
        )
        if where is not None:
            statement = statement.where(where)
        return int((await self.session.execute(statement)).scalar_one())


class TenantPolicyRows(TenantScope, Generic[M]):
    """A per-tenant settings row (primary key ``tenant_id``, a JSON ``policy``): read, replace."""

    model: type[M]

    async def get(self) -> M | None:
        model: Any = self.model
        result = await self.session.execute(
            select(self.model).where(model.tenant_id == self.ctx.tenant_id)
        )
        return result.scalar_one_or_none()

    async def put(self, policy: dict[str, Any]) -> M:
        row: Any = await self.get()
        if row is None:
            row = self.model(tenant_id=self.ctx.tenant_id, policy=policy)
            self.session.add(row)
        else:
            row.policy = policy
        await self.session.flush()
        return row  # type: ignore[no-any-return]


def upsert(
    on: AsyncSession | str,
    table: Any,
    values: Mapping[str, Any],
    *,
    index_elements: Sequence[Any],
    update: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] | None = None,
    where: ColumnElement[bool] | None = None,
    returning: Sequence[Any] = (),
) -> Insert:
    """``INSERT ... ON CONFLICT (index_elements) DO UPDATE SET update [WHERE where]
    [RETURNING returning]``, or ``DO NOTHING`` when ``update`` is None, in the dialect of ``on``
    (a session, or a dialect name for statements built once and cached per dialect).

    The statement is returned, not executed: callers execute it themselves, with bound
    parameters where it was built once. ``update`` may be a function of the statement's
    ``excluded`` row (the values that were refused), for updates that add them. Both databases
    the service supports have the same ``ON CONFLICT`` clause; any other fails closed.
    """
    dialect = on if isinstance(on, str) else on.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    statement = statement.values(dict(values))
    if update is None:
        if where is not None:
            raise ValueError("a conditional upsert needs the columns it updates")
        statement = statement.on_conflict_do_nothing(index_elements=list(index_elements))
    else:
        set_ = update(statement.excluded) if callable(update) else update
        statement = statement.on_conflict_do_update(
            index_elements=list(index_elements), set_=dict(set_), where=where
        )
    if returning:
        statement = statement.returning(*returning)
    result: Insert = statement
    return result
