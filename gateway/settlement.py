"""Settlement: a finished call's usage recorded, its quota reservation released, exactly once.

Settling a call releases its reservation (``gateway.budgets``), adds the actual usage to the
quota counters, and writes one ledger row and one audit event holding only a hash of the
prompt. It is a short transaction of its own (``settle``) or part of the caller's
(``settle_in``: the chat's closing one); no database transaction is held open while a model
generates. A call is settled exactly once (the ledger's unique call id makes a second
settlement fail), whatever happened: a failed call settles zero and releases its reservation; a
stream that fails after its first token settles what was generated.

Settlements written in batches (``SettlementQueue``): the ledger's side of the gateway's hot
path. A settlement no request waits for (the HTTP route's answer is already sent; a stream's
last event and a failed call's error need only its cost, known in memory) is queued here per
tenant and written with the others waiting in one transaction (``Settlements.settle_all_in``):
one audit head lock, one insert per table, one statement for the counters. The first one
queued starts a timer of ``settle_batch_seconds``; a full batch starts the write at once. While
a tenant's write runs, what arrives joins the next batch (group commit).

A queued settlement that releases a quota reservation holds it until written; an admission
refused for quota calls ``flush(tenant)`` and tries once more, so a refusal never comes from
this process's timer. ``drain()`` writes everything queued and waits for it: usage reads, tests
and shutdown call it.
A write that fails because the database is unavailable is retried with backoff; one that
still fails is logged with its size and given up, as a lone settlement would be.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from audit import pseudonyms
from audit.services import AuditLog, PendingEvent, subject_of
from gateway import metrics
from gateway.adapters.base import TokenUsage
from gateway.fleet import Endpoint
from gateway.repositories import (
    CounterDelta,
    CounterRepository,
    ReservationRepository,
    UsageRepository,
)
from gateway.requests import Caller, PreparedCall
from kernel.audit_events import AuditAction, AuditOutcome, ResourceType
from kernel.settings import GatewaySettings
from kernel.tenancy import TenantContext
from residency.errors import DatabaseUnavailable
from residency.registry import RegionRegistry

log = structlog.get_logger("bulwark.gateway")

RETRY_DELAYS = (0.25, 1.0, 4.0)


def cost(caller: Caller, endpoint: Endpoint | None, usage: TokenUsage) -> int:
    """Micro-dollars of ``usage`` at the endpoint's price table for the caller's track."""
    if endpoint is None:
        return 0
    return endpoint.prices(caller.track).cost(usage.input_tokens, usage.output_tokens)


@dataclass(slots=True)
class Settlement:
    """A finished call's usage, not yet in the ledger (``GatewayService.settle_in``)."""

    ctx: TenantContext
    caller: Caller
    prepared: PreparedCall
    endpoint: Endpoint | None
    usage: TokenUsage
    outcome: str
    metered: bool = False

    @property
    def cost(self) -> int:
        return cost(self.caller, self.endpoint, self.usage)


def _subject(caller: Caller, ctx: TenantContext) -> str:
    return pseudonyms.user_subject(caller.user_id) if caller.user_id else subject_of(ctx)


def _audit_events(settlement: Settlement) -> list[PendingEvent]:
    """The call's event, and one ``egress.refused`` per endpoint the guard refused for it."""
    refusals = [
        PendingEvent(
            AuditAction.EGRESS_REFUSED,
            ResourceType.MODEL_ENDPOINT,
            None,
            {"tier": settlement.prepared.decision.tier, "endpoint": name, "reason": reason},
            AuditOutcome.DENIED,
            subject=_subject(settlement.caller, settlement.ctx),
            request_id=settlement.caller.request_id,
        )
        for name, reason in settlement.prepared.refused
    ]
    return [*refusals, _audit_event(settlement)]


def _audit_event(settlement: Settlement) -> PendingEvent:
    prepared, endpoint, usage = settlement.prepared, settlement.endpoint, settlement.usage
    return PendingEvent(
        AuditAction.MODEL_CALLED,
        ResourceType.MODEL_CALL,
        prepared.call_id,
        {
            "tier": prepared.decision.tier,
            "route_reason": prepared.decision.reason,
            "endpoint": endpoint.name if endpoint else None,
            "track": settlement.caller.track,
            "input_tokens": usage.input_tokens if endpoint else 0,
            "output_tokens": usage.output_tokens if endpoint else 0,
            "cost_microdollars": settlement.cost,
            "prompt_sha256": prepared.prompt_hash,
        },
        AuditOutcome.SUCCESS if settlement.outcome != "failed" else AuditOutcome.FAILURE,
        subject=_subject(settlement.caller, settlement.ctx),
        request_id=settlement.caller.request_id,
    )


