"""Tenant-scoped gateway repositories: policy, BYO models, atomic counters, rate windows, ledger,
batches.

Quota and rate checks are single ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <under the limit>
RETURNING`` statements, on SQLite and PostgreSQL alike: the row is created or incremented and
the limit checked in one atomic step, so concurrent requests on any number of replicas cannot
both pass a check that only one of them fits. (PostgreSQL locks the conflicting row and
re-evaluates the WHERE on its latest version; SQLite serialises writers with BEGIN IMMEDIATE.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import (
    Batch,
    BatchItem,
    ByoModel,
    GatewayPolicy,
    RateWindow,
    Reservation,
    UsageCounter,
    UsageRecord,
)
from kernel.repositories import TenantScope, TenantScoped, upsert

# The upserts of the model-call hot path (rate blocks, quota reservations, settlements), built
# once per dialect with bound parameters: building an upsert costs more than running it on SQLite.
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(session: AsyncSession, name: str, build: Any) -> Any:
    dialect = session.get_bind().dialect.name
    statement = _STATEMENTS.get((name, dialect))
    if statement is None:
        statement = _STATEMENTS[(name, dialect)] = build(dialect)
    return statement


def _rate_block_statement(dialect: str) -> Any:
    """Hand out a block of admissions from a window: 1/share of what it has left, at least one
    and at most ``most``, never past ``limit``; nothing once the window is full."""
    table = RateWindow.__table__
    limit, share, most = (bindparam(name, type_=Integer) for name in ("limit", "share", "most"))
    left = (limit - table.c.count) // share
    block = case((left > most, most), (left < 1, 1), else_=left)
    return upsert(
        dialect,
        table,
        {
            "id": bindparam("id"),
            "tenant_id": bindparam("tenant_id"),
            "subject": bindparam("subject"),
            "window": bindparam("window"),
            "count": bindparam("first"),
            "granted": bindparam("first"),
        },
        index_elements=["tenant_id", "subject", "window"],
        update={"count": table.c.count + block, "granted": block},
        where=table.c.count < limit,
        returning=[table.c.granted],
    )


def _reserve_statement(dialect: str) -> Any:
    """Add a reservation to a counter (creating it) only if it stays within the limits bound as
    ``max_tokens`` / ``max_microdollars`` (NULL: no limit on that one)."""
    table = UsageCounter.__table__
    tokens, microdollars, max_tokens, max_microdollars = (
        bindparam(name, type_=BigInteger)
        for name in ("tokens", "microdollars", "max_tokens", "max_microdollars")
    )
    fits = and_(
        or_(
            max_tokens.is_(None),
            table.c.used_tokens + table.c.reserved_tokens + tokens <= max_tokens,
        ),
        or_(
            max_microdollars.is_(None),
            table.c.used_microdollars + table.c.reserved_microdollars + microdollars
            <= max_microdollars,
        ),
    )
    return upsert(
        dialect,
        table,
        {
            "id": bindparam("id"),
            "tenant_id": bindparam("tenant_id"),
            "scope": bindparam("scope"),
            "period": bindparam("period"),
            "used_tokens": 0,
            "used_microdollars": 0,
            "reserved_tokens": tokens,
            "reserved_microdollars": microdollars,
        },
        index_elements=["tenant_id", "scope", "period"],
        update={
            "reserved_tokens": table.c.reserved_tokens + tokens,
            "reserved_microdollars": table.c.reserved_microdollars + microdollars,
        },
        where=fits,
        returning=[table.c.id],
    )


def _settle_statement(dialect: str) -> Any:
    """Add each row's usage and (negative) reservation to its counter, creating it if absent."""
    table = UsageCounter.__table__
    return upsert(
        dialect,
        table,
        {name: bindparam(name) for name in _SETTLE_COLUMNS},
        index_elements=["tenant_id", "scope", "period"],
        update=lambda excluded: {
            "reserved_tokens": table.c.reserved_tokens + excluded.reserved_tokens,
            "reserved_microdollars": table.c.reserved_microdollars + excluded.reserved_microdollars,
            "used_tokens": table.c.used_tokens + excluded.used_tokens,
            "used_microdollars": table.c.used_microdollars + excluded.used_microdollars,
        },
    )


