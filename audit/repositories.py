"""Tenant-scoped audit repositories (events, chain heads, pseudonym secrets).

Every statement filters on the context's tenant; on PostgreSQL, RLS does the same underneath. The
event repository can only add and read: there is no update or delete here, and the database
refuses both anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update

from audit.chain import GENESIS_HASH
from audit.models import AuditEvent, AuditHead, AuditSubject
from kernel.repositories import TenantScope, upsert


@dataclass(frozen=True, slots=True)
class EventFilter:
    action: str | None = None
    actor: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


class AuditEventRepository(TenantScope):
    async def add(self, event: AuditEvent) -> AuditEvent:
        event.tenant_id = self.ctx.tenant_id
        self.session.add(event)
        await self.session.flush()
        return event

    async def insert_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert events given as column values (one statement for all of them)."""
        for row in rows:
            if row["tenant_id"] != self.ctx.tenant_id:
                raise ValueError("an event of another tenant")
        await self.session.execute(insert(cast(Table, AuditEvent.__table__)), list(rows))

    async def get_by_sequence(self, sequence: int) -> AuditEvent | None:
        result = await self.session.execute(
            select(AuditEvent).where(
                AuditEvent.tenant_id == self.ctx.tenant_id, AuditEvent.sequence == sequence
            )
        )
        return result.scalar_one_or_none()

    async def page(
        self,
        where: EventFilter,
        *,
        after: int | None,
        limit: int,
        up_to: int | None = None,
    ) -> Sequence[AuditEvent]:
        """Events in sequence order, strictly after ``after`` and at most ``up_to``."""
        statement = select(AuditEvent).where(AuditEvent.tenant_id == self.ctx.tenant_id)
        if after is not None:
            statement = statement.where(AuditEvent.sequence > after)
        if up_to is not None:
            statement = statement.where(AuditEvent.sequence <= up_to)
        if where.action is not None:
            statement = statement.where(AuditEvent.action == where.action)
        if where.actor is not None:
            statement = statement.where(AuditEvent.actor == where.actor)
        if where.resource_type is not None:
            statement = statement.where(AuditEvent.resource_type == where.resource_type)
        if where.resource_id is not None:
            statement = statement.where(AuditEvent.resource_id == where.resource_id)
        if where.since is not None:
            statement = statement.where(AuditEvent.occurred_at >= where.since)
        if where.until is not None:
            statement = statement.where(AuditEvent.occurred_at < where.until)
        result = await self.session.execute(statement.order_by(AuditEvent.sequence).limit(limit))
        return result.scalars().all()

    async def chain_rows(self, *, after: int, limit: int, up_to: int | None) -> Sequence[Any]:
        """Plain rows (not tracked by the session) for walking a whole chain in batches."""
        statement = (
            select(*AuditEvent.__table__.columns)
            .where(AuditEvent.tenant_id == self.ctx.tenant_id, AuditEvent.sequence > after)
            .order_by(AuditEvent.sequence)
            .limit(limit)
        )
        if up_to is not None:
            statement = statement.where(AuditEvent.sequence <= up_to)
        result = await self.session.execute(statement)
        return result.all()


@dataclass(frozen=True, slots=True)
class Head:
    sequence: int
    head_hash: str


_HEADS = cast(Table, AuditHead.__table__)


class AuditHeadRepository(TenantScope):
    async def lock(self) -> Head:
        """The tenant's head (sequence, hash), created at the genesis if absent, its row locked
        until commit.

        The row lock (``FOR UPDATE``) is what makes sequence assignment safe on PostgreSQL: a
        concurrent append in the same tenant waits here until this transaction ends, then reads
        the advanced head. SQLite ignores ``FOR UPDATE``; there every writing transaction took
        the database's write lock when it began (``BEGIN IMMEDIATE``), which serialises appends
        the same way. The genesis row is inserted only the first time (it then always exists).
        """
        table = _HEADS
        statement = (
            select(table.c.sequence, table.c.head_hash)
            .where(table.c.tenant_id == self.ctx.tenant_id)
            .with_for_update()
        )
        row = (await self.session.execute(statement)).first()
        if row is None:  # ON CONFLICT DO NOTHING: two transactions may race to create it
            await self.session.execute(
                upsert(
                    self.session,
                    AuditHead,
                    {"tenant_id": self.ctx.tenant_id, "sequence": 0, "head_hash": GENESIS_HASH},
                    index_elements=["tenant_id"],
                )
            )
            row = (await self.session.execute(statement)).one()
        return Head(int(row.sequence), str(row.head_hash))

    async def get(self) -> AuditHead | None:
        result = await self.session.execute(
            select(AuditHead)
            .where(AuditHead.tenant_id == self.ctx.tenant_id)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def advance(self, *, sequence: int, head_hash: str) -> None:
        await self.session.execute(
            update(_HEADS)
            .where(_HEADS.c.tenant_id == self.ctx.tenant_id)
            .values(sequence=sequence, head_hash=head_hash)
        )


_SUBJECTS = cast(Table, AuditSubject.__table__)
# Built once: every batch of audited model calls looks up its subjects' secrets with it.
_SECRETS_OF = select(_SUBJECTS.c.subject, _SUBJECTS.c.secret).where(
    _SUBJECTS.c.tenant_id == bindparam("tenant_id"),
    _SUBJECTS.c.subject.in_(bindparam("subjects", expanding=True)),
)


class AuditSubjectRepository(TenantScope):
    async def secrets(self, subjects: Sequence[str]) -> dict[str, bytes]:
        """The secrets of those of ``subjects`` that have one, in one statement."""
        result = await self.session.execute(
            _SECRETS_OF, {"tenant_id": self.ctx.tenant_id, "subjects": list(subjects)}
        )
        return {subject: secret for subject, secret in result.all()}

    async def secret(self, subject: str) -> bytes | None:
        result = await self.session.execute(
            select(AuditSubject.secret).where(
                AuditSubject.tenant_id == self.ctx.tenant_id, AuditSubject.subject == subject
            )
        )
        return result.scalar_one_or_none()

    async def secret_or_create(self, subject: str, new_secret: bytes) -> bytes:
        """The subject's secret; ``new_secret`` becomes it unless a row already exists. Read
        first: nearly every call finds the row, so the insert is the rare path."""
        existing = await self.secret(subject)
        if existing is not None:
            return existing
        await self.session.execute(  # ON CONFLICT DO NOTHING: a concurrent first call may win
            upsert(
                self.session,
                AuditSubject,
                {"tenant_id": self.ctx.tenant_id, "subject": subject, "secret": new_secret},
                index_elements=["tenant_id", "subject"],
            )
        )
        secret = await self.secret(subject)
        assert secret is not None
        return secret
