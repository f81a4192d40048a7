"""Audit services: append to a tenant's chain, read it, verify it, sign its head, export it.

Appending happens in the caller's session, so an event commits or rolls back with the change it
records: a failed request leaves no event behind, and no committed change lacks its event. The
services never commit.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from audit import pseudonyms
from audit.canon import CANON, CanonError, canonical_json
from audit.chain import (
    CODE,
    EXPORT_FIELDS,
    GENESIS_HASH,
    ChainEntry,
    ChainVerifier,
    Verification,
    check_detail,
    check_identifier,
    checkpoint_document,
    format_time,
    hash_matches,
    seal,
)
from audit.errors import AuditChainBroken, InvalidActorFilter
from audit.models import AuditEvent
from audit.repositories import (
    AuditEventRepository,
    AuditHeadRepository,
    AuditSubjectRepository,
    EventFilter,
)
from audit.schemas import ExportFormat
from audit.signing import CheckpointSigner
from kernel.audit_events import AuditAction, AuditOutcome, ResourceType
from kernel.db import utcnow
from kernel.tenancy import TenantContext
from residency.database import after_end
from residency.registry import RegionRegistry

# Events read per statement when verifying or exporting a whole chain.
CHAIN_BATCH = 500


def entry_of(row: Any) -> ChainEntry:
    """The chain's view of a stored event (an ``AuditEvent`` or a row with the same columns)."""
    return ChainEntry(
        id=str(row.id),
        tenant_id=str(row.tenant_id),
        sequence=int(row.sequence),
        occurred_at=format_time(row.occurred_at),
        actor=row.actor,
        action=row.action,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        outcome=row.outcome,
        request_id=row.request_id,
        detail=dict(row.detail),
        prev_hash=row.prev_hash,
        canon=row.canon,
        hash=row.hash,
    )


def subject_of(ctx: TenantContext) -> str:
    return pseudonyms.user_subject(ctx.user_id) if ctx.user_id else pseudonyms.SYSTEM_SUBJECT