_SETTLE_COLUMNS = (
    "id",
    "tenant_id",
    "scope",
    "period",
    "used_tokens",
    "used_microdollars",
    "reserved_tokens",
    "reserved_microdollars",
)


class PolicyRepository(TenantScope):
    async def get(self) -> GatewayPolicy | None:
        result = await self.session.execute(
            select(GatewayPolicy).where(GatewayPolicy.tenant_id == self.ctx.tenant_id)
        )
        return result.scalar_one_or_none()

    async def get_or_create(self) -> GatewayPolicy:
        await self.session.execute(
            upsert(
                self.session,
                GatewayPolicy,
                {
                    "id": uuid.uuid4(),
                    "tenant_id": self.ctx.tenant_id,
                    "model_policy": {},
                    "quotas": {},
                    "updated_at": func.current_timestamp(),
                },
                index_elements=["tenant_id"],
            )
        )
        policy = await self.get()
        assert policy is not None
        return policy


class ByoModelRepository(TenantScope):
    async def all(self) -> Sequence[ByoModel]:
        result = await self.session.execute(
            select(ByoModel).where(ByoModel.tenant_id == self.ctx.tenant_id).order_by(ByoModel.tier)
        )
        return result.scalars().all()

    async def get(self, tier: str) -> ByoModel | None:
        result = await self.session.execute(
            select(ByoModel).where(ByoModel.tenant_id == self.ctx.tenant_id, ByoModel.tier == tier)
        )
        return result.scalar_one_or_none()

    async def add(self, model: ByoModel) -> ByoModel:
        model.tenant_id = self.ctx.tenant_id
        self.session.add(model)
        await self.session.flush()
        return model

    async def remove(self, tier: str) -> bool:
        result = await self.session.execute(
            delete(ByoModel).where(ByoModel.tenant_id == self.ctx.tenant_id, ByoModel.tier == tier)
        )
        return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True, slots=True)
class CounterCharge:
    scope: str
    period: str
    tokens: int
    microdollars: int
    max_tokens: int | None
    max_microdollars: int | None


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """What settling adds to one counter: usage, and the reservation it releases."""

    scope: str
    period: str
    used_tokens: int
    used_microdollars: int
    released_tokens: int
    released_microdollars: int


class CounterRepository(TenantScope):
    async def reserve(self, charge: CounterCharge) -> bool:
        """Add a reservation to one counter if it stays within its limits (atomically)."""
        if charge.max_tokens is not None and charge.tokens > charge.max_tokens:
            return False
        if charge.max_microdollars is not None and charge.microdollars > charge.max_microdollars:
            return False
        statement = _statement(self.session, "reserve", _reserve_statement)
        params = {
            "id": uuid.uuid4(),
            "tenant_id": self.ctx.tenant_id,
            "scope": charge.scope,
            "period": charge.period,
            "tokens": charge.tokens,
            "microdollars": charge.microdollars,
            "max_tokens": charge.max_tokens,
            "max_microdollars": charge.max_microdollars,
        }
        result = await self.session.execute(statement, params)
        return result.first() is not None

    async def settle(self, charges: Sequence[CounterCharge], *, actual: tuple[int, int]) -> None:
        """Release each charge's reservation and add the actual usage (tokens, micro-dollars) to
        every counter charged."""
        await self.add(
            [CounterDelta(c.scope, c.period, *actual, c.tokens, c.microdollars) for c in charges]
        )

    async def add(self, deltas: Sequence[CounterDelta]) -> None:
        """Add usage to counters and release reservations from them, in one statement. A
        counter that does not exist yet (nothing was reserved on it: no limit) is created here,
        carrying only the usage. Callers pass the deltas in (scope, period) order, the order
        every transaction locks counters in."""
        if not deltas:
            return
        rows = [
            {
                "id": uuid.uuid4(),
                "tenant_id": self.ctx.tenant_id,
                "scope": delta.scope,
                "period": delta.period,
                "used_tokens": delta.used_tokens,
                "used_microdollars": delta.used_microdollars,
                # Negative: on conflict these are added, which releases the reservation.
                "reserved_tokens": -delta.released_tokens,
                "reserved_microdollars": -delta.released_microdollars,
            }
            for delta in deltas
        ]
        await self.session.execute(_statement(self.session, "settle", _settle_statement), rows)

    async def get(self, scope: str, period: str) -> UsageCounter | None:
        result = await self.session.execute(
            select(UsageCounter).where(
                UsageCounter.tenant_id == self.ctx.tenant_id,
                UsageCounter.scope == scope,
                UsageCounter.period == period,
            )
        )
        return result.scalar_one_or_none()