class SettlementQueue:
    """This process's settlements waiting to be written, per tenant (see the module docstring)."""

    def __init__(
        self,
        write: Callable[[Sequence[Settlement]], Awaitable[None]],
        *,
        delay: float,
        max_batch: int,
    ) -> None:
        self._write = write
        self.delay = delay
        self.max_batch = max_batch
        self._pending: dict[uuid.UUID, list[Settlement]] = {}
        self._timers: dict[uuid.UUID, asyncio.TimerHandle] = {}
        self._writing: dict[uuid.UUID, asyncio.Task[None]] = {}

    def put(self, settlement: Settlement) -> None:
        tenant = settlement.ctx.tenant_id
        batch = self._pending.setdefault(tenant, [])
        batch.append(settlement)
        if tenant in self._writing:
            return  # the running write takes it next
        if self._due(batch):
            self._start(tenant)
        elif tenant not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[tenant] = loop.call_later(self.delay, self._start, tenant)

    def _due(self, batch: list[Settlement]) -> bool:
        return self.delay <= 0 or len(batch) >= self.max_batch

    def holds(self, tenant: uuid.UUID) -> bool:
        """Whether settlements of ``tenant`` are queued or being written."""
        return bool(self._pending.get(tenant)) or tenant in self._writing

    async def flush(self, tenant: uuid.UUID) -> None:
        """Write what ``tenant`` has queued now, and wait until none of it is left."""
        while self.holds(tenant):
            self._start(tenant)
            writing = self._writing.get(tenant)
            if writing is not None:
                # Shielded: a caller that goes away does not cancel the write of the others.
                await asyncio.shield(writing)

    def _start(self, tenant: uuid.UUID) -> None:
        timer = self._timers.pop(tenant, None)
        if timer is not None:
            timer.cancel()
        if tenant not in self._writing and self._pending.get(tenant):
            self._writing[tenant] = asyncio.get_running_loop().create_task(self._run(tenant))

    async def _run(self, tenant: uuid.UUID) -> None:
        try:
            while batch := self._pending.pop(tenant, None):
                await self._write_with_retries(batch)
                waiting = self._pending.get(tenant)
                if waiting and not self._due(waiting):
                    # What arrived meanwhile waits for its own timer (a closed loop of single
                    # requests still shares writes).
                    loop = asyncio.get_running_loop()
                    self._timers[tenant] = loop.call_later(self.delay, self._start, tenant)
                    break
        finally:
            self._writing.pop(tenant, None)

    async def _write_with_retries(self, batch: list[Settlement]) -> None:
        for attempt in range(len(RETRY_DELAYS) + 1):
            try:
                await self._write(batch)
                return
            except DatabaseUnavailable:
                if attempt == len(RETRY_DELAYS):
                    break
                log.warning("gateway_settle_retry", settlements=len(batch), attempt=attempt + 1)
                await asyncio.sleep(RETRY_DELAYS[attempt])
            except Exception as exc:
                log.error("gateway_settle_failed", settlements=len(batch), error=type(exc).__name__)
                return
        log.error("gateway_settle_failed", settlements=len(batch), error="DatabaseUnavailable")

    async def drain(self) -> None:
        """Write everything queued now, and wait until no write is running."""
        while self._pending or self._writing:
            for tenant in list(self._pending):
                self._start(tenant)
            if self._writing:
                await asyncio.gather(*list(self._writing.values()), return_exceptions=True)


