"""The settlement queue: one write per tenant per window, at once when the batch is full or the
tenant's settlements are flushed (a refused admission), retried through a database outage, and
drained on demand."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest

import gateway.settlement
from gateway.services import Settlement
from gateway.settlement import SettlementQueue
from residency.errors import DatabaseUnavailable


@dataclass
class _Ctx:
    tenant_id: uuid.UUID


@dataclass
class _Prepared:
    leased: bool


@dataclass
class _Settled:
    ctx: _Ctx
    prepared: _Prepared
    name: str


def settlement(tenant: uuid.UUID, name: str, *, leased: bool = False) -> Settlement:
    return cast(Settlement, _Settled(_Ctx(tenant), _Prepared(leased), name))


class Writes:
    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.failures = failures

    async def __call__(self, batch: Sequence[Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("eu")
        self.batches.append([s.name for s in batch])


async def test_one_write_per_tenant_per_window() -> None:
    writes = Writes()
    queue = SettlementQueue(writes, delay=0.05, max_batch=100)
    a, b = uuid.uuid4(), uuid.uuid4()
    for name in ("a1", "a2", "a3"):
        queue.put(settlement(a, name))
    queue.put(settlement(b, "b1"))
    assert writes.batches == []  # nothing before the window ends
    await asyncio.sleep(0.15)
    assert sorted(writes.batches) == [["a1", "a2", "a3"], ["b1"]]


async def test_a_full_batch_is_written_at_once() -> None:
    writes = Writes()
    queue = SettlementQueue(writes, delay=10, max_batch=3)
    tenant = uuid.uuid4()
    for name in ("x", "y", "z"):
        queue.put(settlement(tenant, name, leased=name == "y"))
    await asyncio.sleep(0.01)
    assert writes.batches == [["x", "y", "z"]]


async def test_a_flush_writes_one_tenant_now_and_waits_for_it() -> None:
    writes = Writes()
    queue = SettlementQueue(writes, delay=10, max_batch=100)
    tenant, other = uuid.uuid4(), uuid.uuid4()
    queue.put(settlement(tenant, "leased", leased=True))
    queue.put(settlement(other, "elsewhere"))
    await asyncio.sleep(0.01)
    assert writes.batches == []  # a held reservation alone does not cut the window short
    assert queue.holds(tenant)
    await queue.flush(tenant)
    assert writes.batches == [["leased"]]
    assert not queue.holds(tenant)
    assert queue.holds(other)
    await queue.flush(tenant)  # nothing left: returns at once
    assert writes.batches == [["leased"]]


async def test_an_outage_is_retried_and_nothing_is_written_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway.settlement, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    writes = Writes(failures=2)
    queue = SettlementQueue(writes, delay=10, max_batch=100)
    queue.put(settlement(uuid.uuid4(), "s1"))
    await queue.drain()
    assert writes.batches == [["s1"]]


async def test_drain_writes_what_arrives_during_a_write() -> None:
    writes = Writes()
    queue = SettlementQueue(writes, delay=10, max_batch=100)
    tenant = uuid.uuid4()
    queue.put(settlement(tenant, "first"))
    flushing = asyncio.create_task(queue.flush(tenant))
    await asyncio.sleep(0)  # the first write has started
    queue.put(settlement(tenant, "second"))  # waits for the next one
    await queue.drain()
    await flushing
    assert [name for batch in writes.batches for name in batch] == ["first", "second"]