# Built once: every admission with a quota to enforce runs both.
_RESERVATIONS = cast(Table, Reservation.__table__)
_RESERVATION_INSERT = insert(_RESERVATIONS).values(
    tenant_id=bindparam("tenant_id"),
    call_id=bindparam("call_id"),
    charges=bindparam("charges", type_=_RESERVATIONS.c.charges.type),
    expires_at=bindparam("expires_at", type_=_RESERVATIONS.c.expires_at.type),
)
_EXPIRED_RESERVATIONS = (
    select(_RESERVATIONS.c.call_id, _RESERVATIONS.c.charges)
    .where(
        _RESERVATIONS.c.tenant_id == bindparam("tenant_id"),
        _RESERVATIONS.c.expires_at < bindparam("now", type_=_RESERVATIONS.c.expires_at.type),
    )
    .order_by(_RESERVATIONS.c.expires_at)
    .limit(100)
)


_TAKE_RESERVATIONS = (
    delete(_RESERVATIONS)
    .where(
        _RESERVATIONS.c.tenant_id == bindparam("tenant_id"),
        _RESERVATIONS.c.call_id.in_(bindparam("call_ids", expanding=True)),
    )
    .returning(_RESERVATIONS.c.call_id)
)


@dataclass(frozen=True, slots=True)
class Expired:
    """A reservation whose lease ran out: its call and what it holds on each counter."""

    call_id: uuid.UUID
    charges: list[dict[str, Any]]