class Settlements:
    """Settling calls: at once, in the caller's transaction, or queued (``ledger``)."""

    def __init__(
        self,
        registry: RegionRegistry,
        settings: GatewaySettings,
        now: Callable[[], datetime],
    ) -> None:
        self.registry = registry
        self.now = now
        self._settling: set[asyncio.Future[int]] = set()
        self.ledger = SettlementQueue(
            self._write_settlements,
            delay=settings.settle_batch_seconds,
            max_batch=settings.settle_batch_max,
        )

    async def settle(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        *,
        endpoint: Endpoint | None,
        usage: TokenUsage,
        outcome: str,
    ) -> int:
        """Release the reservation and record the actual usage, once. Returns the cost."""
        settlement = Settlement(ctx, caller, prepared, endpoint, usage, outcome)
        async with self.registry.tenant_transaction(ctx) as session:
            await self.settle_in(session, settlement)
        return settlement.cost

    async def settle_in(
        self, session: AsyncSession, settlement: Settlement, audit: AuditLog | None = None
    ) -> None:
        """Record ``settlement`` in the caller's transaction (the chat's closing one): it is
        settled when that transaction commits. A caller whose transaction fails hands it to
        ``settle_detached`` instead, and the reservation's lease makes that exactly once.
        ``audit``: the caller's log of that transaction (its actor is looked up once)."""
        await self.settle_all_in(session, [settlement], audit)

    async def settle_all_in(
        self,
        session: AsyncSession,
        settlements: Sequence[Settlement],
        audit: AuditLog | None = None,
    ) -> None:
        """Record ``settlements`` (one tenant's) in ``session``'s transaction: per call an audit
        event and a ledger row, its reservation released, its usage added to the counters —
        one statement per table for all of them."""
        if not settlements:
            return
        ctx = settlements[0].ctx
        for settlement in settlements:
            if settlement.endpoint is not None and not settlement.metered:
                settlement.metered = True
                metrics.settled(
                    ctx.tenant_id,
                    settlement.caller.route,
                    settlement.endpoint.model,
                    (settlement.usage.input_tokens, settlement.usage.output_tokens),
                    settlement.cost / 1_000_000,
                )
        # Locks in the order every writing transaction takes them: the tenant's audit head
        # first (a chat's closing transaction has appended its answer already), then the
        # reservations and the counters — the other order deadlocked on PostgreSQL.
        if audit is None:
            audit = AuditLog(session, ctx, subject=_subject(settlements[0].caller, ctx))
        await audit.record_all([event for s in settlements for event in _audit_events(s)])
        leased = [s.prepared.call_id for s in settlements if s.prepared.leased]
        taken = await ReservationRepository(session, ctx).take_all(leased) if leased else set()
        counters: dict[tuple[str, str], list[int]] = {}
        records: list[dict[str, Any]] = []
        day = f"{self.now():%Y-%m-%d}"
        for settlement in settlements:
            prepared, usage, endpoint = settlement.prepared, settlement.usage, settlement.endpoint
            released = not prepared.leased or prepared.call_id in taken
            if not released:
                # The lease ran out and a later admission released the reservation: only the
                # usage is added now, so nothing is released twice.
                log.warning("gateway_settled_after_lease", call_id=str(prepared.call_id))
            tokens = usage.input_tokens + usage.output_tokens if endpoint is not None else 0
            spent = settlement.cost
            for charge in prepared.charges:
                totals = counters.setdefault((charge.scope, charge.period), [0, 0, 0, 0])
                totals[0] += tokens
                totals[1] += spent
                if prepared.leased and released:
                    totals[2] += charge.tokens
                    totals[3] += charge.microdollars
            records.append(
                {
                    "call_id": prepared.call_id,
                    "user_id": settlement.caller.user_id,
                    "credential_id": settlement.caller.credential_id,
                    "track": settlement.caller.track,
                    "tier": prepared.decision.tier,
                    "endpoint": endpoint.name if endpoint else None,
                    "model": endpoint.model if endpoint else None,
                    "outcome": settlement.outcome,
                    "input_tokens": usage.input_tokens if endpoint else 0,
                    "output_tokens": usage.output_tokens if endpoint else 0,
                    "cost_microdollars": spent,
                    "prompt_hash": prepared.prompt_hash,
                    "day": day,
                }
            )
        await CounterRepository(session, ctx).add(
            [
                CounterDelta(scope, period, *totals)
                for (scope, period), totals in sorted(counters.items())
            ]
        )
        await UsageRepository(session, ctx).add_all(records)

    async def _write_settlements(self, settlements: Sequence[Settlement]) -> None:
        async with self.registry.tenant_transaction(settlements[0].ctx) as session:
            await self.settle_all_in(session, settlements)

    def settle_detached(self, settlement: Settlement) -> None:
        """Settle without the caller waiting: queued with this process's other settlements
        and written in a batch soon (``SettlementQueue``; ``settled()`` waits for it)."""
        self.ledger.put(settlement)

    async def settle_shielded(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        *,
        endpoint: Endpoint | None,
        usage: TokenUsage,
        outcome: str,
    ) -> int:
        """Settle even when the caller is being cancelled (a client that went away)."""
        task = self._settle_task(
            ctx, caller, prepared, endpoint=endpoint, usage=usage, outcome=outcome
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            log.warning("gateway_settle_after_cancel", call_id=str(prepared.call_id))
            raise

    def _settle_task(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        *,
        endpoint: Endpoint | None,
        usage: TokenUsage,
        outcome: str,
    ) -> asyncio.Future[int]:
        task = asyncio.ensure_future(
            self.settle(ctx, caller, prepared, endpoint=endpoint, usage=usage, outcome=outcome)
        )
        self._settling.add(task)
        task.add_done_callback(self._settled_one)
        return task

    def _settled_one(self, task: asyncio.Future[int]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "gateway_settle_failed",
                error=type(task.exception()).__name__,
            )

    def running(self) -> list[asyncio.Future[int]]:
        """The settlements being written in tasks of their own (``settle_shielded``)."""
        return list(self._settling)