class AuditLog:
    """Appends events to one tenant's chain, inside the caller's unit of work.

    ``subject`` is who acts (default: the context's user, or ``system`` for a system context);
    the event stores only that subject's pseudonym. ``request_id`` ties the event to the request
    log line and trace.
    """

    def __init__(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        *,
        subject: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.session = session
        self.subject = subject or subject_of(ctx)
        self.request_id = request_id
        self.events = AuditEventRepository(session, ctx)
        self.heads = AuditHeadRepository(session, ctx)
        self.subjects = AuditSubjectRepository(session, ctx)
        self._actor: str | None = None

    def record_refusal(
        self,
        registry: RegionRegistry,
        action: AuditAction,
        *,
        resource_type: ResourceType,
        resource_id: uuid.UUID | str | None,
        detail: Mapping[str, Any],
    ) -> None:
        """A ``denied`` event that must outlive the request it refuses: appended in a
        transaction of its own once this request's unit of work has ended (which rolls back),
        so it holds none of the request's locks and is not lost with it."""
        ctx, request_id, subject = self.ctx, self.request_id, self.subject
        _checked([PendingEvent(action, resource_type, resource_id, detail, AuditOutcome.DENIED)])

        async def record() -> None:
            async with registry.tenant_transaction(ctx) as session:
                await AuditLog(session, ctx, subject=subject, request_id=request_id).record(
                    action,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    detail=detail,
                    outcome=AuditOutcome.DENIED,
                )

        after_end(self.session, record)

    async def actor(self) -> str:
        if self._actor is None:
            await self._actors([self.subject])
        assert self._actor is not None
        return self._actor

    async def _actors(self, subjects: Sequence[str]) -> dict[str, str]:
        """The pseudonym of each of ``subjects``: their secrets read in one statement, a
        secret created only for a subject that has none yet."""
        wanted = list(dict.fromkeys(subjects))
        actors = {self.subject: self._actor} if self._actor is not None else {}
        missing = [subject for subject in wanted if subject not in actors]
        known = await self.subjects.secrets(missing) if missing else {}
        for subject in missing:
            secret = known.get(subject) or await self.subjects.secret_or_create(
                subject, pseudonyms.new_secret()
            )
            actors[subject] = pseudonyms.pseudonym(secret, subject)
        self._actor = actors[self.subject]
        return actors

    async def record(
        self,
        action: AuditAction,
        *,
        resource_type: ResourceType,
        resource_id: uuid.UUID | str | None,
        detail: Mapping[str, Any] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
    ) -> AuditEvent:
        """Append one event: the next sequence of this tenant, linked to the current head.

        ``detail`` holds ids, counts, codes and hashes only (checked; see ``check_detail``).
        """
        pending = PendingEvent(action, resource_type, resource_id, detail or {}, outcome)
        (checked,) = _checked([pending])
        actor = await self.actor()
        # Locks the head row until this transaction ends: appends in one tenant are serial.
        head = await self.heads.lock()
        entry, now = self._sealed(checked, actor, self.request_id, head.sequence, head.head_hash)
        event = AuditEvent(
            id=uuid.UUID(entry.id),
            sequence=entry.sequence,
            occurred_at=now,
            actor=entry.actor,
            action=entry.action,
            resource_type=entry.resource_type,
            resource_id=entry.resource_id,
            outcome=entry.outcome,
            request_id=entry.request_id,
            detail=entry.detail,
            prev_hash=entry.prev_hash,
            canon=entry.canon,
            hash=entry.hash,
        )
        await self.events.add(event)
        await self.heads.advance(sequence=event.sequence, head_hash=event.hash)
        return event

    async def record_all(self, events: Sequence[PendingEvent]) -> None:
        """Append ``events`` in order, each acting as its own ``subject`` and in its own
        request (this log's when unset): one head lock, one insert and one head update for
        all of them (settlements of model calls are written in batches)."""
        if not events:
            return
        checked = _checked(events)
        actors = await self._actors([self.subject, *(p.subject for p in events if p.subject)])
        head = await self.heads.lock()
        sequence, head_hash = head.sequence, head.head_hash
        rows: list[dict[str, Any]] = []
        for pending, item in zip(events, checked, strict=True):
            actor = actors[pending.subject or self.subject]
            request_id = pending.request_id if pending.subject is not None else self.request_id
            entry, now = self._sealed(item, actor, request_id, sequence, head_hash)
            sequence, head_hash = entry.sequence, entry.hash
            rows.append(
                {
                    **entry.hashed_fields(),
                    "id": uuid.UUID(entry.id),
                    "tenant_id": self.ctx.tenant_id,
                    "occurred_at": now,
                    "canon": entry.canon,
                    "hash": entry.hash,
                }
            )
        await self.events.insert_rows(rows)
        await self.heads.advance(sequence=sequence, head_hash=head_hash)

    def _sealed(
        self,
        pending: PendingEvent,
        actor: str,
        request_id: str | None,
        after_sequence: int,
        after_hash: str,
    ) -> tuple[ChainEntry, datetime]:
        """The next entry of the chain, sealed, and the time it records."""
        now = utcnow()
        entry = seal(
            ChainEntry(
                id=str(uuid.uuid4()),
                tenant_id=str(self.ctx.tenant_id),
                sequence=after_sequence + 1,
                occurred_at=format_time(now),
                actor=actor,
                action=pending.action.value,
                resource_type=pending.resource_type.value,
                resource_id=pending.resource_id,  # type: ignore[arg-type]
                outcome=pending.outcome.value,
                request_id=request_id,
                detail=dict(pending.detail),
                prev_hash=after_hash,
            )
        )
        return entry, now


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event to append with ``AuditLog.record_all``. ``subject``: who acts (with
    ``request_id`` the request it acted in), when not the log's own subject."""

    action: AuditAction
    resource_type: ResourceType
    resource_id: uuid.UUID | str | None
    detail: Mapping[str, Any]
    outcome: AuditOutcome = AuditOutcome.SUCCESS
    subject: str | None = None
    request_id: str | None = None


def _checked(events: Sequence[PendingEvent]) -> list[PendingEvent]:
    """The events with their details and resource ids checked (codes, ids, counts and hashes
    only; see ``check_detail``), before anything is written."""
    checked = []
    for pending in events:
        if not CODE.match(pending.action) or not CODE.match(pending.resource_type):
            raise ValueError("audit actions and resource types are codes")
        resource = pending.resource_id
        checked.append(
            replace(
                pending,
                detail=check_detail(pending.detail),
                resource_id=check_identifier(str(resource)) if resource is not None else None,
            )
        )
    return checked


@dataclass(frozen=True, slots=True)
class AuditOrigin:
    """Who acts, and in which request, for events appended outside a tenant's own request (the
    operator's control-plane actions, which open their own transaction in the tenant's region).
    """

    subject: str
    request_id: str | None = None

    def log(self, session: AsyncSession, ctx: TenantContext) -> AuditLog:
        return AuditLog(session, ctx, subject=self.subject, request_id=self.request_id)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    tenant_id: uuid.UUID
    sequence: int
    head_hash: str
    signed_at: str
    key_id: str
    algorithm: str
    canon: int
    public_key: str
    signature: str


class AuditService:
    """The read side of one tenant's log: filtered pages, verification, signed checkpoints."""

    def __init__(self, session: AsyncSession, ctx: TenantContext) -> None:
        self.ctx = ctx
        self.events = AuditEventRepository(session, ctx)
        self.heads = AuditHeadRepository(session, ctx)
        self.subjects = AuditSubjectRepository(session, ctx)

    async def resolve_actor(self, actor: str) -> str | None:
        """A pseudonym as given, or the pseudonym of a subject (None: that subject never acted).

        Resolution happens here, server side, with the tenant's own secret: a user id of another
        tenant resolves to nothing.
        """
        if pseudonyms.PSEUDONYM.match(actor):
            return actor
        subject = pseudonyms.normalize_subject(actor)
        if subject is None:
            raise InvalidActorFilter()
        secret = await self.subjects.secret(subject)
        return pseudonyms.pseudonym(secret, subject) if secret is not None else None

    async def page(
        self, where: EventFilter, *, actor: str | None, cursor: int, limit: int
    ) -> tuple[Sequence[AuditEvent], int | None]:
        if actor is not None:
            resolved = await self.resolve_actor(actor)
            if resolved is None:
                return [], None
            where = EventFilter(
                action=where.action,
                actor=resolved,
                resource_type=where.resource_type,
                resource_id=where.resource_id,
                since=where.since,
                until=where.until,
            )
        rows = await self.events.page(where, after=cursor, limit=limit)
        return rows, (rows[-1].sequence if len(rows) == limit else None)

    async def verify(self) -> Verification:
        """Recompute the whole chain up to the stored head (see ``ChainVerifier``)."""
        head = await self.heads.get()
        verifier = ChainVerifier(str(self.ctx.tenant_id))
        async for entry in _chain(self.events, up_to=head.sequence if head else None):
            verifier.feed(entry)
        return verifier.finish(head.sequence if head else None, head.head_hash if head else None)

    async def checkpoint(self, signer: CheckpointSigner) -> SignedCheckpoint:
        """Sign the current head. Refuses (409) when the head is not its last stored event, so a
        signature never vouches for a chain whose tail was cut or rewritten."""
        head = await self.heads.get()
        sequence = head.sequence if head else 0
        head_hash = head.head_hash if head else GENESIS_HASH
        if sequence:
            last = await self.events.get_by_sequence(sequence)
            if last is None or last.hash != head_hash or not hash_matches(entry_of(last)):
                raise AuditChainBroken()
        signed_at = format_time(utcnow())
        document = checkpoint_document(
            tenant_id=str(self.ctx.tenant_id),
            sequence=sequence,
            head_hash=head_hash,
            signed_at=signed_at,
            key_id=signer.key_id,
            algorithm=signer.algorithm,
        )
        _, signature = signer.sign(document)
        return SignedCheckpoint(
            tenant_id=self.ctx.tenant_id,
            sequence=sequence,
            head_hash=head_hash,
            signed_at=signed_at,
            key_id=signer.key_id,
            algorithm=signer.algorithm,
            canon=document[CANON],
            public_key=signer.public_key_b64,
            signature=signature,
        )


async def _chain(events: AuditEventRepository, *, up_to: int | None) -> AsyncIterator[ChainEntry]:
    after = 0
    while True:
        rows = await events.chain_rows(after=after, limit=CHAIN_BATCH, up_to=up_to)
        for row in rows:
            yield entry_of(row)
        if len(rows) < CHAIN_BATCH:
            return
        after = rows[-1].sequence


class AuditExporter:
    """Streams one tenant's whole chain, every event with its ``prev_hash`` and ``hash``.

    The export runs in its own transaction: a streamed response outlives the request's unit of
    work. It stops at the head read when it starts, so it is exactly a verifiable chain prefix.
    """

    def __init__(self, registry: RegionRegistry, ctx: TenantContext) -> None:
        self.registry = registry
        self.ctx = ctx

    async def stream(self, export_format: ExportFormat) -> AsyncIterator[bytes]:
        async with self.registry.tenant_transaction(self.ctx) as session:
            head = await AuditHeadRepository(session, self.ctx).get()
            if export_format is ExportFormat.CSV:
                yield _csv_line(EXPORT_FIELDS)
            if head is None:
                return
            events = AuditEventRepository(session, self.ctx)
            async for entry in _chain(events, up_to=head.sequence):
                if export_format is ExportFormat.CSV:
                    yield _csv_line(_csv_values(entry))
                else:
                    yield _jsonl_line(entry)


def _jsonl_line(entry: ChainEntry) -> bytes:
    return _as_json(entry.export()) + b"\n"


def _csv_values(entry: ChainEntry) -> list[str]:
    values = entry.export()
    # ``detail`` as its JSON, so the hash can be recomputed from the CSV too; an empty cell is
    # null (request and resource ids are never empty strings), except an empty ``canon``: a
    # legacy event, whose hashed fields have no ``canon`` member.
    values["detail"] = _as_json(values["detail"]).decode("utf-8")
    return ["" if values.get(name) is None else str(values[name]) for name in EXPORT_FIELDS]


def _as_json(value: Any) -> bytes:
    """``value`` as canonical JSON; a stored value RFC 8785 cannot write (a legacy event's
    integer beyond 2**53, or a tampered row, which verification reports) as plain JSON instead,
    so that an export always shows what is stored. Either way a reader re-encodes what it
    parsed, by the event's ``canon``, to recompute the hash."""
    try:
        return canonical_json(value)
    except CanonError:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        ).encode("utf-8")


def _csv_line(values: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


__all__ = [
    "AuditExporter",
    "AuditLog",
    "AuditOrigin",
    "AuditService",
    "SignedCheckpoint",
]