class ReservationRepository(TenantScope):
    """Open reservations (leases). ``take`` deletes one and says whether this caller did: the
    one that does releases the counters, so a reservation is released exactly once whether
    its call settles or a later admission finds its lease expired."""

    async def add(
        self, call_id: uuid.UUID, charges: Sequence[CounterCharge], expires_at: datetime
    ) -> None:
        await self.session.execute(
            _RESERVATION_INSERT,
            {
                "tenant_id": self.ctx.tenant_id,
                "call_id": call_id,
                "charges": [
                    {
                        "scope": c.scope,
                        "period": c.period,
                        "tokens": c.tokens,
                        "microdollars": c.microdollars,
                    }
                    for c in charges
                ],
                "expires_at": expires_at,
            },
        )

    async def take_all(self, call_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """``take`` for several calls in one statement: the ids this caller took."""
        result = await self.session.execute(
            _TAKE_RESERVATIONS, {"tenant_id": self.ctx.tenant_id, "call_ids": list(call_ids)}
        )
        return set(result.scalars().all())

    async def take(self, call_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(Reservation).where(
                Reservation.tenant_id == self.ctx.tenant_id, Reservation.call_id == call_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    async def expired(self, now: datetime) -> list[Expired]:
        """Up to 100 reservations whose lease ran out, oldest first (every admission asks)."""
        result = await self.session.execute(
            _EXPIRED_RESERVATIONS, {"tenant_id": self.ctx.tenant_id, "now": now}
        )
        return [Expired(call_id, charges) for call_id, charges in result.all()]


def charges_of(reservation: Reservation | Expired) -> list[CounterCharge]:
    return [
        CounterCharge(
            scope=c["scope"],
            period=c["period"],
            tokens=int(c["tokens"]),
            microdollars=int(c["microdollars"]),
            max_tokens=None,
            max_microdollars=None,
        )
        for c in reservation.charges
    ]


class RateWindowRepository(TenantScope):
    async def take(self, subject: str, window: int, limit: int, *, share: int, most: int) -> int:
        """Admissions handed out from ``subject``'s window, counted against ``limit``: a block
        of up to ``most`` (1/``share`` of what is left, at least one), or 0 when it is full."""
        statement = _statement(self.session, "rate_block", _rate_block_statement)
        params = {
            "id": uuid.uuid4(),
            "tenant_id": self.ctx.tenant_id,
            "subject": subject,
            "window": window,
            "limit": limit,
            "share": share,
            "most": most,
            "first": max(1, min(most, limit // share)),
        }
        row = (await self.session.execute(statement, params)).first()
        return int(row[0]) if row is not None else 0

    async def forget_before(self, window: int) -> None:
        await self.session.execute(
            delete(RateWindow).where(
                RateWindow.tenant_id == self.ctx.tenant_id, RateWindow.window < window
            )
        )


@dataclass(frozen=True, slots=True)
class UsageGroup:
    key: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_microdollars: int


class UsageRepository(TenantScoped[UsageRecord]):
    model = UsageRecord

    async def add_all(self, rows: Sequence[dict[str, Any]]) -> None:
        """Ledger rows given as column values (``UsageRecord``'s), in one statement."""
        if rows:
            table = cast(Table, UsageRecord.__table__)
            tenant = self.ctx.tenant_id
            await self.session.execute(insert(table), [{**r, "tenant_id": tenant} for r in rows])

    async def grouped(
        self, by: str, *, since_day: str, until_day: str, user_id: uuid.UUID | None = None
    ) -> list[UsageGroup]:
        column: Any = {
            "day": UsageRecord.day,
            "model": UsageRecord.model,
            "user": UsageRecord.user_id,
            "tier": UsageRecord.tier,
        }[by]
        conditions = [
            UsageRecord.tenant_id == self.ctx.tenant_id,
            UsageRecord.day >= since_day,
            UsageRecord.day <= until_day,
        ]
        if user_id is not None:
            conditions.append(UsageRecord.user_id == user_id)
        result = await self.session.execute(
            select(
                column,
                func.count(),
                func.coalesce(func.sum(UsageRecord.input_tokens), 0),
                func.coalesce(func.sum(UsageRecord.output_tokens), 0),
                func.coalesce(func.sum(UsageRecord.cost_microdollars), 0),
            )
            .where(*conditions)
            .group_by(column)
            .order_by(column)
        )
        return [
            UsageGroup("" if key is None else str(key), int(calls), int(inp), int(out), int(cost))
            for key, calls, inp, out, cost in result.all()
        ]


class BatchRepository(TenantScope):
    async def add(self, batch: Batch, items: Sequence[BatchItem]) -> Batch:
        batch.tenant_id = self.ctx.tenant_id
        self.session.add(batch)
        for item in items:
            item.tenant_id = self.ctx.tenant_id
            item.batch_id = batch.id
            self.session.add(item)
        await self.session.flush()
        return batch

    async def get(self, batch_id: uuid.UUID) -> Batch | None:
        result = await self.session.execute(
            select(Batch).where(Batch.tenant_id == self.ctx.tenant_id, Batch.id == batch_id)
        )
        return result.scalar_one_or_none()

    async def by_job(self, job_id: uuid.UUID) -> Batch | None:
        result = await self.session.execute(
            select(Batch).where(Batch.tenant_id == self.ctx.tenant_id, Batch.job_id == job_id)
        )
        return result.scalar_one_or_none()

    async def items(self, batch_id: uuid.UUID) -> Sequence[BatchItem]:
        result = await self.session.execute(
            select(BatchItem)
            .where(BatchItem.tenant_id == self.ctx.tenant_id, BatchItem.batch_id == batch_id)
            .order_by(BatchItem.position)
        )
        return result.scalars().all()

    async def item(self, item_id: uuid.UUID) -> BatchItem | None:
        result = await self.session.execute(
            select(BatchItem).where(
                BatchItem.tenant_id == self.ctx.tenant_id, BatchItem.id == item_id
            )
        )
        return result.scalar_one_or_none()
