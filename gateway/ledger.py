"""Settlements written in batches: the ledger's side of the gateway's hot path.

A settlement no request waits for (the HTTP route's answer is already sent; a stream's last
event and a failed call's error need only its cost, known in memory) is queued here per
tenant and written with the others waiting in one transaction (``GatewayService.settle_all_in``):
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
from typing import TYPE_CHECKING

import structlog

from residency.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from gateway.services import Settlement

log = structlog.get_logger("bulwark.gateway")

RETRY_DELAYS = (0.25, 1.0, 4.0)


class SettlementQueue:
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
