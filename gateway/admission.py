"""Admission: a call is counted against its request-rate limits and reserves its worst-case cost
against every quota (``gateway.budgets``), atomically, in the regional database — all or
nothing. Admission is a short transaction of its own (``AdmissionControl.admit``) or part of the
caller's (``admit_in``); no transaction is held open while a model generates.

Rate limits are leased in blocks (``RateBlocks``): each process takes admissions from the shared
per-minute window rows in blocks (``RateWindowRepository.take``) and spends them from memory, so
a limit is never exceeded across replicas and most requests write nothing. An allowance spent
down to half its last block is refilled in the background; requests that find it empty wait for
that one refill instead of each taking a block in a transaction of its own. A request with no
quota to enforce is admitted from memory and opens no transaction at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import budgets
from gateway.configuration import TenantGatewayConfig
from gateway.errors import QuotaExhausted, RateLimited
from gateway.repositories import CounterRepository, RateWindowRepository, ReservationRepository
from gateway.requests import Caller, PreparedCall
from gateway.settlement import SettlementQueue
from kernel.settings import GatewaySettings
from kernel.tenancy import TenantContext
from residency.database import after_commit
from residency.registry import RegionRegistry

log = structlog.get_logger("bulwark.gateway")

# How often an admission in a tenant looks for reservations whose lease ran out (per process);
# an admission about to be refused always looks.
EXPIRY_CHECK_SECONDS = 1.0


class RateBlocks:
    """The admissions this process holds from the shared rate windows, per (tenant, subject,
    minute), and the refills that take the next blocks (see the module docstring)."""

    def __init__(self, registry: RegionRegistry, settings: GatewaySettings) -> None:
        self.registry = registry
        self.settings = settings
        # Admissions this process took from rate windows and has not used yet (``admit_in``)
        self._allowances: dict[tuple[uuid.UUID, str, int], int] = {}
        self._allowance_window = 0
        # The last block taken for each of those, and the refills under way (``_refill``).
        self._blocks: dict[tuple[uuid.UUID, str, int], int] = {}
        self._refills: dict[tuple[uuid.UUID, str, int], asyncio.Task[int]] = {}
        self._full: set[tuple[uuid.UUID, str, int]] = set()  # windows a refill found full

    def _limits(
        self, ctx: TenantContext, caller: Caller, config: TenantGatewayConfig, window: int
    ) -> tuple[list[tuple[str, int, str]], list[bool]]:
        """An interactive request's rate limits (subject, per minute, scope) and, for each,
        whether this process holds an admission for it in ``window``."""
        identity = (
            f"key:{caller.credential_id}"
            if caller.credential_id
            else f"user:{caller.user_id}"
            if caller.user_id
            else None
        )
        limits = ([(identity, config.identity_rpm, "identity")] if identity else []) + [
            ("tenant", config.tenant_rpm, "tenant")
        ]
        if window > self._allowance_window:  # a new minute: last minute's blocks are void
            self._allowances = {k: v for k, v in self._allowances.items() if k[2] >= window}
            self._blocks = {k: v for k, v in self._blocks.items() if k[2] >= window}
            self._full = {k for k in self._full if k[2] >= window}
            self._allowance_window = window
        held = [self._allowances.get((ctx.tenant_id, s, window), 0) > 0 for s, _, _ in limits]
        return limits, held

    def _spend_held(
        self, ctx: TenantContext, caller: Caller, config: TenantGatewayConfig, window: int
    ) -> bool:
        """Admit from what this process holds, if it holds every admission the request needs.
        An allowance spent down to half its last block is refilled in the background."""
        if caller.track != "interactive":
            return True
        limits, held = self._limits(ctx, caller, config, window)
        if not all(held):
            return False
        for subject, limit, _ in limits:
            key = (ctx.tenant_id, subject, window)
            self._allowances[key] -= 1
            if self._allowances[key] <= self._blocks.get(key, 0) // 2:
                self._start_refill(ctx, subject, limit, window)
        return True

    async def spend_held_or_refilled(
        self, ctx: TenantContext, caller: Caller, config: TenantGatewayConfig, window: int
    ) -> bool:
        """``_spend_held``, refilling what is missing first: requests that find an allowance
        empty wait for one refill (``_refill``) instead of each writing a block in its own
        transaction. False once a refill hands out nothing (a full window, or the database
        unreachable): the request then takes the transaction path, which refuses it."""
        while not self._spend_held(ctx, caller, config, window):
            limits, held = self._limits(ctx, caller, config, window)
            missing = [
                (ctx.tenant_id, subject, window)
                for (subject, _, _), local in zip(limits, held, strict=True)
                if not local
            ]
            if any(key in self._full for key in missing):
                return False
            refills = [
                asyncio.shield(self._start_refill(ctx, subject, limit, window))
                for (subject, limit, _), local in zip(limits, held, strict=True)
                if not local
            ]
            if not all(await asyncio.gather(*refills)):
                return False
        return True

    def _start_refill(
        self, ctx: TenantContext, subject: str, limit: int, window: int
    ) -> asyncio.Task[int]:
        key = (ctx.tenant_id, subject, window)
        refill = self._refills.get(key)
        if refill is None or refill.done():
            refill = self._refills[key] = asyncio.create_task(
                self._refill(ctx, subject, limit, window)
            )
        return refill

    async def _refill(self, ctx: TenantContext, subject: str, limit: int, window: int) -> int:
        """Take the next block of ``subject``'s window in a transaction of its own (started
        before the allowance runs out, so requests keep admitting from memory while it is
        written: on SQLite, behind whatever holds the write lock). Returns its size; 0 when
        the window is full or the block could not be taken."""
        key = (ctx.tenant_id, subject, window)
        try:
            async with self.registry.tenant_transaction(ctx) as session:
                block = await RateWindowRepository(session, ctx).take(
                    subject,
                    window,
                    limit,
                    share=self.settings.rate_block_share,
                    most=self.settings.rate_block_max,
                )
            self._grant(key, block)
            if not block:
                self._full.add(key)
            return block
        except Exception as exc:  # the requests' own path reports it (503) if it persists
            log.warning(
                "gateway_rate_refill_failed", tenant_id=str(ctx.tenant_id), error=type(exc).__name__
            )
            return 0
        finally:
            del self._refills[key]

    def _grant(self, key: tuple[uuid.UUID, str, int], block: int) -> None:
        if block:
            self._full.discard(key)
            self._allowances[key] = self._allowances.get(key, 0) + block
            self._blocks[key] = block

    async def admit_in(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        caller: Caller,
        config: TenantGatewayConfig,
        window: int,
        retry_after: int,
    ) -> list[tuple[str, int]]:
        """Admit an interactive request under its identity's and its tenant's rate limits.

        Each process takes admissions from the shared window rows in blocks
        (``RateWindowRepository.take``) and spends them from memory, so the limit is never
        exceeded across replicas and most requests write nothing. Returns the blocks this request
        took from the database, its own admission among them, to be granted once its
        transaction commits (``allow``; a rolled-back block was never taken). Raises
        ``RateLimited`` with nothing spent."""
        if caller.track != "interactive":
            return []
        limits, held = self._limits(ctx, caller, config, window)
        granted: list[tuple[str, int]] = []
        if not all(held):
            rates = RateWindowRepository(session, ctx)
            for (subject, limit, scope), local in zip(limits, held, strict=True):
                if local:
                    continue
                block = await rates.take(
                    subject,
                    window,
                    limit,
                    share=self.settings.rate_block_share,
                    most=self.settings.rate_block_max,
                )
                if not block:
                    raise RateLimited(scope, retry_after)
                granted.append((subject, block))
            if random.random() < 0.01:  # noqa: S311 - housekeeping, not security
                await rates.forget_before(window - 1)
        for (subject, _, _), local in zip(limits, held, strict=True):
            if local:
                self._allowances[(ctx.tenant_id, subject, window)] -= 1
        return granted

    async def allow(
        self, tenant_id: uuid.UUID, window: int, granted: list[tuple[str, int]]
    ) -> None:
        """Hold the blocks ``admit_in`` took, once its transaction has committed."""
        for subject, block in granted:
            key = (tenant_id, subject, window)
            self._grant(key, block)
            self._allowances[key] -= 1  # the admission of the request that took the block

    def refilling(self) -> list[asyncio.Task[int]]:
        """The refills under way."""
        return list(self._refills.values())


class AdmissionControl:
    """Admitting calls: rate limits (``RateBlocks``) and quota reservations, all or nothing."""

    def __init__(
        self,
        registry: RegionRegistry,
        settings: GatewaySettings,
        rates: RateBlocks,
        ledger: SettlementQueue,
        now: Callable[[], datetime],
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.rates = rates
        # This process's queued settlements: they hold reservations until written.
        self.ledger = ledger
        self.now = now
        self._expiry_checked: dict[uuid.UUID, float] = {}  # tenant: when (``_expiry_check_due``)

    async def admit(
        self,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        config: TenantGatewayConfig,
    ) -> None:
        """Count the request against the rate limits and reserve its worst-case cost against
        every quota, in one transaction: all or nothing. A request with no quota to enforce is
        admitted from the rate allowances this process holds
        (``RateBlocks.spend_held_or_refilled``) and opens no transaction of its own."""
        now = self.now()
        charges, enforced = budgets.charges(caller, prepared, config, now)
        window = int(now.timestamp() // 60)
        if not enforced and await self.rates.spend_held_or_refilled(ctx, caller, config, window):
            prepared.charges = charges
            prepared.leased = False
            return
        # Expired leases are looked for at most once a second per tenant and process, and
        # always before a refusal: they matter once they stand between a call and its quota.
        release_expired = self._expiry_check_due(ctx.tenant_id)
        try:
            async with self.registry.tenant_transaction(ctx) as session:
                await self.admit_in(
                    session,
                    ctx,
                    caller,
                    prepared,
                    config,
                    savepoint=False,
                    release_expired=release_expired,
                )
        except QuotaExhausted:
            # This process's settlements are written in batches: those still queued hold
            # their calls' reservations. Written, and with expired leases released, they may
            # leave room: one more try.
            queued = self.ledger.holds(ctx.tenant_id)
            if not queued and release_expired:
                raise
            await self.ledger.flush(ctx.tenant_id)
            async with self.registry.tenant_transaction(ctx) as session:
                await self.admit_in(session, ctx, caller, prepared, config, savepoint=False)

    async def admit_in(
        self,
        session: AsyncSession,
        ctx: TenantContext,
        caller: Caller,
        prepared: PreparedCall,
        config: TenantGatewayConfig,
        *,
        savepoint: bool = True,
        release_expired: bool = True,
    ) -> None:
        """``admit`` in ``session``'s transaction. A refusal leaves nothing of the admission
        behind: a savepoint holds what it counted when quotas are enforced, unless the caller
        rolls its whole transaction back on a refusal (``savepoint=False``). Reservations whose
        lease ran out are released first unless ``release_expired`` is false."""
        now = self.now()
        epoch = now.timestamp()
        window = int(epoch // 60)
        retry_after = 60 - int(epoch % 60)
        charges, enforced = budgets.charges(caller, prepared, config, now)
        resets = {key: seconds for _, key, seconds in budgets.periods(now)}
        # A refusal leaves its transaction to be rolled back, except a quota refusal inside a
        # chat's transaction (answered without a model, which goes on): what the admission had
        # counted before it (rate windows, earlier counters) sits in a savepoint.
        nested = session.begin_nested() if enforced and savepoint else contextlib.nullcontext()
        async with nested:
            granted = await self.rates.admit_in(session, ctx, caller, config, window, retry_after)
            counters = CounterRepository(session, ctx)
            reservations = ReservationRepository(session, ctx)
            if enforced and release_expired:
                await budgets.release_expired(reservations, counters, now)
            for charge in enforced:
                if not await counters.reserve(charge):
                    scope = "tenant" if charge.scope == "tenant" else "user"
                    period = "day" if charge.period.startswith("d") else "month"
                    raise QuotaExhausted(scope, period, resets[charge.period])
            held = [c for c in enforced if c.tokens or c.microdollars]
            if held:
                lease = timedelta(seconds=self.settings.reservation_lease_seconds)
                await reservations.add(prepared.call_id, held, now + lease)
        prepared.charges = charges
        prepared.leased = bool(held)
        if granted:
            after_commit(session, lambda: self.rates.allow(ctx.tenant_id, window, granted))

    def _expiry_check_due(self, tenant_id: uuid.UUID) -> bool:
        now = time.monotonic()
        if now - self._expiry_checked.get(tenant_id, -EXPIRY_CHECK_SECONDS) < EXPIRY_CHECK_SECONDS:
            return False
        self._expiry_checked[tenant_id] = now
        return True
